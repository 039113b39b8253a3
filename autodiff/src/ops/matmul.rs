//! Matrix products: `[m, k] x [k, n]`, batched `[b, m, k] x [b, k, n]`, and a batch
//! against one matrix `[b, m, k] x [k, n]`. The vjps multiply by transposed views.

use super::activation::Activation;
use super::elementwise::activate_in_place;
use super::{add_tangents, want, BatchView, InputGrads, Rule};
use super::{VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::elementwise::unary_vjp;
use crate::kernels::gemm::{
    matmul_bias_epilogue_vec, matmul_bias_vec, matmul_into, matmul_vec, MatRef,
};
use crate::kernels::per_example::outer_products;
use crate::kernels::simd::wide;
use crate::kernels::{pool, schedule};
use crate::shape::{Dims, Shape};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::sync::OnceLock;

/// How the operands' ranks line up: batch count, m, k, n, and whether b is shared.
struct Layout {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    shared_rhs: bool,
}

/// Panics, at the user's line when called from a `#[track_caller]` op, naming both
/// shapes when they do not multiply.
#[track_caller]
fn layout(a: &[usize], b: &[usize]) -> Layout {
    // A function, not a closure: closures cannot pass the caller's location on.
    #[track_caller]
    fn fail(a: &[usize], b: &[usize], why: &str) -> ! {
        panic!("matmul: {} x {}: {why}", Dims(a), Dims(b))
    }
    let l = match (a.len(), b.len()) {
        (2, 2) => Layout {
            batch: 1,
            m: a[0],
            k: a[1],
            n: b[1],
            shared_rhs: true,
        },
        (3, 2) => Layout {
            batch: a[0],
            m: a[1],
            k: a[2],
            n: b[1],
            shared_rhs: true,
        },
        (3, 3) => {
            if a[0] != b[0] {
                fail(a, b, "batch sizes differ");
            }
            Layout {
                batch: a[0],
                m: a[1],
                k: a[2],
                n: b[2],
                shared_rhs: false,
            }
        }
        _ => fail(a, b, "expected 2-D x 2-D, 3-D x 3-D or 3-D x 2-D operands"),
    };
    let inner_b = if b.len() == 2 { b[0] } else { b[1] };
    if l.k != inner_b {
        fail(a, b, "inner dimensions differ");
    }
    l
}

fn forward<T: Float>(a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
    let l = layout(a.shape(), b.shape());
    let mut out_shape: Shape = a.shape().into();
    let last = out_shape.len() - 1;
    out_shape[last] = l.n;
    if l.shared_rhs {
        // A batch against one matrix is one tall product.
        let lhs = MatRef::row_major(a.data(), l.batch * l.m, l.k);
        let out = matmul_vec(lhs, MatRef::row_major(b.data(), l.k, l.n));
        return Tensor::from_vec(out, out_shape);
    }
    let mut out = vec![T::zero(); l.batch * l.m * l.n];
    per_product(&mut out, l.batch, |i, out| {
        let lhs = MatRef::row_major(&a.data()[i * l.m * l.k..(i + 1) * l.m * l.k], l.m, l.k);
        let rhs = MatRef::row_major(&b.data()[i * l.k * l.n..(i + 1) * l.k * l.n], l.k, l.n);
        matmul_into(lhs, rhs, out, false);
    });
    Tensor::from_vec(out, out_shape)
}

/// Runs `f(i, out_i)` for each of `batch` products, `out` cut into `batch` equal
/// pieces. With at least as many products as threads, each thread takes a band of whole
/// products (attention's many small ones, each too small to split); otherwise they run
/// in turn, each split across the threads as any product is. Either way a product's
/// values do not depend on the split.
fn per_product<T: Float>(out: &mut [T], batch: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if batch == 0 || out.is_empty() {
        return;
    }
    let len = out.len() / batch;
    let threads = pool::threads();
    if threads < 2 || batch < threads {
        for (i, piece) in out.chunks_exact_mut(len).enumerate() {
            f(i, piece);
        }
        return;
    }
    pool::for_row_bands(out, batch, threads, |range, band| {
        for (j, piece) in band.chunks_exact_mut(len).enumerate() {
            f(range.start + j, piece);
        }
    });
}

/// The matrix product ([`Var::matmul`]).
pub(crate) struct MatMul;

impl<T: Float> Rule<T> for MatMul {
    fn name(&self) -> String {
        "matmul".into()
    }
    /// dA = G Bᵀ and dB = Aᵀ G, with the transposes taken as strided views.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let l = layout(a.shape(), b.shape());
        let (m, k, n) = (l.m, l.k, l.n);
        let ga = want(ctx, 0, || {
            if l.shared_rhs {
                let gm = MatRef::row_major(g.data(), l.batch * m, n);
                let out = matmul_vec(gm, MatRef::row_major(b.data(), k, n).t());
                return Tensor::from_vec(out, a.shape());
            }
            let mut out = vec![T::zero(); a.numel()];
            per_product(&mut out, l.batch, |i, out| {
                let gm = MatRef::row_major(&g.data()[i * m * n..(i + 1) * m * n], m, n);
                let bm = MatRef::row_major(&b.data()[i * k * n..(i + 1) * k * n], k, n);
                matmul_into(gm, bm.t(), out, false);
            });
            Tensor::from_vec(out, a.shape())
        });
        let gb = want(ctx, 1, || {
            if l.shared_rhs {
                let am = MatRef::row_major(a.data(), l.batch * m, k);
                let out = matmul_vec(am.t(), MatRef::row_major(g.data(), l.batch * m, n));
                return Tensor::from_vec(out, b.shape());
            }
            let mut out = vec![T::zero(); b.numel()];
            per_product(&mut out, l.batch, |i, out| {
                let am = MatRef::row_major(&a.data()[i * m * k..(i + 1) * m * k], m, k);
                let gm = MatRef::row_major(&g.data()[i * m * n..(i + 1) * m * n], m, n);
                matmul_into(am.t(), gm, out, false);
            });
            Tensor::from_vec(out, b.shape())
        });
        smallvec![ga, gb]
    }
    /// Recorded: `dA = G Bᵀ`, `dB = Aᵀ G` (for a batch against one matrix, the batch is
    /// folded into the rows first).
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (sa, sb) = (a.shape(), b.shape());
        if sa.len() == 2 && sb.len() == 2 {
            return smallvec![
                ctx.wants[0].then(|| transposed(g, false, b, true)),
                ctx.wants[1].then(|| transposed(a, true, g, false)),
            ];
        }
        let ga = ctx.wants[0].then(|| g.matmul(b.t()));
        let gb = ctx.wants[1].then(|| {
            if sa.len() == 3 && sb.len() == 2 {
                let rows = sa[0] * sa[1];
                let a = a.reshape([rows, sa[2]]);
                transposed(a, true, g.reshape([rows, sb[1]]), false)
            } else {
                a.t().matmul(g)
            }
        });
        smallvec![ga, gb]
    }
    /// The product rule: `dA B + A dB`.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
        let ta = ctx.tangents[0].map(|t| t.matmul(b));
        let tb = ctx.tangents[1].map(|t| a.matmul(t));
        add_tangents(ta, tb)
    }
    /// Rows: a batch against one shared matrix, or two batches example by example.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        let ranks = (batch.inputs[0].shape.len(), batch.inputs[1].shape.len());
        matches!(
            (batch.rows(0), batch.rows(1), ranks.0, ranks.1),
            (true, false, 2 | 3, 2) | (true, true, 3, 3)
        )
    }
    fn has_per_example(&self, k: usize, batch: &BatchView<'_>) -> bool {
        k == 1 && matches!(batch.inputs[0].shape.len(), 2 | 3)
    }
    fn per_example(&self, _: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        weight_rule(ctx.inputs[0], ctx.grad, n)
    }
    fn multiply_adds(&self, inputs: &[&Tensor<T>]) -> u64 {
        let l = layout(inputs[0].shape(), inputs[1].shape());
        (l.batch * l.m * l.k * l.n) as u64
    }
}

/// `op(a) op(b)` of two matrices, `op(x)` being `xᵀ` where its flag says so, with the
/// transposes read in place (strided views) rather than copied: what the recorded
/// vjps of [`MatMul`] and [`Linear`] write, so that a second backward pass (an HVP) does
/// not copy every weight matrix to transpose it. These are the very products the fast
/// vjps compute (the same views), so a recorded gradient equals `backward()`'s bit for
/// bit (tests/second_order.rs); against a product of copied transposes the last bits
/// can differ, as the kernel chosen can depend on the operands' layout.
pub(crate) fn transposed<'t, T: Float>(
    a: Var<'t, T>,
    a_t: bool,
    b: Var<'t, T>,
    b_t: bool,
) -> Var<'t, T> {
    let (sa, sb) = (a.shape(), b.shape());
    assert!(
        sa.len() == 2 && sb.len() == 2,
        "matmul: transposed operands must be matrices, got {} x {}",
        Dims(&sa),
        Dims(&sb)
    );
    let rule = MatMulT { a_t, b_t };
    let (m, k, n) = rule.dims(&sa, &sb);
    assert_eq!(
        k,
        if b_t { sb[1] } else { sb[0] },
        "matmul: inner dimensions differ"
    );
    a.tape.record(&[a, b], move |x, _| {
        let out = matmul_vec(view(x[0], a_t), view(x[1], b_t));
        (Tensor::from_vec(out, [m, n]), rule)
    })
}

/// [`transposed`]'s product.
#[derive(Clone, Copy)]
struct MatMulT {
    a_t: bool,
    b_t: bool,
}

impl MatMulT {
    /// `(m, k, n)` of `op(a) op(b)`.
    fn dims(&self, sa: &[usize], sb: &[usize]) -> (usize, usize, usize) {
        let (m, k) = if self.a_t {
            (sa[1], sa[0])
        } else {
            (sa[0], sa[1])
        };
        let n = if self.b_t { sb[0] } else { sb[1] };
        (m, k, n)
    }
}

/// Matrix `x` as a view, transposed where `t` says.
fn view<T: Float>(x: &Tensor<T>, t: bool) -> MatRef<'_, T> {
    let m = MatRef::row_major(x.data(), x.shape()[0], x.shape()[1]);
    if t {
        m.t()
    } else {
        m
    }
}

impl<T: Float> Rule<T> for MatMulT {
    fn name(&self) -> String {
        "matmul".into()
    }
    /// For `c = op(a) op(b)`: `d op(a) = g op(b)ᵀ` and `d op(b) = op(a)ᵀ g`, each
    /// transposed back where its operand was, all as views.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (va, vb, vg) = (view(a, self.a_t), view(b, self.b_t), view(g, false));
        let ga = want(ctx, 0, || {
            let out = if self.a_t {
                matmul_vec(vb, vg.t())
            } else {
                matmul_vec(vg, vb.t())
            };
            Tensor::from_vec(out, a.shape())
        });
        let gb = want(ctx, 1, || {
            let out = if self.b_t {
                matmul_vec(vg.t(), va)
            } else {
                matmul_vec(va.t(), vg)
            };
            Tensor::from_vec(out, b.shape())
        });
        smallvec![ga, gb]
    }
    /// The same rule, recorded with transposed products again.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (a_t, b_t) = (self.a_t, self.b_t);
        smallvec![
            ctx.wants[0].then(|| {
                if a_t {
                    transposed(b, b_t, g, true)
                } else {
                    transposed(g, false, b, !b_t)
                }
            }),
            ctx.wants[1].then(|| {
                if b_t {
                    transposed(g, true, a, a_t)
                } else {
                    transposed(a, !a_t, g, false)
                }
            }),
        ]
    }
    /// The product rule: `op(da) op(b) + op(a) op(db)`.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
        let ta = ctx.tangents[0].map(|t| transposed(t, self.a_t, b, self.b_t));
        let tb = ctx.tangents[1].map(|t| transposed(a, self.a_t, t, self.b_t));
        add_tangents(ta, tb)
    }
    fn multiply_adds(&self, inputs: &[&Tensor<T>]) -> u64 {
        let (m, k, n) = self.dims(inputs[0].shape(), inputs[1].shape());
        (m * k * n) as u64
    }
}

/// `x_iᵀ g_i` for each example: `x` is `[n, k]` (an outer product each) or `[n, m, k]`,
/// `g` is `[n, p]` or `[n, m, p]`.
fn weight_rule<T: Float>(x: &Tensor<T>, g: &Tensor<T>, n: usize) -> Vec<T> {
    let kk = *x.shape().last().unwrap_or(&1);
    let p = *g.shape().last().unwrap_or(&1);
    let m = x.numel() / (n * kk).max(1);
    let (xd, gd) = (x.data(), g.data());
    if m == 1 {
        return outer_products(xd, gd, n, kk, p);
    }
    let mut out = vec![T::zero(); n * kk * p];
    let per = schedule::examples_per_part(n);
    pool::for_chunks(&mut out, per * kk * p, |band, chunk| {
        for (j, dw) in chunk.chunks_exact_mut(kk * p).enumerate() {
            let e = band * per + j;
            matmul_into(
                MatRef::row_major(&xd[e * m * kk..(e + 1) * m * kk], m, kk).t(),
                MatRef::row_major(&gd[e * m * p..(e + 1) * m * p], m, p),
                dw,
                false,
            );
        }
    });
    out
}

/// `act(x w + b)` ([`Var::linear_with`]); `x w + b` ([`Var::linear`]) is the identity's.
pub(crate) struct Linear {
    act: Activation,
}

impl<T: Float> Rule<T> for Linear {
    fn name(&self) -> String {
        match self.act {
            Activation::Identity => "linear".into(),
            act => format!("linear+{act}"),
        }
    }
    /// dx = G wᵀ, dw = xᵀ G, db = column sums of G; with an activation, G is the
    /// output's gradient through it first (one pass, split by rows like the other
    /// elementwise ops).
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        if self.act == Activation::Identity {
            return linear_grads(ctx, ctx.grad);
        }
        let (y, g, shape) = (ctx.output.data(), ctx.grad.data(), ctx.output.shape());
        // An activation's vjp reads its output alone: the output stands in for the input.
        let data = unary_vjp(self.act, y, y, g, shape);
        linear_grads(ctx, &Tensor::from_vec(data, shape))
    }
    /// Recorded: through the activation from the output (its rule), then `dx = G wᵀ`,
    /// `dw = xᵀ G`, `db = Σ_rows G`.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let g = self.act.vjp_rule(ctx.output, ctx.grad);
        smallvec![
            ctx.wants[0].then(|| transposed(g, false, w, true)),
            ctx.wants[1].then(|| transposed(x, true, g, false)),
            ctx.wants[2].then(|| g.sum_axes(&[0], false)),
        ]
    }
    /// The tangent of `act(x w + b)`: `act'(z) (dx w + x dw + db)`, the activation's
    /// factor from the output as in its vjp.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let tx = ctx.tangents[0].map(|t| t.matmul(w));
        // The bias's tangent rides on a product's fused bias where there is one.
        let (tw, tb) = match (ctx.tangents[1], ctx.tangents[2]) {
            (Some(t), Some(b)) => (Some(x.linear(t, b)), None),
            (t, b) => (t.map(|t| x.matmul(t)), b),
        };
        let tz = add_tangents(add_tangents(tx, tw), tb)?;
        let shape = ctx.output.shape();
        let tz = if tz.shape() == shape {
            tz
        } else {
            tz.broadcast_to(&shape)
        };
        Some(self.act.vjp_rule(ctx.output, tz))
    }
    /// Rows where only `x` is batched.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.rows(0) && !(1..batch.inputs.len()).any(|p| batch.rows(p))
    }
    fn has_per_example(&self, k: usize, _: &BatchView<'_>) -> bool {
        k >= 1
    }
    /// The weight's (`k` = 1) or the bias's gradient for each example, from the output's
    /// adjoint through the activation (the identity's is the adjoint itself, no pass).
    fn per_example(&self, k: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        let pre = match self.act {
            Activation::Identity => ctx.grad.clone(),
            act => {
                let pre: Vec<T> = (ctx.output.data().iter().zip(ctx.grad.data()))
                    .map(|(&y, &g)| act.vjp_from_output(y, g))
                    .collect();
                Tensor::from_vec(pre, ctx.grad.shape())
            }
        };
        if k == 1 {
            weight_rule(ctx.inputs[0], &pre, n)
        } else {
            pre.into_vec()
        }
    }
    /// `x` is `[rows, k]`, `w` `[k, n]`.
    fn multiply_adds(&self, inputs: &[&Tensor<T>]) -> u64 {
        (inputs[0].numel() * inputs[1].shape()[1]) as u64
    }
}

/// Panics naming the three shapes unless they are `[n, k]`, `[k, m]` and `[m]`.
#[track_caller]
fn check_linear(xs: &[usize], ws: &[usize], bs: &[usize]) {
    let ok = xs.len() == 2 && ws.len() == 2 && xs[1] == ws[0] && bs == [ws[1]];
    assert!(
        ok,
        "linear: x {} w {} b {}: expected [n, k] x [k, m] + [m]",
        Dims(xs),
        Dims(ws),
        Dims(bs)
    );
}

/// `x w + b`: each output row starts as `b` and the product is accumulated onto it
/// (inside the product's kernel), saving the separate broadcast add (a pass and an
/// allocation). With an activation, each thread applies it to the rows it has just
/// computed.
fn linear_forward<T: Float>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: &Tensor<T>,
    act: Activation,
) -> Tensor<T> {
    // The shapes were checked at the caller's line (`Var::check_linear`).
    let (n, k, m) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    let (xm, wm) = (
        MatRef::row_major(x.data(), n, k),
        MatRef::row_major(w.data(), k, m),
    );
    let out = match act {
        Activation::Identity => matmul_bias_vec(xm, wm, b.data()),
        act => matmul_bias_epilogue_vec(xm, wm, b.data(), &|c| activate_in_place(act, c)),
    };
    Tensor::from_vec(out, [n, m])
}

fn linear_grads<T: Float>(ctx: &VjpContext<'_, T>, g: &Tensor<T>) -> InputGrads<T> {
    let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
    let (n, k, m) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    let gm = MatRef::row_major(g.data(), n, m);
    let dx = || {
        let out = matmul_vec(gm, MatRef::row_major(w.data(), k, m).t());
        Tensor::from_vec(out, [n, k])
    };
    let dw = || {
        let out = matmul_vec(MatRef::row_major(x.data(), n, k).t(), gm);
        Tensor::from_vec(out, [k, m])
    };
    let db = || {
        #[inline(always)]
        fn column_sums<T: Float>(out: &mut [T], g: &[T]) {
            for row in g.chunks_exact(out.len().max(1)) {
                for (o, &v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }
        let mut out = vec![T::zero(); m];
        wide(
            #[inline(always)]
            || column_sums(&mut out, g.data()),
        );
        Tensor::from_vec(out, [m])
    };
    if ctx.wants[0] && ctx.wants[1] && schedule::side_by_side(n * k * m, n * k) {
        // Part 0 (the calling thread) takes dx, part 1 dw and db (dx is the slower
        // product, and the caller also publishes the job); the products inside a part
        // run unsplit, so the values are those of a one-thread run.
        let (gx, gw, gb) = (OnceLock::new(), OnceLock::new(), OnceLock::new());
        pool::for_parts(2, &|part| {
            if part == 0 {
                let _ = gx.set(dx());
            } else {
                let _ = gw.set(dw());
                if ctx.wants[2] {
                    let _ = gb.set(db());
                }
            }
        });
        return smallvec![gx.into_inner(), gw.into_inner(), gb.into_inner()];
    }
    smallvec![want(ctx, 0, dx), want(ctx, 1, dw), want(ctx, 2, db)]
}

impl<'t, T: Float> Var<'t, T> {
    /// The affine map of a fully connected layer, `x w + b` for `x: [n, k]`,
    /// `w: [k, m]`, `b: [m]`, as one fused op (same values as `x.matmul(w) + b`).
    #[track_caller]
    pub fn linear(self, w: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
        self.linear_with(w, b, Activation::Identity)
    }

    /// `act(x w + b)` as one op: [`Var::linear`] with each thread applying the
    /// activation to the rows it has just computed (no pass of its own over the output,
    /// and no copy of `x w + b` kept for the gradient, which comes from the output:
    /// see [`Activation`]). Same values as `x.linear(w, b).activation(act)`, gradients
    /// included.
    #[track_caller]
    pub fn linear_with(self, w: Var<'t, T>, b: Var<'t, T>, act: Activation) -> Var<'t, T> {
        self.check_linear(w, b);
        self.tape.record(&[self, w, b], |v, _| {
            (linear_forward(v[0], v[1], v[2], act), Linear { act })
        })
    }

    /// `relu(x w + b)` as one op: [`Var::linear_with`] the ReLU.
    #[track_caller]
    pub fn linear_relu(self, w: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
        self.linear_with(w, b, Activation::Relu)
    }

    /// `sigmoid(x w + b)` as one op: [`Var::linear_with`] the sigmoid.
    #[track_caller]
    pub fn linear_sigmoid(self, w: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
        self.linear_with(w, b, Activation::Sigmoid)
    }

    /// `tanh(x w + b)` as one op: [`Var::linear_with`] the hyperbolic tangent.
    #[track_caller]
    pub fn linear_tanh(self, w: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
        self.linear_with(w, b, Activation::Tanh)
    }

    /// Checks, at the caller's line, the tapes and shapes of `linear` and its fusions.
    #[track_caller]
    fn check_linear(self, w: Var<'t, T>, b: Var<'t, T>) {
        self.tape.check_owns(w);
        self.tape.check_owns(b);
        check_linear(&self.shape(), &w.shape(), &b.shape());
    }

    /// Matrix product: `[m, k] x [k, n] -> [m, n]`; batched `[b, m, k] x [b, k, n]`;
    /// or a batch against one matrix, `[b, m, k] x [k, n] -> [b, m, n]`.
    ///
    /// Panics naming both shapes when the inner dimensions differ.
    #[track_caller]
    pub fn matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        self.tape.check_owns(other);
        layout(&self.shape(), &other.shape());
        self.tape
            .record(&[self, other], |x, _| (forward(x[0], x[1]), MatMul))
    }
}

#[cfg(test)]
mod tests {
    use super::transposed;
    use crate::func::{function, jvp};
    use crate::{gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor, Var};

    fn op(t: bool, x: Var<'_, f64>) -> Var<'_, f64> {
        if t {
            x.t()
        } else {
            x
        }
    }

    fn matrix(rows: usize, cols: usize, seed: usize) -> Tensor<f64> {
        let data = (0..rows * cols)
            .map(|i| ((i * 7 + seed * 13) % 23) as f64 / 11.0 - 1.0)
            .collect();
        Tensor::from_vec(data, [rows, cols])
    }

    /// The four ways round: `a` stored `[m, k]` or `[k, m]`, `b` `[k, n]` or `[n, k]`.
    fn cases() -> Vec<(bool, bool, Tensor<f64>, Tensor<f64>)> {
        let (m, k, n) = (3, 4, 5);
        let mut out = Vec::new();
        for a_t in [false, true] {
            for b_t in [false, true] {
                let a = if a_t {
                    matrix(k, m, 1)
                } else {
                    matrix(m, k, 1)
                };
                let b = if b_t {
                    matrix(n, k, 2)
                } else {
                    matrix(k, n, 2)
                };
                out.push((a_t, b_t, a, b));
            }
        }
        out
    }

    /// Values equal the product of copied transposes to rounding; the vjp (fast), its
    /// recorded form (second order, again through transposed products) and the tangent
    /// agree with finite differences.
    #[test]
    fn transposed_products_match_copies_and_finite_differences() {
        for (a_t, b_t, a, b) in cases() {
            let tape = Tape::new();
            let (va, vb) = (tape.param(&a), tape.param(&b));
            let fast = transposed(va, a_t, vb, b_t).value();
            let copied = op(a_t, va).matmul(op(b_t, vb)).value();
            for (x, y) in fast.data().iter().zip(copied.data()) {
                assert!((x - y).abs() < 1e-14, "a_t {a_t} b_t {b_t}: {x} vs {y}");
            }
            let f = function(move |_, p| {
                let y = transposed(p[0], a_t, p[1], b_t);
                (y * y).sum()
            });
            let inputs = [a.clone(), b.clone()];
            gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
            gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
            let (va, vb) = (
                matrix(a.shape()[0], a.shape()[1], 3),
                matrix(b.shape()[0], b.shape()[1], 4),
            );
            let (_, tangent) = jvp(f, &inputs, &[va.clone(), vb.clone()]);
            let at = |h: f64| {
                let shift = |x: &Tensor<f64>, v: &Tensor<f64>| {
                    Tensor::from_vec(
                        x.data()
                            .iter()
                            .zip(v.data())
                            .map(|(x, v)| x + h * v)
                            .collect(),
                        x.shape(),
                    )
                };
                let tape = Tape::new();
                let (pa, pb) = (tape.param(shift(&a, &va)), tape.param(shift(&b, &vb)));
                f(&tape, &[pa, pb]).item()
            };
            let numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!(
                (tangent.item() - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
                "a_t {a_t} b_t {b_t}: {} vs {numeric}",
                tangent.item()
            );
        }
    }
}
