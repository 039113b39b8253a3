//! The recorded operations. Each family's file holds, side by side, the forward
//! computation (a method on [`Var`](crate::Var)) and its vector-Jacobian product;
//! this file holds the op enum and the single backward dispatch.

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod custom;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod nn_ops;
pub(crate) mod reduce;
pub(crate) mod shape_ops;

use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::SmallVec;

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

/// A recorded operation with whatever its vjp needs beyond the input and output values.
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
        argmax: Vec<usize>,
    },
    Reshape,
    Permute(Shape),
    BroadcastTo,
    IndexSelect {
        axis: usize,
        indices: Vec<usize>,
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
        targets: Vec<usize>,
        probs: Tensor<T>,
    },
    Conv2d {
        geometry: crate::kernels::conv::Geometry,
        /// The forward pass's im2col columns, when it kept them for the weight gradient.
        cols: Option<crate::float::Recycled<T>>,
    },
    MaxPool2d {
        pool: crate::kernels::conv::Pool,
        argmax: Vec<crate::kernels::conv::PlaneIndex>,
    },
    AvgPool2d(crate::kernels::conv::Pool),
    Custom(Box<dyn CustomOp<T>>),
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
            Op::Conv2d { geometry, cols } => conv::conv2d_vjp(geometry, cols.as_ref(), ctx),
            Op::MaxPool2d { pool, argmax } => conv::max_pool_vjp(pool, argmax, ctx),
            Op::AvgPool2d(p) => conv::avg_pool_vjp(p, ctx),
            Op::Custom(c) => custom::vjp(c.as_ref(), ctx),
        }
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
