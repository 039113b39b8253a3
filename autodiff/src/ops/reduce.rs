//! Reductions: sum, mean and max over all axes or a chosen set, with or without keepdim.
//! Their vjps broadcast the output's adjoint back over the reduced axes.

use super::{InputGrads, Op, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::broadcast::broadcast_to;
use crate::kernels::reduce::{self, kept_shape};
use crate::shape::{check_axis, Dims, Shape};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};
use std::rc::Rc;

type Mask = SmallVec<[bool; 4]>;

/// The reduced axes as a mask; panics naming the shape when an axis is out of range
/// or repeated.
#[track_caller]
fn mask(op: &'static str, shape: &[usize], axes: &[usize]) -> Mask {
    let mut m: Mask = smallvec![false; shape.len()];
    for &a in axes {
        check_axis(op, a, shape);
        assert!(
            !m[a],
            "{op}: axis {a} is listed twice for shape {}",
            Dims(shape)
        );
        m[a] = true;
    }
    m
}

fn out_shape(shape: &[usize], reduced: &[bool], keepdim: bool) -> Shape {
    if keepdim {
        kept_shape(shape, reduced)
    } else {
        shape
            .iter()
            .zip(reduced)
            .filter(|(_, &r)| !r)
            .map(|(&d, _)| d)
            .collect()
    }
}

/// Sum and mean: every input element gets the adjoint of its output (divided by the
/// count for a mean).
pub(crate) fn sum_vjp<T: Float>(
    reduced: &[bool],
    count: Option<usize>,
    ctx: &VjpContext<'_, T>,
) -> InputGrads<T> {
    let x = ctx.inputs[0];
    let g = ctx.grad.clone().reshape(kept_shape(x.shape(), reduced));
    let mut full = broadcast_to(&g, x.shape());
    if let Some(n) = count {
        full *= T::one() / T::from_usize(n.max(1));
    }
    smallvec![Some(full)]
}

/// Max: the adjoint goes to the first maximal element of each group.
pub(crate) fn max_vjp<T: Float>(argmax: &[usize], ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let x = ctx.inputs[0];
    let mut out = Tensor::zeros(x.shape());
    for (&i, &g) in argmax.iter().zip(ctx.grad.data()) {
        out.data_mut()[i] += g;
    }
    smallvec![Some(out)]
}

/// Recorded: the adjoint broadcast back over the reduced axes (scaled for a mean).
pub(crate) fn sum_vjp_var<'t, T: Float>(
    reduced: &[bool],
    count: Option<usize>,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let shape = ctx.inputs[0].shape();
    let g = ctx
        .grad
        .reshape(kept_shape(&shape, reduced))
        .broadcast_to(&shape);
    let g = match count {
        Some(n) => g * (T::one() / T::from_usize(n.max(1))),
        None => g,
    };
    smallvec![Some(g)]
}

/// Recorded: the adjoint scattered to the maxima. The max's second derivative is zero
/// wherever it exists (the choice of maxima is a constant).
pub(crate) fn max_vjp_var<'t, T: Float>(
    argmax: &[usize],
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let shape = ctx.inputs[0].shape();
    smallvec![Some(ctx.grad.scatter_add(argmax.into(), &shape))]
}

/// The tangent of a max: the tangent at each maximum.
pub(crate) fn max_jvp_var<'t, T: Float>(
    argmax: &[usize],
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    let t = ctx.tangents[0]?;
    Some(t.gather(argmax.into(), &ctx.output.shape()))
}

impl<'t, T: Float> Var<'t, T> {
    /// Sum of all elements, as a rank-0 tensor.
    pub fn sum(self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.shape().len()).collect();
        self.sum_axes(&axes, false)
    }

    /// Sum over `axes`; `keepdim` keeps them as size-1 dimensions.
    ///
    /// Panics naming the shape when an axis is out of range or listed twice.
    #[track_caller]
    pub fn sum_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        let reduced = mask("sum", &self.shape(), axes);
        self.tape.record(&[self], move |x, _| {
            let out =
                reduce::sum(x[0], &reduced).reshape(out_shape(x[0].shape(), &reduced, keepdim));
            (out, Op::Sum { reduced })
        })
    }

    /// Mean of all elements, as a rank-0 tensor.
    pub fn mean(self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.shape().len()).collect();
        self.mean_axes(&axes, false)
    }

    /// Mean over `axes`; `keepdim` keeps them as size-1 dimensions.
    ///
    /// Panics naming the shape when an axis is out of range or listed twice.
    #[track_caller]
    pub fn mean_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        let reduced = mask("mean", &self.shape(), axes);
        self.tape.record(&[self], move |x, _| {
            let count: usize = x[0]
                .shape()
                .iter()
                .zip(&reduced)
                .filter(|(_, &r)| r)
                .map(|(&d, _)| d)
                .product();
            let out =
                reduce::sum(x[0], &reduced).reshape(out_shape(x[0].shape(), &reduced, keepdim))
                    * (T::one() / T::from_usize(count.max(1)));
            (out, Op::Mean { reduced, count })
        })
    }

    /// Maximum of all elements, as a rank-0 tensor.
    ///
    /// This is a reduction; the elementwise maximum of two tensors is not an op yet
    /// (the scalar tape names its pairwise form `maximum`).
    #[track_caller]
    pub fn max(self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.shape().len()).collect();
        self.max_axes(&axes, false)
    }

    /// Maximum over `axes`; `keepdim` keeps them as size-1 dimensions. The gradient goes
    /// to the first maximal element of each group.
    ///
    /// Panics naming the shape when an axis is out of range or listed twice, or the
    /// tensor is empty.
    #[track_caller]
    pub fn max_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        let shape = self.shape();
        let reduced = mask("max", &shape, axes);
        assert!(
            shape.iter().product::<usize>() > 0,
            "max: cannot reduce an empty tensor of shape {}",
            Dims(&shape)
        );
        self.tape.record(&[self], move |x, _| {
            let (out, argmax) = reduce::max(x[0], &reduced);
            (
                out.reshape(out_shape(x[0].shape(), &reduced, keepdim)),
                Op::Max {
                    argmax: Rc::new(argmax),
                },
            )
        })
    }
}
