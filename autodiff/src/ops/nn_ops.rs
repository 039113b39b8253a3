//! Ops that neural networks lean on, fused for stability: softmax and log-softmax along
//! an axis, and cross-entropy straight from logits (never `ln(softmax(x))`).

use super::{InputGrads, Op, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::softmax::{self, lane_vjp, log_softmax};
use crate::shape::{check_axis, Dims};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::rc::Rc;

/// dx = y ⊙ (g - Σ g ⊙ y)
pub(crate) fn softmax_vjp<T: Float>(axis: usize, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    smallvec![Some(lane_vjp(
        ctx.output,
        ctx.grad,
        axis,
        |y, g| y * g,
        |y, g, s| y * (g - s)
    ))]
}

/// dx = g - softmax(x) Σ g, with softmax(x) = e^y
pub(crate) fn log_softmax_vjp<T: Float>(axis: usize, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    smallvec![Some(lane_vjp(
        ctx.output,
        ctx.grad,
        axis,
        |_, g| g,
        |y, g, s| g - y.exp() * s
    ))]
}

/// d mean_i(-log p[i, t_i]) / d logits = (p - onehot(t)) / n
pub(crate) fn cross_entropy_vjp<T: Float>(
    targets: &[usize],
    probs: &Tensor<T>,
    ctx: &VjpContext<'_, T>,
) -> InputGrads<T> {
    let n = targets.len();
    let classes = probs.shape()[1];
    let scale = ctx.grad.item() / T::from_usize(n.max(1));
    let mut out = probs.clone();
    for (row, &t) in out.data_mut().chunks_exact_mut(classes).zip(targets) {
        row[t] -= T::one();
        row.iter_mut().for_each(|v| *v *= scale);
    }
    smallvec![Some(out)]
}

/// Recorded: `y ⊙ (g - Σ g ⊙ y)`. The Jacobian is symmetric, so the tangent rule is
/// the same expression.
pub(crate) fn softmax_vjp_var<'t, T: Float>(
    axis: usize,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    smallvec![Some(softmax_rule(axis, ctx.output, ctx.grad))]
}

pub(crate) fn softmax_jvp_var<'t, T: Float>(
    axis: usize,
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    Some(softmax_rule(axis, ctx.output, ctx.tangents[0]?))
}

fn softmax_rule<'t, T: Float>(axis: usize, y: Var<'t, T>, g: Var<'t, T>) -> Var<'t, T> {
    y * (g - (g * y).sum_axes(&[axis], true))
}

/// Recorded: `g - e^y Σ g`.
pub(crate) fn log_softmax_vjp_var<'t, T: Float>(
    axis: usize,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let (y, g) = (ctx.output, ctx.grad);
    smallvec![Some(g - y.exp() * g.sum_axes(&[axis], true))]
}

/// The tangent of `x - logsumexp(x)`: `t - Σ softmax(x) t`.
pub(crate) fn log_softmax_jvp_var<'t, T: Float>(
    axis: usize,
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    let (y, t) = (ctx.output, ctx.tangents[0]?);
    Some(t - (y.exp() * t).sum_axes(&[axis], true))
}

/// `softmax(x) - onehot(targets)` for logits `x`, divided by the row count: the
/// cross-entropy's gradient for an adjoint of 1.
fn cross_entropy_slope<'t, T: Float>(x: Var<'t, T>, targets: &[usize]) -> Var<'t, T> {
    let shape = x.shape();
    let classes = shape[1];
    let mut onehot = Tensor::zeros(&shape);
    for (row, &t) in onehot.data_mut().chunks_exact_mut(classes).zip(targets) {
        row[t] = T::one();
    }
    let n = T::from_usize(targets.len().max(1));
    (x.softmax(1) - x.tape().constant(onehot)) * (T::one() / n)
}

/// Recorded: `(softmax(x) - onehot) g / n`, with the softmax recomputed on the tape so
/// that it is differentiated again.
pub(crate) fn cross_entropy_vjp_var<'t, T: Float>(
    targets: &Rc<[usize]>,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    smallvec![Some(cross_entropy_slope(ctx.inputs[0], targets) * ctx.grad)]
}

/// The tangent: `Σ (softmax(x) - onehot) ⊙ t / n`.
pub(crate) fn cross_entropy_jvp_var<'t, T: Float>(
    targets: &Rc<[usize]>,
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    let t = ctx.tangents[0]?;
    Some((cross_entropy_slope(ctx.inputs[0], targets) * t).sum())
}

impl<'t, T: Float> Var<'t, T> {
    /// Softmax along `axis`, computed stably (the maximum is subtracted first).
    #[track_caller]
    pub fn softmax(self, axis: usize) -> Var<'t, T> {
        check_axis("softmax", axis, &self.shape());
        self.tape.record(&[self], |x, _| {
            (softmax::softmax(x[0], axis), Op::Softmax { axis })
        })
    }

    /// `ln(softmax(x))` along `axis`, computed as `x - logsumexp(x)`: finite for any
    /// finite logits.
    #[track_caller]
    pub fn log_softmax(self, axis: usize) -> Var<'t, T> {
        check_axis("log_softmax", axis, &self.shape());
        self.tape.record(&[self], |x, _| {
            (log_softmax(x[0], axis), Op::LogSoftmax { axis })
        })
    }

    /// Mean cross-entropy of `[n, classes]` logits against class indices `targets`
    /// (one per row): `mean_i(logsumexp(x_i) - x_i[t_i])`, fused and stable.
    ///
    /// Panics if `targets` has the wrong length or holds a class out of range.
    #[track_caller]
    pub fn cross_entropy(self, targets: &[usize]) -> Var<'t, T> {
        let shape = self.shape();
        assert!(
            shape.len() == 2 && shape[0] == targets.len(),
            "cross_entropy: logits {} need shape [n, classes] with n = {} targets",
            Dims(&shape),
            targets.len()
        );
        let classes = shape[1];
        if let Some(&bad) = targets.iter().find(|&&t| t >= classes) {
            panic!("cross_entropy: target class {bad} is out of range for {classes} classes");
        }
        self.tape.record(&[self], |x, wants_grad| {
            let logits = x[0];
            // The probabilities (for the gradient) come with the log-probabilities.
            let (logp, probs) = softmax::log_softmax_rows(logits, wants_grad);
            let total: T = logp
                .data()
                .chunks_exact(classes.max(1))
                .zip(targets)
                .map(|(row, &t)| -row[t])
                .sum();
            let loss = Tensor::scalar(total / T::from_usize(targets.len().max(1)));
            let probs = probs.unwrap_or_else(|| Tensor::zeros([0, classes]));
            (
                loss,
                Op::CrossEntropy {
                    targets: targets.into(),
                    probs,
                },
            )
        })
    }
}
