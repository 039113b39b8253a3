//! Convolution and pooling over NCHW tensors, each forward beside its vjp. The
//! arithmetic lives in `kernels/conv.rs` (im2col + GEMM).

use super::{add_tangents, want, BatchView, InputGrads, Rule};
use super::{VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::{Float, Recycled};
use crate::kernels::conv::{self, out_len, Geometry, Pool};
use crate::kernels::{pool::for_chunks, schedule::examples_per_part};
use crate::ops::adjoint::NOWHERE;
use crate::shape::Dims;
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::rc::Rc;

pub use crate::kernels::conv::Conv2dOptions;

/// The convolution's sizes; panics naming both shapes when they do not fit.
#[track_caller]
fn geometry(x: &[usize], w: &[usize], opts: Conv2dOptions) -> Geometry {
    // A function, not a closure: closures cannot pass the caller's location on.
    #[track_caller]
    fn fail(x: &[usize], w: &[usize], why: String) -> ! {
        panic!("conv2d: input {} weight {}: {why}", Dims(x), Dims(w))
    }
    if x.len() != 4 || w.len() != 4 {
        fail(
            x,
            w,
            "expected input [n, c, h, w] and weight [out, c/groups, kh, kw]".into(),
        );
    }
    let g = opts.groups;
    if g == 0 || !x[1].is_multiple_of(g) || !w[0].is_multiple_of(g) || w[1] * g != x[1] {
        fail(
            x,
            w,
            format!(
                "{g} groups need channels divisible by groups and weight [out, {}/{g}, ..]",
                x[1]
            ),
        );
    }
    if opts.stride.contains(&0) || opts.dilation.contains(&0) {
        fail(
            x,
            w,
            format!(
                "stride {:?} and dilation {:?} must be positive",
                opts.stride, opts.dilation
            ),
        );
    }
    let oh = out_len(
        x[2],
        w[2],
        opts.stride[0],
        opts.padding[0],
        opts.dilation[0],
    );
    let ow = out_len(
        x[3],
        w[3],
        opts.stride[1],
        opts.padding[1],
        opts.dilation[1],
    );
    let (Some(oh), Some(ow)) = (oh, ow) else {
        fail(x, w, "the kernel is larger than the padded input".into())
    };
    Geometry {
        n: x[0],
        c: x[1],
        h: x[2],
        w: x[3],
        o: w[0],
        kh: w[2],
        kw: w[3],
        oh,
        ow,
        opts,
    }
}

/// A convolution, with or without a bias (inputs `x`, `w`, and `b` where there is one).
pub(crate) struct Conv2d<T: Float> {
    geometry: Geometry,
    /// The forward pass's im2col columns, when it kept them for the weight gradient.
    cols: Option<Rc<Recycled<T>>>,
}

impl<T: Float> Rule<T> for Conv2d<T> {
    fn name(&self) -> String {
        "conv2d".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (g, cols) = (&self.geometry, self.cols.as_deref());
        let (x, w, dy) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let dx = want(ctx, 0, || {
            Tensor::from_vec(conv::conv2d_grad_input(g, dy.data(), w.data()), x.shape())
        });
        let dw = want(ctx, 1, || {
            Tensor::from_vec(
                conv::conv2d_grad_weight(g, dy.data(), x.data(), cols.map(|c| &c.0[..])),
                w.shape(),
            )
        });
        let mut grads: InputGrads<T> = smallvec![dx, dw];
        if ctx.inputs.len() == 3 {
            // The bias's gradient sums each output channel's plane over the batch.
            grads.push(want(ctx, 2, || {
                Tensor::from_vec(conv::conv2d_grad_bias(g, dy.data()), [g.o])
            }));
        }
        grads
    }
    /// Recorded: the input's gradient is a transposed convolution and the weight's a
    /// correlation of the adjoint with the input, each an op with its own vjp
    /// (`ops/adjoint.rs`); the bias's sums the adjoint's planes.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let g = &self.geometry;
        let (x, w, dy) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let mut grads: VarGrads<'t, T> = smallvec![
            ctx.wants[0].then(|| dy.conv_grad_input(w, *g)),
            ctx.wants[1].then(|| dy.conv_grad_weight(x, *g)),
        ];
        if ctx.inputs.len() == 3 {
            grads.push(ctx.wants[2].then(|| dy.sum_axes(&[0, 2, 3], false)));
        }
        grads
    }
    /// Bilinear in input and weight, plus the bias: `conv(dx, w) + conv(x, dw) + db`.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (g, cols) = (&self.geometry, self.cols.as_ref());
        let (x, w) = (ctx.inputs[0], ctx.inputs[1]);
        let tx = ctx.tangents[0].map(|t| t.conv2d(w, g.opts));
        let tb = ctx.tangents.get(2).copied().flatten();
        // The bias's tangent rides on a convolution's fused bias where there is one.
        let (tw, tb) = match (ctx.tangents[1], tb, cols) {
            // `conv(x, dw)` from the forward pass's columns of `x`, not gathered again.
            (Some(t), b, Some(cols)) => (Some(x.conv2d_from_cols(t, b, *g, cols)), None),
            (Some(t), Some(b), None) => (Some(x.conv2d_bias(t, b, g.opts)), None),
            (t, b, _) => (t.map(|t| x.conv2d(t, g.opts)), b),
        };
        let tb = tb.map(|t| {
            t.reshape([1, g.o, 1, 1])
                .broadcast_to([g.n, g.o, g.oh, g.ow])
        });
        add_tangents(add_tangents(tx, tw), tb)
    }
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.rows(0) && !(1..batch.inputs.len()).any(|p| batch.rows(p))
    }
    fn has_per_example(&self, k: usize, _: &BatchView<'_>) -> bool {
        k >= 1
    }
    /// The weight (`k` = 1) or bias (`k` = 2) gradient for each example.
    fn per_example(&self, k: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        let (x, g) = (ctx.inputs[0], ctx.grad);
        let one = Geometry {
            n: 1,
            ..self.geometry
        };
        let o = one.o;
        let (x_len, g_len) = (x.numel() / n, g.numel() / n);
        let (xd, gd) = (x.data(), g.data());
        if k == 2 {
            // The batch kernel on each example alone: a single-example pass's arithmetic.
            return gd
                .chunks_exact(g_len.max(1))
                .flat_map(|ge| conv::conv2d_grad_bias(&one, ge))
                .collect();
        }
        let w_len = o * (one.c / one.opts.groups) * one.kh * one.kw;
        let mut out = vec![T::zero(); n * w_len];
        let per = examples_per_part(n);
        for_chunks(&mut out, per * w_len, |band, chunk| {
            for (j, dw) in chunk.chunks_exact_mut(w_len).enumerate() {
                let e = band * per + j;
                let xe = &xd[e * x_len..(e + 1) * x_len];
                let ge = &gd[e * g_len..(e + 1) * g_len];
                dw.copy_from_slice(&conv::conv2d_grad_weight(&one, ge, xe, None));
            }
        });
        out
    }
    /// Every output element is a dot product over `c / groups` channels of the kernel.
    fn multiply_adds(&self, _: &[&Tensor<T>]) -> u64 {
        let g = &self.geometry;
        (g.n * g.o * g.oh * g.ow * (g.c / g.opts.groups) * g.kh * g.kw) as u64
    }
}

/// Each pooled cell's position in the flat input, from its plane and its index in the
/// plane (`NOWHERE` for a window without a maximum).
fn flat_argmax(p: &Pool, argmax: &[conv::PlaneIndex]) -> Rc<[usize]> {
    let (plane_in, plane_out) = (p.h * p.w, (p.oh * p.ow).max(1));
    argmax
        .iter()
        .enumerate()
        .map(|(k, &a)| {
            if a == conv::EMPTY {
                NOWHERE
            } else {
                (k / plane_out) * plane_in + a as usize
            }
        })
        .collect()
}

/// Max pooling, with each window's maximum's index in its plane.
pub(crate) struct MaxPool2d {
    pool: Pool,
    argmax: Vec<conv::PlaneIndex>,
}

impl<T: Float> Rule<T> for MaxPool2d {
    fn name(&self) -> String {
        "max_pool2d".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(Tensor::from_vec(
            conv::max_pool_grad(&self.pool, &self.argmax, ctx.grad.data()),
            ctx.inputs[0].shape()
        ))]
    }
    /// Recorded: the adjoint scattered to each window's maximum. Max pooling's second
    /// derivative is zero wherever it exists.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        let flat = flat_argmax(&self.pool, &self.argmax);
        smallvec![Some(ctx.grad.scatter_add(flat, &shape))]
    }
    /// The tangent at each window's maximum.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(t.gather(flat_argmax(&self.pool, &self.argmax), &ctx.output.shape()))
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        true
    }
}

/// Average pooling (padding counts as 0).
pub(crate) struct AvgPool2d(pub(crate) Pool);

impl<T: Float> Rule<T> for AvgPool2d {
    fn name(&self) -> String {
        "avg_pool2d".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(Tensor::from_vec(
            conv::avg_pool_grad(&self.0, ctx.grad.data()),
            ctx.inputs[0].shape()
        ))]
    }
    /// Recorded: average pooling's adjoint, an op whose own vjp is average pooling.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(ctx.grad.avg_pool_grad_with(self.0, &shape))]
    }
    /// Linear: average pooling of the tangent.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.avg_pool_with(self.0))
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        true
    }
}

/// The pooling's sizes; panics naming the input's shape when they do not fit.
#[track_caller]
fn pool(op: &'static str, x: &[usize], kernel: usize, stride: usize, padding: usize) -> Pool {
    assert!(x.len() == 4, "{op}: input {} must be [n, c, h, w]", Dims(x));
    assert!(
        kernel > 0 && stride > 0,
        "{op}: kernel {kernel} and stride {stride} must be positive"
    );
    assert!(
        2 * padding <= kernel,
        "{op}: padding {padding} may be at most half the kernel {kernel}"
    );
    let oh = out_len(x[2], kernel, stride, padding, 1);
    let ow = out_len(x[3], kernel, stride, padding, 1);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        panic!(
            "{op}: kernel {kernel} is larger than the padded input {}",
            Dims(x)
        )
    };
    Pool {
        planes: x[0] * x[1],
        h: x[2],
        w: x[3],
        kernel: [kernel; 2],
        stride: [stride; 2],
        padding: [padding; 2],
        oh,
        ow,
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// 2-D convolution (cross-correlation, as in PyTorch) of `[n, c, h, w]` input with
    /// `[out, c / groups, kh, kw]` weights, giving `[n, out, oh, ow]`.
    ///
    /// Panics naming both shapes when they do not fit.
    #[track_caller]
    pub fn conv2d(self, weight: Var<'t, T>, options: Conv2dOptions) -> Var<'t, T> {
        self.tape.check_owns(weight);
        let g = geometry(&self.shape(), &weight.shape(), options);
        self.tape.record(&[self, weight], move |v, wants_grad| {
            let (out, cols) = conv::conv2d_forward(&g, v[0].data(), v[1].data(), None, wants_grad);
            let op = Conv2d {
                geometry: g,
                cols: cols.map(Rc::new),
            };
            (Tensor::from_vec(out, [g.n, g.o, g.oh, g.ow]), op)
        })
    }

    /// [`Var::conv2d`] plus a bias per output channel (`[out]`), fused: the bias is
    /// added to each output plane in place of a broadcast add and its reduction.
    #[track_caller]
    pub fn conv2d_bias(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        options: Conv2dOptions,
    ) -> Var<'t, T> {
        self.tape.check_owns(weight);
        self.tape.check_owns(bias);
        let g = geometry(&self.shape(), &weight.shape(), options);
        let bias_shape = bias.shape();
        assert!(
            bias_shape.as_slice() == [g.o],
            "conv2d: bias {} does not match {} output channels",
            Dims(&bias_shape),
            g.o
        );
        self.tape
            .record(&[self, weight, bias], move |v, wants_grad| {
                let (x, w, b) = (v[0].data(), v[1].data(), Some(v[2].data()));
                let (out, cols) = conv::conv2d_forward(&g, x, w, b, wants_grad);
                let op = Conv2d {
                    geometry: g,
                    cols: cols.map(Rc::new),
                };
                (Tensor::from_vec(out, [g.n, g.o, g.oh, g.ow]), op)
            })
    }

    /// `conv2d(self, weight) (+ bias)` from the im2col columns of `self` that an earlier
    /// convolution of `self` with the same geometry kept: recorded as that convolution,
    /// sharing the columns (which its weight gradient reads too).
    pub(crate) fn conv2d_from_cols(
        self,
        weight: Var<'t, T>,
        bias: Option<Var<'t, T>>,
        g: Geometry,
        cols: &Rc<Recycled<T>>,
    ) -> Var<'t, T> {
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        let cols = cols.clone();
        self.tape.record(&inputs, move |v, _| {
            let b = v.get(2).map(|b| b.data());
            let out = conv::conv2d_forward_from_cols(&g, &cols.0, v[1].data(), b);
            let op = Conv2d {
                geometry: g,
                cols: Some(cols),
            };
            (Tensor::from_vec(out, [g.n, g.o, g.oh, g.ow]), op)
        })
    }

    /// Max over `kernel x kernel` windows of the last two axes; padding never wins.
    #[track_caller]
    pub fn max_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Var<'t, T> {
        let p = pool("max_pool2d", &self.shape(), kernel, stride, padding);
        self.tape.record(&[self], move |v, _| {
            let (out, argmax) = conv::max_pool(&p, v[0].data());
            (
                Tensor::from_vec(out, [v[0].shape()[0], v[0].shape()[1], p.oh, p.ow]),
                MaxPool2d { pool: p, argmax },
            )
        })
    }

    /// Mean over `kernel x kernel` windows of the last two axes (padding counts as 0).
    #[track_caller]
    pub fn avg_pool2d(self, kernel: usize, stride: usize, padding: usize) -> Var<'t, T> {
        let p = pool("avg_pool2d", &self.shape(), kernel, stride, padding);
        self.tape.record(&[self], move |v, _| {
            let out = conv::avg_pool(&p, v[0].data());
            (
                Tensor::from_vec(out, [v[0].shape()[0], v[0].shape()[1], p.oh, p.ow]),
                AvgPool2d(p),
            )
        })
    }

    /// `[n, d1, d2, ...]` to `[n, d1 * d2 * ...]`.
    #[track_caller]
    pub fn flatten(self) -> Var<'t, T> {
        let shape = self.shape();
        assert!(!shape.is_empty(), "flatten: needs at least one dimension");
        self.reshape([shape[0], shape[1..].iter().product()])
    }
}
