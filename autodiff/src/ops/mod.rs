//! The recorded operations. Each family's file holds, side by side, the forward
//! computation (a method on [`Var`](crate::Var)) and its vector-Jacobian product;
//! this file holds the op enum and the single backward dispatch.

pub(crate) mod activation;
pub(crate) mod adjoint;
pub(crate) mod conv;
pub(crate) mod custom;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod nn_ops;
pub(crate) mod recompute;
pub(crate) mod reduce;
pub(crate) mod rules;
pub(crate) mod shape_ops;

use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::rc::Rc;

use activation::Activation;
pub use custom::CustomOp;
pub(crate) use elementwise::{BinaryOp, UnaryOp};

/// What a vjp sees: the op's input values, its output value, the adjoint of the output,
/// and which inputs want a gradient (the others need no work).
pub(crate) struct VjpContext<'a, T: Float> {
    pub(crate) inputs: &'a [&'a Tensor<T>],
    pub(crate) output: &'a Tensor<T>,
    pub(crate) grad: &'a Tensor<T>,
    pub(crate) wants: &'a [bool],
}

/// One optional gradient per input, in input order.
pub(crate) type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

/// What a recorded vjp sees: the same as [`VjpContext`], as values on the tape, so that
/// the gradients it returns are recorded ops (differentiable again).
pub(crate) struct VarVjp<'a, 't, T: Float> {
    pub(crate) inputs: &'a [Var<'t, T>],
    pub(crate) output: Var<'t, T>,
    pub(crate) grad: Var<'t, T>,
    pub(crate) wants: &'a [bool],
}

/// One optional recorded gradient per input, in input order.
pub(crate) type VarGrads<'t, T> = SmallVec<[Option<Var<'t, T>>; 2]>;

/// What a tangent rule (forward mode) sees: the op's inputs and output on the tape, and
/// each input's tangent (`None`: zero).
pub(crate) struct VarJvp<'a, 't, T: Float> {
    pub(crate) inputs: &'a [Var<'t, T>],
    pub(crate) output: Var<'t, T>,
    pub(crate) tangents: &'a [Option<Var<'t, T>>],
}

/// A recorded operation with whatever its vjp needs beyond the input and output values.
/// Cloning is cheap (shared parts are reference-counted): the recorded sweeps clone an
/// op to call its rules while they append to the tape.
#[derive(Clone)]
pub(crate) enum Op<T: Float> {
    /// A constant or a parameter: nothing to propagate.
    Leaf,
    Unary(UnaryOp<T>),
    Binary(BinaryOp),
    MatMul,
    Linear,
    /// `act(x w + b)`.
    LinearAct(activation::Activation),
    Sum {
        reduced: SmallVec<[bool; 4]>,
    },
    Mean {
        reduced: SmallVec<[bool; 4]>,
        count: usize,
    },
    Max {
        /// Shared, not copied: the forward pass's own vector.
        argmax: Rc<Vec<usize>>,
    },
    Reshape,
    Permute(Shape),
    BroadcastTo,
    IndexSelect {
        axis: usize,
        indices: Rc<[usize]>,
    },
    Concat {
        axis: usize,
    },
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    CrossEntropy {
        targets: Rc<[usize]>,
        probs: Tensor<T>,
    },
    Conv2d {
        geometry: crate::kernels::conv::Geometry,
        /// The forward pass's im2col columns, when it kept them for the weight gradient.
        cols: Option<Rc<crate::float::Recycled<T>>>,
    },
    MaxPool2d {
        pool: crate::kernels::conv::Pool,
        argmax: Rc<Vec<crate::kernels::conv::PlaneIndex>>,
    },
    AvgPool2d(crate::kernels::conv::Pool),
    Custom(Rc<dyn CustomOp<T>>),
    /// A block whose intermediate values are computed again when needed
    /// ([`Tape::recompute`](crate::Tape::recompute)).
    Recompute(Rc<recompute::Block<T>>),
    /// `x.flat[indices]` (an index of `usize::MAX` reads 0), under any shape.
    Gather {
        indices: Rc<[usize]>,
    },
    /// Zeros of the output's shape with `x.flat[i]` added at `indices[i]` (`usize::MAX`
    /// drops it): the vjp of `Gather`, and `Gather` is its vjp.
    ScatterAdd {
        indices: Rc<[usize]>,
    },
    /// `x` where `open`, else 0: the ReLU's vjp (a choice, so a NaN does not leak).
    Gate {
        open: Rc<[bool]>,
    },
    /// A convolution's input gradient from the output's adjoint and the weights (inputs
    /// `dy`, `w`): a transposed convolution.
    ConvGradInput(crate::kernels::conv::Geometry),
    /// A convolution's weight gradient from the output's adjoint and the input (inputs
    /// `dy`, `x`).
    ConvGradWeight(crate::kernels::conv::Geometry),
    /// Average pooling's adjoint: each output's adjoint spread over its window.
    AvgPoolGrad(crate::kernels::conv::Pool),
    /// The first-order vjp of a custom op that gives no differentiable one: its value
    /// is right, but differentiating it again is refused, naming the op.
    FirstOrderOnly {
        name: Rc<str>,
    },
}

impl<T: Float> Op<T> {
    /// The op's name as shown in `to_dot` and messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Op::Leaf => "leaf".into(),
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name().into(),
            Op::MatMul => "matmul".into(),
            Op::Linear => "linear".into(),
            Op::LinearAct(act) => format!("linear+{act}"),
            Op::Sum { .. } => "sum".into(),
            Op::Mean { .. } => "mean".into(),
            Op::Max { .. } => "max".into(),
            Op::Reshape => "reshape".into(),
            Op::Permute(p) => format!("permute{:?}", p.as_slice()),
            Op::BroadcastTo => "broadcast_to".into(),
            Op::IndexSelect { axis, .. } => format!("index_select(axis {axis})"),
            Op::Concat { axis } => format!("concat(axis {axis})"),
            Op::Softmax { axis } => format!("softmax(axis {axis})"),
            Op::LogSoftmax { axis } => format!("log_softmax(axis {axis})"),
            Op::CrossEntropy { .. } => "cross_entropy".into(),
            Op::Conv2d { .. } => "conv2d".into(),
            Op::MaxPool2d { .. } => "max_pool2d".into(),
            Op::AvgPool2d(_) => "avg_pool2d".into(),
            Op::Custom(c) => c.name().into(),
            Op::Recompute(_) => "recompute".into(),
            Op::Gather { .. } => "gather".into(),
            Op::ScatterAdd { .. } => "scatter_add".into(),
            Op::Gate { .. } => "gate".into(),
            Op::ConvGradInput(_) => "conv2d_grad_input".into(),
            Op::ConvGradWeight(_) => "conv2d_grad_weight".into(),
            Op::AvgPoolGrad(_) => "avg_pool2d_grad".into(),
            Op::FirstOrderOnly { name } => format!("vjp of {name}"),
        }
    }

    /// The single backward dispatch: each family computes its vector-Jacobian products.
    pub(crate) fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        match self {
            Op::Leaf => SmallVec::new(),
            Op::Unary(u) => elementwise::unary_vjp(*u, ctx),
            Op::Binary(b) => elementwise::binary_vjp(*b, ctx),
            Op::MatMul => matmul::vjp(ctx),
            Op::Linear => matmul::linear_vjp(ctx),
            Op::LinearAct(act) => matmul::linear_act_vjp(*act, ctx),
            Op::Sum { reduced } => reduce::sum_vjp(reduced, None, ctx),
            Op::Mean { reduced, count } => reduce::sum_vjp(reduced, Some(*count), ctx),
            Op::Max { argmax } => reduce::max_vjp(argmax, ctx),
            Op::Reshape => shape_ops::reshape_vjp(ctx),
            Op::Permute(perm) => shape_ops::permute_vjp(perm, ctx),
            Op::BroadcastTo => shape_ops::broadcast_to_vjp(ctx),
            Op::IndexSelect { axis, indices } => shape_ops::index_select_vjp(*axis, indices, ctx),
            Op::Concat { axis } => shape_ops::concat_vjp(*axis, ctx),
            Op::Softmax { axis } => nn_ops::softmax_vjp(*axis, ctx),
            Op::LogSoftmax { axis } => nn_ops::log_softmax_vjp(*axis, ctx),
            Op::CrossEntropy { targets, probs } => nn_ops::cross_entropy_vjp(targets, probs, ctx),
            Op::Conv2d { geometry, cols } => conv::conv2d_vjp(geometry, cols.as_deref(), ctx),
            Op::MaxPool2d { pool, argmax } => conv::max_pool_vjp(pool, argmax, ctx),
            Op::AvgPool2d(p) => conv::avg_pool_vjp(p, ctx),
            Op::Custom(c) => custom::vjp(c.as_ref(), ctx),
            Op::Recompute(block) => recompute::vjp(block.as_ref(), ctx),
            Op::Gather { indices } => adjoint::gather_vjp(indices, ctx),
            Op::ScatterAdd { indices } => adjoint::scatter_add_vjp(indices, ctx),
            Op::Gate { open } => adjoint::gate_vjp(open, ctx),
            Op::ConvGradInput(g) => adjoint::conv_grad_input_vjp(g, ctx),
            Op::ConvGradWeight(g) => adjoint::conv_grad_weight_vjp(g, ctx),
            Op::AvgPoolGrad(p) => adjoint::avg_pool_grad_vjp(p, ctx),
            Op::FirstOrderOnly { name } => custom::refuse_second_order(name),
        }
    }

    /// The vjp recorded as ops on the tape (for [`Var::grad`]): the same rule as
    /// [`Op::vjp`], in differentiable ops, so it can be differentiated again.
    #[track_caller]
    pub(crate) fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        match self {
            Op::Leaf => SmallVec::new(),
            Op::Unary(u) => elementwise::unary_vjp_var(*u, ctx),
            Op::Binary(b) => elementwise::binary_vjp_var(*b, ctx),
            Op::MatMul => matmul::vjp_var(ctx),
            Op::Linear => matmul::linear_vjp_var(Activation::Identity, ctx),
            Op::LinearAct(act) => matmul::linear_vjp_var(*act, ctx),
            Op::Sum { reduced } => reduce::sum_vjp_var(reduced, None, ctx),
            Op::Mean { reduced, count } => reduce::sum_vjp_var(reduced, Some(*count), ctx),
            Op::Max { argmax } => reduce::max_vjp_var(argmax, ctx),
            Op::Reshape => shape_ops::reshape_vjp_var(ctx),
            Op::Permute(perm) => shape_ops::permute_vjp_var(perm, ctx),
            Op::BroadcastTo => shape_ops::broadcast_to_vjp_var(ctx),
            Op::IndexSelect { axis, indices } => {
                shape_ops::index_select_vjp_var(*axis, indices, ctx)
            }
            Op::Concat { axis } => shape_ops::concat_vjp_var(*axis, ctx),
            Op::Softmax { axis } => nn_ops::softmax_vjp_var(*axis, ctx),
            Op::LogSoftmax { axis } => nn_ops::log_softmax_vjp_var(*axis, ctx),
            Op::CrossEntropy { targets, .. } => nn_ops::cross_entropy_vjp_var(targets, ctx),
            Op::Conv2d { geometry, .. } => conv::conv2d_vjp_var(geometry, ctx),
            Op::MaxPool2d { pool, argmax } => conv::max_pool_vjp_var(pool, argmax, ctx),
            Op::AvgPool2d(p) => conv::avg_pool_vjp_var(p, ctx),
            Op::Custom(c) => custom::vjp_var(c, ctx),
            Op::Recompute(block) => recompute::vjp_var(block.as_ref(), ctx),
            Op::Gather { indices } => adjoint::gather_vjp_var(indices, ctx),
            Op::ScatterAdd { indices } => adjoint::scatter_add_vjp_var(indices, ctx),
            Op::Gate { open } => adjoint::gate_vjp_var(open, ctx),
            Op::ConvGradInput(g) => adjoint::conv_grad_input_vjp_var(g, ctx),
            Op::ConvGradWeight(g) => adjoint::conv_grad_weight_vjp_var(g, ctx),
            Op::AvgPoolGrad(p) => adjoint::avg_pool_grad_vjp_var(p, ctx),
            Op::FirstOrderOnly { name } => custom::refuse_second_order(name),
        }
    }

    /// The tangent rule (forward mode): the output's tangent from the inputs' tangents,
    /// recorded as ops; `None` when it is zero.
    #[track_caller]
    pub(crate) fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        match self {
            Op::Leaf => None,
            Op::Unary(u) => elementwise::unary_jvp_var(*u, ctx),
            Op::Binary(b) => elementwise::binary_jvp_var(*b, ctx),
            Op::MatMul => matmul::jvp_var(ctx),
            Op::Linear => matmul::linear_jvp_var(Activation::Identity, ctx),
            Op::LinearAct(act) => matmul::linear_jvp_var(*act, ctx),
            Op::Sum { .. }
            | Op::Mean { .. }
            | Op::Reshape
            | Op::Permute(_)
            | Op::BroadcastTo
            | Op::IndexSelect { .. }
            | Op::Gather { .. }
            | Op::ScatterAdd { .. }
            | Op::Gate { .. }
            | Op::AvgPool2d(_)
            | Op::AvgPoolGrad(_) => self.linear_jvp_var(ctx),
            Op::Concat { axis } => shape_ops::concat_jvp_var(*axis, ctx),
            Op::Max { argmax } => reduce::max_jvp_var(argmax, ctx),
            Op::Softmax { axis } => nn_ops::softmax_jvp_var(*axis, ctx),
            Op::LogSoftmax { axis } => nn_ops::log_softmax_jvp_var(*axis, ctx),
            Op::CrossEntropy { targets, .. } => nn_ops::cross_entropy_jvp_var(targets, ctx),
            Op::Conv2d { geometry, cols } => conv::conv2d_jvp_var(geometry, cols.as_ref(), ctx),
            Op::MaxPool2d { pool, argmax } => conv::max_pool_jvp_var(pool, argmax, ctx),
            Op::Custom(c) => custom::jvp_var(c, ctx),
            Op::Recompute(block) => recompute::jvp_var(block.as_ref(), ctx),
            Op::ConvGradInput(g) => adjoint::conv_grad_input_jvp_var(g, ctx),
            Op::ConvGradWeight(g) => adjoint::conv_grad_weight_jvp_var(g, ctx),
            Op::FirstOrderOnly { name } => custom::refuse_second_order(name),
        }
    }

    /// The tangent of an op that is linear in its one input: the op applied to the
    /// tangent.
    fn linear_jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        let out_shape = ctx.output.shape();
        Some(match self {
            Op::Sum { reduced } | Op::Mean { reduced, .. } => {
                let axes: Vec<usize> = (0..reduced.len()).filter(|&a| reduced[a]).collect();
                let r = if matches!(self, Op::Sum { .. }) {
                    t.sum_axes(&axes, true)
                } else {
                    t.mean_axes(&axes, true)
                };
                r.reshape(&out_shape)
            }
            Op::Reshape => t.reshape(&out_shape),
            Op::Permute(perm) => t.permute(perm),
            Op::BroadcastTo => t.broadcast_to(&out_shape),
            Op::IndexSelect { axis, indices } => t.index_select(*axis, indices),
            Op::Gather { indices } => t.gather(indices.clone(), &out_shape),
            Op::ScatterAdd { indices } => t.scatter_add(indices.clone(), &out_shape),
            Op::Gate { open } => t.gated(open.clone()),
            Op::AvgPool2d(p) => t.avg_pool_with(*p),
            Op::AvgPoolGrad(p) => t.avg_pool_grad_with(*p, &out_shape),
            _ => unreachable!("linear_jvp_var: {} is not linear", self.name()),
        })
    }
}

/// The sum of two optional tangents (`None` is zero).
pub(crate) fn add_tangents<'t, T: Float>(
    a: Option<Var<'t, T>>,
    b: Option<Var<'t, T>>,
) -> Option<Var<'t, T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Gradient for the inputs that want one, computed lazily.
pub(crate) fn want<T: Float>(
    ctx: &VjpContext<'_, T>,
    i: usize,
    f: impl FnOnce() -> Tensor<T>,
) -> Option<Tensor<T>> {
    if ctx.wants[i] {
        Some(f())
    } else {
        None
    }
}
