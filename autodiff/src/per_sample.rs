//! Per-sample gradients: every parameter's gradient for each example of a batch, as a
//! tensor with the batch on its first axis ([`crate::func::per_sample_grads`]).
//!
//! Two paths give the same numbers (to rounding):
//!
//! - **Batched**: one forward pass over the whole batch and one reverse sweep seeded with
//!   ones on the per-example losses. Where an op's rows are the examples, the adjoint a
//!   sweep of the summed losses brings to row `i` is exactly what example `i` alone would
//!   bring there (no other example's loss depends on that row), so only the ops that read
//!   a parameter need per-example work: a linear layer's weight gradient for example `i`
//!   is the outer product of its input row and its output adjoint row (one pass for the
//!   batch, the trick behind Opacus and `torch.func.vmap(grad)`); a convolution's is that
//!   example's im2col product; a broadcast operand's is its element-wise rule summed
//!   within the example. Values computed from parameters alone (a transposed weight, say)
//!   get one adjoint per example and are swept once per example.
//! - **Loop**: one forward and backward pass per example. It works for every op.
//!
//! The batched path is taken when the recorded ops show that examples never meet: the
//! inputs' first axis is followed through every op (an op that sums over it, reshapes
//! across it, or multiplies two batched operands into one matrix mixes examples), and
//! every op that reads a parameter has a per-example rule. Otherwise the loop runs, and
//! [`PerSample::why_loop`] says which op stopped the batched path.

use crate::float::Float;
use crate::kernels::conv::{conv2d_grad_bias, conv2d_grad_weight, Geometry};
use crate::kernels::gemm::{matmul_into, MatRef};
use crate::kernels::per_example::outer_products;
use crate::kernels::pool;
use crate::ops::{Op, VjpContext};
use crate::shape::Dims;
use crate::tape::{Node, Tape, Var};
use crate::tensor::Tensor;
use smallvec::SmallVec;

/// A function of parameters (first slice) and a batch of inputs (second slice, each with
/// the examples on its first axis) that returns one loss per example, shape `[n]`.
///
/// Examples must not meet: example `i`'s loss may depend on the parameters and on row
/// `i` of each input only (no batch norm, no mean over the batch inside). Write the
/// per-example loss, not the batch mean: with `nn`, `Cost::per_example_of`.
pub trait BatchFunction<T: Float>:
    for<'t> Fn(&'t Tape<T>, &[Var<'t, T>], &[Var<'t, T>]) -> Var<'t, T>
{
}
impl<T: Float, F> BatchFunction<T> for F where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>], &[Var<'t, T>]) -> Var<'t, T>
{
}

/// Which way [`per_sample`] computes the gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PerSamplePath {
    /// Batched where the recorded ops allow it, else the loop.
    #[default]
    Auto,
    /// One batched pass; panics, saying why, where the ops do not allow it.
    Batched,
    /// One forward and backward pass per example: works for every op.
    Loop,
}

/// Per-example losses and gradients, from [`per_sample`].
#[derive(Clone, Debug)]
pub struct PerSample<T: Float> {
    /// Each example's loss, `[n]`.
    pub losses: Tensor<T>,
    /// One tensor per parameter, `[n, ..parameter's shape]`: row `i` is the gradient of
    /// example `i`'s loss (zeros where it does not depend on the parameter).
    pub grads: Vec<Tensor<T>>,
    /// Whether the batched path computed them.
    pub batched: bool,
    /// Why the batched path did not apply, when [`PerSamplePath::Auto`] fell back to the
    /// loop.
    pub why_loop: Option<String>,
}

/// Every parameter's gradient for each example: one tensor per parameter of shape
/// `[n, ..parameter's shape]`, row `i` the gradient of example `i`'s loss alone. The mean
/// over the rows is the gradient of the mean loss (the batch gradient). See
/// [`per_sample`] for the losses and the choice of path.
///
/// ```
/// use autodiff::func::per_sample_grads;
/// use autodiff::{Tape, Tensor, Var};
///
/// /// Per-example squared error of a linear model: (x w + b - y)², one per row.
/// fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], batch: &[Var<'t, f64>]) -> Var<'t, f64> {
///     let (x, y) = (batch[0], batch[1]);
///     (x.linear(p[0], p[1]) - y).square().sum_axes(&[1], false)
/// }
/// let w = Tensor::from_vec(vec![0.5, -1.0], [2, 1]);
/// let b = Tensor::from_vec(vec![0.1], [1]);
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]);
/// let y = Tensor::from_vec(vec![0.0, 1.0, -1.0], [3, 1]);
/// let g = per_sample_grads(losses, &[w, b], &[x, y]);
/// assert_eq!(g[0].shape(), &[3, 2, 1]); // one weight gradient per example
/// // Example 0: r = 0.5 - 2 + 0.1 = -1.4, dL/dw = 2 r x = [-2.8, -5.6].
/// assert!((g[0].data()[0] + 2.8).abs() < 1e-12 && (g[0].data()[1] + 5.6).abs() < 1e-12);
/// ```
#[track_caller]
pub fn per_sample_grads<T: Float>(
    f: impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
) -> Vec<Tensor<T>> {
    per_sample(f, params, inputs, PerSamplePath::Auto).grads
}

/// Per-example losses and gradients of `f` (see [`BatchFunction`]) at `params` for the
/// batch `inputs`, by the given path. Panics if the inputs do not share a first axis, if
/// `f` does not return one loss per example, or if [`PerSamplePath::Batched`] is asked
/// for where the ops do not allow it.
#[track_caller]
pub fn per_sample<T: Float>(
    f: impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    path: PerSamplePath,
) -> PerSample<T> {
    let n = batch_len(inputs);
    if n == 0 {
        return PerSample {
            losses: Tensor::zeros([0]),
            grads: params.iter().map(|p| stacked(Vec::new(), 0, p)).collect(),
            batched: path != PerSamplePath::Loop,
            why_loop: None,
        };
    }
    match path {
        PerSamplePath::Loop => looped(&f, params, inputs, n),
        PerSamplePath::Auto | PerSamplePath::Batched => match batched(&f, params, inputs, n) {
            Ok(result) => result,
            Err(why) if path == PerSamplePath::Auto => PerSample {
                why_loop: Some(why),
                ..looped(&f, params, inputs, n)
            },
            Err(why) => panic!("per_sample: the batched path does not apply here: {why}"),
        },
    }
}

/// The batch size every input shares. Panics naming the shapes otherwise.
#[track_caller]
fn batch_len<T: Float>(inputs: &[Tensor<T>]) -> usize {
    assert!(
        !inputs.is_empty(),
        "per_sample: needs at least one input, with the examples on its first axis"
    );
    let n = inputs[0].shape().first().copied();
    for (k, x) in inputs.iter().enumerate() {
        assert!(
            x.rank() >= 1 && x.shape().first().copied() == n,
            "per_sample: input {k} has shape {} but input 0 has shape {}: every input needs \
             the examples on its first axis",
            Dims(x.shape()),
            Dims(inputs[0].shape())
        );
    }
    n.unwrap_or(0)
}

#[track_caller]
fn check_losses(shape: &[usize], n: usize) {
    assert!(
        shape == [n],
        "per_sample: the function returned shape {} for a batch of {n}; it must return one \
         loss per example, shape [{n}] (a per-example cost, not the batch mean)",
        Dims(shape)
    );
}

/// `data` (n rows of `like`'s elements) as a tensor `[n, ..like's shape]`.
fn stacked<T: Float>(data: Vec<T>, n: usize, like: &Tensor<T>) -> Tensor<T> {
    let mut shape = vec![n];
    shape.extend_from_slice(like.shape());
    Tensor::from_vec(data, shape)
}

/// Example `e` of `x`, as a batch of one.
fn example<T: Float>(x: &Tensor<T>, e: usize) -> Tensor<T> {
    let len = x.numel() / x.shape()[0];
    let mut shape = x.shape().to_vec();
    shape[0] = 1;
    Tensor::from_vec(x.data()[e * len..(e + 1) * len].to_vec(), shape)
}

/// One forward and backward pass per example.
#[track_caller]
fn looped<T: Float>(
    f: &impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    n: usize,
) -> PerSample<T> {
    let mut grads: Vec<Vec<T>> = params
        .iter()
        .map(|p| Vec::with_capacity(n * p.numel()))
        .collect();
    let mut losses = Vec::with_capacity(n);
    for e in 0..n {
        let tape = Tape::new();
        let ps: Vec<Var<'_, T>> = params.iter().map(|p| tape.param(p)).collect();
        let xs: Vec<Var<'_, T>> = inputs
            .iter()
            .map(|x| tape.constant(example(x, e)))
            .collect();
        let loss = f(&tape, &ps, &xs);
        check_losses(&loss.shape(), 1);
        losses.push(loss.item());
        let g = loss.backward();
        for ((out, &p), value) in grads.iter_mut().zip(&ps).zip(params) {
            match g.get(p) {
                Some(t) => out.extend_from_slice(t.data()),
                None => out.resize(out.len() + value.numel(), T::zero()),
            }
        }
    }
    PerSample {
        losses: Tensor::from_vec(losses, [n]),
        grads: grads
            .into_iter()
            .zip(params)
            .map(|(g, p)| stacked(g, n, p))
            .collect(),
        batched: false,
        why_loop: None,
    }
}

/// How a recorded value relates to the batch.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// The same for every example (parameters, constants, values made of them).
    Shared,
    /// First axis = the examples; row `i` depends on example `i` (and shared values) only.
    Rows,
    /// Examples meet here, or a parameter enters an op with no per-example rule.
    Mixed(String),
}

/// The batched path, or why it does not apply.
#[track_caller]
fn batched<T: Float>(
    f: &impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    n: usize,
) -> Result<PerSample<T>, String> {
    let tape = Tape::new();
    let ps: Vec<Var<'_, T>> = params.iter().map(|p| tape.param(p)).collect();
    // Recorded as parameters so that the ops on them are recorded (ops on constants
    // alone are folded into constants), but never swept into: see `depends`.
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.param(x)).collect();
    let loss = f(&tape, &ps, &xs);
    check_losses(&loss.shape(), n);
    let root = loss.id() as usize;
    let nodes = tape.nodes();
    let mut kinds = Vec::with_capacity(root + 1);
    // Whether a value depends on some parameter: only those need an adjoint.
    let mut depends = Vec::with_capacity(root + 1);
    for (i, node) in nodes[..=root].iter().enumerate() {
        let input = xs.iter().any(|x| x.id() as usize == i);
        let (kind, dep) = if matches!(node.op, Op::Leaf) {
            if input {
                (Kind::Rows, false)
            } else {
                (Kind::Shared, node.requires_grad)
            }
        } else {
            let dep = node.inputs.iter().any(|&p| depends[p as usize]);
            (classify(node, &nodes, &kinds, &depends, n), dep)
        };
        kinds.push(kind);
        depends.push(dep);
    }
    match &kinds[root] {
        Kind::Mixed(why) => return Err(why.clone()),
        Kind::Shared => return Err("the losses do not depend on the batch".into()),
        Kind::Rows => {}
    }
    // Batch adjoints of `Rows` values; `n` stacked adjoints of `Shared` values.
    let mut adjoints: Vec<Option<Tensor<T>>> = vec![None; root + 1];
    let mut per_example: Vec<Option<Vec<T>>> = vec![None; root + 1];
    if depends[root] {
        adjoints[root] = Some(Tensor::ones([n]));
    }
    for i in (0..=root).rev() {
        let node = &nodes[i];
        if matches!(node.op, Op::Leaf) {
            continue;
        }
        let values: SmallVec<[&Tensor<T>; 2]> = node
            .inputs
            .iter()
            .map(|&p| &nodes[p as usize].value)
            .collect();
        if kinds[i] == Kind::Rows {
            let Some(grad) = adjoints[i].take() else {
                continue;
            };
            let wants: SmallVec<[bool; 2]> = node
                .inputs
                .iter()
                .map(|&p| depends[p as usize] && kinds[p as usize] == Kind::Rows)
                .collect();
            if wants.contains(&true) {
                for (p, g) in input_grads(node, &values, &grad, &wants) {
                    match &mut adjoints[p] {
                        slot @ None => *slot = Some(g),
                        Some(acc) => *acc += &g,
                    }
                }
            }
            for (k, &p) in node.inputs.iter().enumerate() {
                let p = p as usize;
                if kinds[p] == Kind::Shared && depends[p] {
                    let g = rule(&node.op, k, &values, &node.value, &grad, n);
                    add_into(&mut per_example[p], g);
                }
            }
        } else if let Some(stack) = per_example[i].take() {
            // A value made of parameters alone: its vjp once per example.
            let len = node.value.numel();
            let wants: SmallVec<[bool; 2]> =
                node.inputs.iter().map(|&p| depends[p as usize]).collect();
            for (e, g) in stack.chunks_exact(len.max(1)).enumerate().take(n) {
                let grad = Tensor::from_vec(g.to_vec(), node.value.shape());
                for (p, g) in input_grads(node, &values, &grad, &wants) {
                    let plen = g.numel();
                    let slot = per_example[p].get_or_insert_with(|| vec![T::zero(); n * plen]);
                    for (s, &v) in slot[e * plen..(e + 1) * plen].iter_mut().zip(g.data()) {
                        *s += v;
                    }
                }
            }
        }
    }
    let grads = ps
        .iter()
        .zip(params)
        .map(|(p, value)| {
            let data = per_example[p.id() as usize]
                .take()
                .unwrap_or_else(|| vec![T::zero(); n * value.numel()]);
            stacked(data, n, value)
        })
        .collect();
    Ok(PerSample {
        losses: nodes[root].value.clone(),
        grads,
        batched: true,
        why_loop: None,
    })
}

/// The gradients `node`'s vjp gives the inputs in `wants`, with their node indices.
fn input_grads<T: Float>(
    node: &Node<T>,
    values: &[&Tensor<T>],
    grad: &Tensor<T>,
    wants: &[bool],
) -> Vec<(usize, Tensor<T>)> {
    let ctx = VjpContext {
        inputs: values,
        output: &node.value,
        grad,
        wants,
    };
    node.inputs
        .iter()
        .zip(wants)
        .zip(node.op.vjp(&ctx))
        .filter_map(|((&p, &wanted), g)| g.filter(|_| wanted).map(|g| (p as usize, g)))
        .collect()
}

fn add_into<T: Float>(slot: &mut Option<Vec<T>>, g: Vec<T>) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            for (a, v) in acc.iter_mut().zip(g) {
                *a += v;
            }
        }
    }
}

/// The kind of a recorded op's output from its inputs' kinds.
fn classify<T: Float>(
    node: &Node<T>,
    nodes: &[Node<T>],
    kinds: &[Kind],
    depends: &[bool],
    n: usize,
) -> Kind {
    let ks: SmallVec<[&Kind; 2]> = node.inputs.iter().map(|&p| &kinds[p as usize]).collect();
    if let Some(Kind::Mixed(why)) = ks.iter().find(|k| matches!(k, Kind::Mixed(_))) {
        return Kind::Mixed(why.clone());
    }
    if ks.iter().all(|k| **k == Kind::Shared) {
        return Kind::Shared;
    }
    let shape = |p: usize| nodes[node.inputs[p] as usize].value.shape();
    let rows = |p: usize| *ks[p] == Kind::Rows;
    let out = node.value.shape();
    let name = node.op.name();
    let mixes = |how: &str| Kind::Mixed(format!("{name} {how}"));
    let leading = |s: &[usize]| s.first() == Some(&n);
    if !leading(out) {
        return mixes(&format!(
            "gives shape {} from batched input: its first axis is not the examples",
            Dims(out)
        ));
    }
    let ok = match &node.op {
        Op::Unary(_) | Op::Softmax { axis: 1.. } | Op::LogSoftmax { axis: 1.. } => true,
        Op::MaxPool2d { .. } | Op::AvgPool2d(_) => true,
        Op::IndexSelect { axis, .. } => *axis != 0,
        Op::Concat { axis } => *axis != 0 && (0..ks.len()).all(rows),
        Op::Sum { reduced } | Op::Mean { reduced, .. } => !reduced[0],
        Op::Max { argmax } => {
            // Rows when every output's maximum lies in its own example.
            let (per_in, per_out) = (
                nodes[node.inputs[0] as usize].value.numel() / n,
                node.value.numel() / n,
            );
            argmax
                .iter()
                .enumerate()
                .all(|(j, &a)| a / per_in.max(1) == j / per_out.max(1))
        }
        // Row-major: a reshape keeping the first axis keeps each example's block.
        Op::Reshape => leading(shape(0)),
        Op::BroadcastTo => leading(shape(0)) && shape(0).len() == out.len(),
        Op::Permute(perm) => perm[0] == 0,
        // A shared operand must be broadcast over the examples, unless it is data with
        // a row per example (a target built inside `f` from the batch's labels, say):
        // without a gradient, its row `i` can only be read by example `i` here.
        Op::Binary(_) => (0..2).all(|p| {
            let s = shape(p);
            let data = !depends[node.inputs[p] as usize];
            rows(p) || s.len() < out.len() || s[0] == 1 || (data && s.len() == out.len())
        }),
        Op::MatMul => matches!(
            (rows(0), rows(1), shape(0).len(), shape(1).len()),
            (true, false, 2 | 3, 2) | (true, true, 3, 3)
        ),
        Op::Linear | Op::LinearAct(_) | Op::Conv2d { .. } => rows(0) && !(1..ks.len()).any(rows),
        _ => false,
    };
    if !ok {
        return mixes("mixes the examples of the batch (or is not known not to)");
    }
    // Every parameter that enters here beside a batched value needs a per-example rule.
    for (k, &p) in node.inputs.iter().enumerate() {
        let p = p as usize;
        if kinds[p] == Kind::Shared && depends[p] && !has_rule(&node.op, k, shape(0)) {
            return mixes(&format!(
                "reads a parameter (input {k}) beside batched values, and has no per-example rule for it"
            ));
        }
    }
    Kind::Rows
}

/// Whether [`rule`] covers input `k` of `op` (input 0 of shape `first`).
fn has_rule<T: Float>(op: &Op<T>, k: usize, first: &[usize]) -> bool {
    match op {
        Op::Binary(_) => true,
        Op::MatMul => k == 1 && matches!(first.len(), 2 | 3),
        Op::Linear | Op::LinearAct(_) | Op::Conv2d { .. } => k >= 1,
        _ => false,
    }
}

/// Input `k`'s gradient for each example, stacked (`n` times its element count), at an
/// op whose output rows are the examples and whose output adjoint is `g`.
fn rule<T: Float>(
    op: &Op<T>,
    k: usize,
    inputs: &[&Tensor<T>],
    out: &Tensor<T>,
    g: &Tensor<T>,
    n: usize,
) -> Vec<T> {
    match op {
        Op::MatMul | Op::Linear if k == 1 => weight_rule(inputs[0], g, n),
        Op::Linear => g.data().to_vec(),
        Op::LinearAct(act) => {
            let pre: Vec<T> = out
                .data()
                .iter()
                .zip(g.data())
                .map(|(&y, &g)| act.vjp_from_output(y, g))
                .collect();
            let pre = Tensor::from_vec(pre, g.shape());
            if k == 1 {
                weight_rule(inputs[0], &pre, n)
            } else {
                pre.into_vec()
            }
        }
        Op::Conv2d { geometry, .. } => conv_rule(geometry, k, inputs[0], g, n),
        Op::Binary(b) => broadcast_rule(*b, k, inputs, out, g, n),
        _ => unreachable!("has_rule admits no other op"),
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
    let per = n.div_ceil(crate::cpu::threads().max(1));
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

/// A convolution's weight (`k` = 1) or bias (`k` = 2) gradient for each example.
fn conv_rule<T: Float>(
    geometry: &Geometry,
    k: usize,
    x: &Tensor<T>,
    g: &Tensor<T>,
    n: usize,
) -> Vec<T> {
    let one = Geometry { n: 1, ..*geometry };
    let o = one.o;
    let (x_len, g_len) = (x.numel() / n, g.numel() / n);
    let (xd, gd) = (x.data(), g.data());
    if k == 2 {
        // The batch kernel on each example alone: a single-example pass's arithmetic.
        return gd
            .chunks_exact(g_len.max(1))
            .flat_map(|ge| conv2d_grad_bias(&one, ge))
            .collect();
    }
    let w_len = o * (one.c / one.opts.groups) * one.kh * one.kw;
    let mut out = vec![T::zero(); n * w_len];
    let per = n.div_ceil(crate::cpu::threads().max(1));
    pool::for_chunks(&mut out, per * w_len, |band, chunk| {
        for (j, dw) in chunk.chunks_exact_mut(w_len).enumerate() {
            let e = band * per + j;
            let xe = &xd[e * x_len..(e + 1) * x_len];
            let ge = &gd[e * g_len..(e + 1) * g_len];
            dw.copy_from_slice(&conv2d_grad_weight(&one, ge, xe, None));
        }
    });
    out
}

/// Input `k` of a broadcasting binary op, shared by the examples: its element-wise rule
/// at every output element, summed per example over the axes it is broadcast along.
fn broadcast_rule<T: Float>(
    op: crate::ops::BinaryOp,
    k: usize,
    inputs: &[&Tensor<T>],
    out: &Tensor<T>,
    g: &Tensor<T>,
    n: usize,
) -> Vec<T> {
    let dims = out.shape();
    let rank = dims.len();
    // Each input's stride along each output axis (0 where it is broadcast).
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![0; rank];
        let mut acc = 1;
        for (a, &d) in s.iter().enumerate().rev() {
            let axis = rank - s.len() + a;
            st[axis] = if d == 1 { 0 } else { acc };
            acc *= d;
        }
        st
    };
    let (sa, sb) = (strides(inputs[0].shape()), strides(inputs[1].shape()));
    let shared_len = inputs[k].numel();
    let mut result = vec![T::zero(); n * shared_len];
    let per_example = out.numel() / n;
    let mut index = vec![0usize; rank];
    let (ad, bd, yd, gd) = (inputs[0].data(), inputs[1].data(), out.data(), g.data());
    for j in 0..out.numel() {
        let ia: usize = index.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = index.iter().zip(&sb).map(|(i, s)| i * s).sum();
        let d = op.vjp_rule(k, ad[ia], bd[ib], yd[j], gd[j]);
        let own = if k == 0 { ia } else { ib };
        result[(j / per_example) * shared_len + own] += d;
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    result
}
