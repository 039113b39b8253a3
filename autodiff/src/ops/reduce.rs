//! Reductions: sum, mean and max over all axes or a chosen set, with or without keepdim.
//! Their vjps broadcast the output's adjoint back over the reduced axes.

use super::{BatchView, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::{check_axis, numel, Dims, Shape};
use crate::tape::Var;
use crate::tensor::{self, broadcast_to, kept_shape, Tensor};
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

/// A sum over the `reduced` axes; with the reduced `count`, a mean (the sum times
/// `1 / count`).
pub(crate) struct Sum {
    reduced: Mask,
    count: Option<usize>,
}

impl<T: Float> Rule<T> for Sum {
    fn name(&self) -> String {
        (if self.count.is_some() { "mean" } else { "sum" }).into()
    }
    /// Every input element gets the adjoint of its output (divided by the count for a
    /// mean).
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let x = ctx.inputs[0];
        let g = ctx
            .grad
            .clone()
            .reshape(kept_shape(x.shape(), &self.reduced));
        let mut full = broadcast_to(&g, x.shape());
        if let Some(n) = self.count {
            full *= T::one() / T::from_usize(n.max(1));
        }
        smallvec![Some(full)]
    }
    /// Recorded: the adjoint broadcast back over the reduced axes (scaled for a mean).
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        let g = ctx
            .grad
            .reshape(kept_shape(&shape, &self.reduced))
            .broadcast_to(&shape);
        let g = match self.count {
            Some(n) => g * (T::one() / T::from_usize(n.max(1))),
            None => g,
        };
        smallvec![Some(g)]
    }
    /// Linear: the same reduction of the tangent.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        let reduced = &self.reduced;
        let axes: Vec<usize> = (0..reduced.len()).filter(|&a| reduced[a]).collect();
        let r = match self.count {
            None => t.sum_axes(&axes, true),
            Some(_) => t.mean_axes(&axes, true),
        };
        Some(r.reshape(ctx.output.shape()))
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        !self.reduced[0]
    }
}

/// A max over some axes: the flat index of each output's maximum.
pub(crate) struct Max {
    /// Shared, not copied: the forward pass's own vector.
    argmax: Rc<Vec<usize>>,
}

impl<T: Float> Rule<T> for Max {
    fn name(&self) -> String {
        "max".into()
    }
    /// The adjoint goes to the first maximal element of each group.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let x = ctx.inputs[0];
        let mut out = Tensor::zeros(x.shape());
        for (&i, &g) in self.argmax.iter().zip(ctx.grad.data()) {
            out.data_mut()[i] += g;
        }
        smallvec![Some(out)]
    }
    /// Recorded: the adjoint scattered to the maxima. The max's second derivative is zero
    /// wherever it exists (the choice of maxima is a constant).
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(ctx.grad.scatter_add(self.argmax[..].into(), &shape))]
    }
    /// The tangent at each maximum.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(t.gather(self.argmax[..].into(), &ctx.output.shape()))
    }
    /// Rows when every output's maximum lies in its own example.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        let n = batch.n;
        let (per_in, per_out) = (numel(batch.inputs[0].shape) / n, numel(batch.output) / n);
        self.argmax
            .iter()
            .enumerate()
            .all(|(j, &a)| a / per_in.max(1) == j / per_out.max(1))
    }
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
                tensor::sum(x[0], &reduced).reshape(out_shape(x[0].shape(), &reduced, keepdim));
            let count = None;
            (out, Sum { reduced, count })
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
                tensor::sum(x[0], &reduced).reshape(out_shape(x[0].shape(), &reduced, keepdim))
                    * (T::one() / T::from_usize(count.max(1)));
            let count = Some(count);
            (out, Sum { reduced, count })
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
            let (out, argmax) = tensor::max(x[0], &reduced);
            let out = out.reshape(out_shape(x[0].shape(), &reduced, keepdim));
            let argmax = Rc::new(argmax);
            (out, Max { argmax })
        })
    }
}
