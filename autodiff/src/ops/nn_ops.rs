//! Ops that neural networks lean on, fused for stability: softmax and log-softmax along
//! an axis, and cross-entropy straight from logits (never `ln(softmax(x))`); and
//! `masked_fill`, for attention's masks.

use super::rules::Real;
use super::{BatchView, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::softmax::{self, lane_vjp, log_softmax};
use crate::shape::{check_axis, numel, Dims};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::rc::Rc;

/// Softmax: dx = y ⊙ (g - Σ g ⊙ y). The Jacobian is symmetric, so the tangent rule is
/// the same expression with the tangent for `g`. Like each lane rule here, it is
/// `r(y, g, Σ w(y, g))` along the axis, written once over [`Real`]: on elements it is
/// the fast vjp (`lane_vjp`), on `Var`s the recorded one ([`on_tape`]).
fn softmax_weight<T: Float, R: Real<T>>(y: R, g: R) -> R {
    y * g
}
fn softmax_rule<T: Float, R: Real<T>>(y: R, g: R, s: R) -> R {
    y * (g - s)
}

/// Log-softmax: dx = g - softmax(x) Σ g, with softmax(x) = e^y.
fn log_softmax_weight<T: Float, R: Real<T>>(_: R, g: R) -> R {
    g
}
fn log_softmax_rule<T: Float, R: Real<T>>(y: R, g: R, s: R) -> R {
    g - y.exp_() * s
}

/// A lane rule recorded on the tape.
fn on_tape<'t, T: Float>(
    axis: usize,
    (y, g): (Var<'t, T>, Var<'t, T>),
    w: fn(Var<'t, T>, Var<'t, T>) -> Var<'t, T>,
    r: fn(Var<'t, T>, Var<'t, T>, Var<'t, T>) -> Var<'t, T>,
) -> Var<'t, T> {
    let s = w(y, g).sum_axes(&[axis], true);
    r(y, g, s)
}

/// Softmax or, with `log`, log-softmax along `axis`.
pub(crate) struct Softmax {
    axis: usize,
    log: bool,
}

impl<T: Float> Rule<T> for Softmax {
    fn name(&self) -> String {
        let log = if self.log { "log_" } else { "" };
        format!("{log}softmax(axis {})", self.axis)
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (yg, shape) = ((ctx.output.data(), ctx.grad.data()), ctx.output.shape());
        let dx = if self.log {
            let (w, r) = (log_softmax_weight::<T, T>, log_softmax_rule::<T, T>);
            lane_vjp(yg, shape, self.axis, w, r)
        } else {
            lane_vjp(
                yg,
                shape,
                self.axis,
                softmax_weight::<T, T>,
                softmax_rule::<T, T>,
            )
        };
        smallvec![Some(Tensor::from_vec(dx, shape))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (y, g, axis) = (ctx.output, ctx.grad, self.axis);
        smallvec![Some(if self.log {
            on_tape(
                axis,
                (y, g),
                log_softmax_weight::<T, _>,
                log_softmax_rule::<T, _>,
            )
        } else {
            on_tape(axis, (y, g), softmax_weight::<T, _>, softmax_rule::<T, _>)
        })]
    }
    /// Softmax's tangent is its vjp's rule; log-softmax's, of `x - logsumexp(x)`, is
    /// `t - Σ softmax(x) t`.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (y, t, axis) = (ctx.output, ctx.tangents[0]?, self.axis);
        Some(if self.log {
            t - (y.exp() * t).sum_axes(&[axis], true)
        } else {
            on_tape(axis, (y, t), softmax_weight::<T, _>, softmax_rule::<T, _>)
        })
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        self.axis != 0
    }
}

/// Mean cross-entropy of `[n, classes]` logits against class indices.
pub(crate) struct CrossEntropy<T: Float> {
    targets: Rc<[usize]>,
    /// The forward pass's softmax (empty when no gradient was wanted).
    probs: Tensor<T>,
}

impl<T: Float> Rule<T> for CrossEntropy<T> {
    fn name(&self) -> String {
        "cross_entropy".into()
    }
    /// d mean_i(-log p[i, t_i]) / d logits = (p - onehot(t)) / n
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let classes = self.probs.shape()[1];
        let scale = ctx.grad.item() / T::from_usize(self.targets.len().max(1));
        let mut out = self.probs.clone();
        for (row, &t) in out.data_mut().chunks_exact_mut(classes).zip(&*self.targets) {
            row[t] -= T::one();
            row.iter_mut().for_each(|v| *v *= scale);
        }
        smallvec![Some(out)]
    }
    /// Recorded: `(softmax(x) - onehot) g / n`, with the softmax recomputed on the tape
    /// so that it is differentiated again.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let slope = cross_entropy_slope(ctx.inputs[0], &self.targets);
        smallvec![Some(slope * ctx.grad)]
    }
    /// The tangent: `Σ (softmax(x) - onehot) ⊙ t / n`.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some((cross_entropy_slope(ctx.inputs[0], &self.targets) * t).sum())
    }
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

/// `x` with `value` where `mask` is true, the mask repeated over `x`'s leading axes.
/// Its adjoint (and tangent) is itself with 0, so it is closed under differentiation: a
/// masked position passes no gradient, by a choice rather than a multiply, so a `-inf`
/// fill never puts inf or NaN into one.
pub(crate) struct MaskedFill {
    mask: Rc<[bool]>,
}

fn masked_fill<T: Float>(x: &Tensor<T>, mask: &[bool], value: T) -> Tensor<T> {
    let data = x.data().iter().zip(mask.iter().cycle());
    let data = data.map(|(&v, &m)| if m { value } else { v }).collect();
    Tensor::from_vec(data, x.shape())
}

impl<T: Float> Rule<T> for MaskedFill {
    fn name(&self) -> String {
        "masked_fill".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(masked_fill(ctx.grad, &self.mask, T::zero()))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.masked_fill_rc(self.mask.clone(), T::zero()))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.masked_fill_rc(self.mask.clone(), T::zero()))
    }
    /// The mask is data, the same for every example, and no position reads another.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.rows(0)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `self` with `value` wherever `mask` is true (PyTorch's `masked_fill`). The mask
    /// covers the last axes: its length is the product of some trailing dimensions, and
    /// it repeats over the leading ones, so a `[t, t]` causal mask applies to
    /// `[batch, heads, t, t]`. Masked positions get no gradient; a `-inf` fill before a
    /// [`Var::softmax`] gives them probability 0 and keeps gradients finite (where each
    /// lane keeps an unmasked position: a lane of `-inf` alone is NaN, as in PyTorch).
    ///
    /// Panics if `mask.len()` is not the product of some trailing dimensions.
    #[track_caller]
    pub fn masked_fill(self, mask: &[bool], value: T) -> Var<'t, T> {
        let shape = self.shape();
        assert!(
            (0..=shape.len()).any(|k| numel(&shape[k..]) == mask.len()),
            "masked_fill: a mask of {} elements does not cover the last axes of {}",
            mask.len(),
            Dims(&shape)
        );
        self.masked_fill_rc(mask.into(), value)
    }

    /// [`Var::masked_fill`] with the mask shared (its rules record it again).
    pub(crate) fn masked_fill_rc(self, mask: Rc<[bool]>, value: T) -> Var<'t, T> {
        self.tape.record(&[self], |x, _| {
            (masked_fill(x[0], &mask, value), MaskedFill { mask })
        })
    }

    /// Softmax along `axis`, computed stably (the maximum is subtracted first).
    #[track_caller]
    pub fn softmax(self, axis: usize) -> Var<'t, T> {
        check_axis("softmax", axis, &self.shape());
        self.tape.record(&[self], |x, _| {
            let y = softmax::softmax(x[0].data(), x[0].shape(), axis);
            (
                Tensor::from_vec(y, x[0].shape()),
                Softmax { axis, log: false },
            )
        })
    }

    /// Softmax along the last axis over the positions where `mask` is false, and 0 where
    /// it is true: attention's masked softmax, the same values as
    /// `self.masked_fill(mask, -inf).softmax(last)` (bit for bit) without the filled
    /// copy or its op. The mask covers the last axes as [`Var::masked_fill`]'s does
    /// (whole lanes), so a `[t, t]` causal mask applies to `[batch * heads, t, t]`
    /// scores. Its rules are softmax's: the output is 0 at a masked position, so no
    /// gradient passes there. A lane masked whole is NaN, as in PyTorch.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    /// let causal = [false, true, false, false]; // row 0 reads column 0 only
    /// let p = x.masked_softmax(&causal).value();
    /// let e = 1.0 / (1.0 + (-1.0f64).exp());
    /// assert_eq!(p.data()[..2], [1.0, 0.0]);
    /// assert!((p.data()[3] - e).abs() < 1e-15);
    /// ```
    ///
    /// Panics unless `mask.len()` is a whole number of lanes covering the last axes.
    #[track_caller]
    pub fn masked_softmax(self, mask: &[bool]) -> Var<'t, T> {
        let shape = self.shape();
        let len = shape.last().copied().unwrap_or(1);
        assert!(
            !shape.is_empty()
                && mask.len().is_multiple_of(len.max(1))
                && (0..shape.len()).any(|k| numel(&shape[k..]) == mask.len()),
            "masked_softmax: a mask of {} elements does not cover whole lanes of the last \
             axes of {}",
            mask.len(),
            Dims(&shape)
        );
        let axis = shape.len() - 1;
        self.tape.record(&[self], |x, _| {
            let y = softmax::masked_softmax_rows(x[0].data(), len, mask);
            (
                Tensor::from_vec(y, x[0].shape()),
                Softmax { axis, log: false },
            )
        })
    }

    /// `ln(softmax(x))` along `axis`, computed as `x - logsumexp(x)`: finite for any
    /// finite logits.
    #[track_caller]
    pub fn log_softmax(self, axis: usize) -> Var<'t, T> {
        check_axis("log_softmax", axis, &self.shape());
        self.tape.record(&[self], |x, _| {
            let y = log_softmax(x[0].data(), x[0].shape(), axis);
            (
                Tensor::from_vec(y, x[0].shape()),
                Softmax { axis, log: true },
            )
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
            let (logp, probs) = softmax::log_softmax_rows(logits.data(), &shape, wants_grad);
            let total: T = logp
                .chunks_exact(classes.max(1))
                .zip(targets)
                .map(|(row, &t)| -row[t])
                .sum();
            let loss = Tensor::scalar(total / T::from_usize(targets.len().max(1)));
            let probs = probs.map_or_else(
                || Tensor::zeros([0, classes]),
                |p| Tensor::from_vec(p, &shape),
            );
            (
                loss,
                CrossEntropy {
                    targets: targets.into(),
                    probs,
                },
            )
        })
    }
}
