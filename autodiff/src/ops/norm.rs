//! Normalisation. Layer normalisation is composed of the reductions and element-wise
//! ops: no rule of its own, so its fast and recorded vjps, its tangent and its
//! per-sample path are theirs. Batch normalisation's normalising step is one fused rule
//! (`BatchNormalize`).

use super::{want, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::{numel, Dims};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// Layer normalisation over the last `axes` axes, `(x - mean) / √(var + eps)` with
    /// the biased variance: PyTorch's `F.layer_norm` with `normalized_shape` those axes
    /// and no weight or bias (`nn::LayerNorm` adds them). Each row of a batch is
    /// normalised on its own, so per-sample gradients keep the batched path.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0], [2, 3]));
    /// let y = x.layer_norm(1, 0.0).value();
    /// let s = (1.5f64).sqrt(); // (1, 3, 5): mean 3, variance 8/3
    /// assert!((y.data()[0] + s).abs() < 1e-15 && (y.data()[2] - s).abs() < 1e-15);
    /// ```
    ///
    /// Panics at the caller's line unless `1 <= axes <= rank`.
    #[track_caller]
    pub fn layer_norm(self, axes: usize, eps: T) -> Self {
        let shape = self.shape();
        assert!(
            (1..=shape.len()).contains(&axes),
            "layer_norm: cannot normalise over the last {axes} axes of {}",
            Dims(&shape)
        );
        let over: Vec<usize> = (shape.len() - axes..shape.len()).collect();
        let centred = self - self.mean_axes(&over, true);
        let variance = centred.square().mean_axes(&over, true);
        centred / (variance + eps).sqrt()
    }
}

/// Batch normalisation's normalising step, fused: per channel (axis 1), over the batch
/// and every axis after the channel. The input, viewed as `[n, c, rest]`, is
/// normalised over `n` and `rest` for each of the `c` channels. The output `y` is the
/// normalised input itself, so the rules need only `1 / √(var + eps)` besides it.
pub(crate) struct BatchNormalize {
    /// The reduced axes, for the recorded rules.
    axes: Vec<usize>,
    /// Channels, and elements per channel within one example.
    c: usize,
    rest: usize,
    eps: f64,
    /// `1 / √(var + eps)` per channel.
    inv_std: Vec<f64>,
}

impl BatchNormalize {
    /// `(sum of v, sum of v * y)` per channel, over the batch and the trailing axes.
    fn channel_sums<T: Float>(&self, v: &[T], y: &[T]) -> (Vec<f64>, Vec<f64>) {
        let (mut s, mut sy) = (vec![0.0; self.c], vec![0.0; self.c]);
        for (k, (vs, ys)) in v.chunks(self.rest).zip(y.chunks(self.rest)).enumerate() {
            let ch = k % self.c;
            for (&a, &b) in vs.iter().zip(ys) {
                s[ch] += a.as_f64();
                sy[ch] += a.as_f64() * b.as_f64();
            }
        }
        (s, sy)
    }

    /// The normalisation's Jacobian (symmetric, so both its vjp and its jvp) applied to
    /// `v`, recorded: `(v - mean(v) - y · mean(v y)) / √(var + eps)`, the statistics
    /// recomputed from the input `x` so that the result differentiates again.
    fn project_var<'t, T: Float>(&self, x: Var<'t, T>, y: Var<'t, T>, v: Var<'t, T>) -> Var<'t, T> {
        let centred = x - x.mean_axes(&self.axes, true);
        let std = (centred.square().mean_axes(&self.axes, true) + T::from_f64(self.eps)).sqrt();
        (v - v.mean_axes(&self.axes, true) - y * (v * y).mean_axes(&self.axes, true)) / std
    }
}

impl<T: Float> Rule<T> for BatchNormalize {
    fn name(&self) -> String {
        "batch_norm".into()
    }
    /// `dx = (g - mean(g) - y · mean(g y)) / √(var + eps)`, per channel: one pass for the
    /// two sums, one for the result.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![want(ctx, 0, || {
            let (g, y) = (ctx.grad.data(), ctx.output.data());
            let (sg, sgy) = self.channel_sums(g, y);
            let m = (g.len() / self.c) as f64;
            let mut dx = Vec::with_capacity(g.len());
            for (k, (gs, ys)) in g.chunks(self.rest).zip(y.chunks(self.rest)).enumerate() {
                let ch = k % self.c;
                let (mg, mgy, inv) = (sg[ch] / m, sgy[ch] / m, self.inv_std[ch]);
                dx.extend(
                    gs.iter()
                        .zip(ys)
                        .map(|(&g, &y)| T::from_f64((g.as_f64() - mg - y.as_f64() * mgy) * inv)),
                );
            }
            Tensor::from_vec(dx, ctx.grad.shape())
        })]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![ctx.wants[0].then(|| self.project_var(ctx.inputs[0], ctx.output, ctx.grad))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(self.project_var(ctx.inputs[0], ctx.output, t))
    }
    // No per-example rule: every output depends on every example of the batch (through
    // the mean and variance), so per-sample gradients take the loop, which names this
    // op as the reason.
}

impl<'t, T: Float> Var<'t, T> {
    /// Batch normalisation without its affine step, in training: each channel (axis 1)
    /// of a batch `[n, c, ...]` normalised by the mean and the biased variance over the
    /// batch and every axis after the channel, `(x - mean) / √(var + eps)`, as PyTorch's
    /// `F.batch_norm` with `training=True`. Returns the output with the batch's mean and
    /// biased variance per channel (`[c]` each), from which a layer updates its running
    /// statistics (`nn::BatchNorm` does, and adds the weight and bias).
    ///
    /// One fused rule: its vjp is one pass over the adjoint for two sums per channel and
    /// one for the result; its recorded vjp and its tangent (the same symmetric
    /// Jacobian) are ops, so double backward and forward mode go through it. Examples
    /// meet in the statistics, so per-sample gradients take the loop (each example then
    /// normalised alone), and [`crate::func::PerSample::why_loop`] names this op.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// // Two examples, two channels: channel 0 holds 1 and 3, channel 1 holds 2 and 6.
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], [2, 2]));
    /// let (y, mean, var) = x.batch_norm(0.0);
    /// assert_eq!(mean.data(), &[2.0, 4.0]);
    /// assert_eq!(var.data(), &[1.0, 4.0]);
    /// assert_eq!(y.value().data(), &[-1.0, -1.0, 1.0, 1.0]);
    /// ```
    ///
    /// Panics at the caller's line unless the input has a batch and a channel axis and
    /// more than one value per channel.
    #[track_caller]
    pub fn batch_norm(self, eps: T) -> (Self, Tensor<T>, Tensor<T>) {
        let shape = self.shape();
        assert!(
            shape.len() >= 2,
            "batch_norm: input {} has no channel axis (expected [batch, channels, ...])",
            Dims(&shape)
        );
        let (c, rest) = (shape[1], numel(&shape[2..]));
        let per_channel = shape[0] * rest;
        assert!(
            per_channel > 1,
            "batch_norm: input {} has one value per channel; training needs more than one \
             (per-sample gradients' loop normalises each example alone: there, normalise \
             by running statistics, or use a layer norm)",
            Dims(&shape)
        );
        let axes: Vec<usize> = std::iter::once(0).chain(2..shape.len()).collect();
        let stats = std::cell::RefCell::new((Vec::new(), Vec::new()));
        let eps = eps.as_f64();
        let y = self.tape.record(&[self], |x, _| {
            let x = x[0].data();
            let m = per_channel as f64;
            let mut mean = vec![0.0; c];
            for (k, xs) in x.chunks(rest).enumerate() {
                mean[k % c] += xs.iter().map(|v| v.as_f64()).sum::<f64>();
            }
            mean.iter_mut().for_each(|s| *s /= m);
            let mut var = vec![0.0; c];
            for (k, xs) in x.chunks(rest).enumerate() {
                let mu = mean[k % c];
                var[k % c] += xs.iter().map(|v| (v.as_f64() - mu).powi(2)).sum::<f64>();
            }
            var.iter_mut().for_each(|s| *s /= m);
            let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            let mut y = Vec::with_capacity(x.len());
            for (k, xs) in x.chunks(rest).enumerate() {
                let (mu, inv) = (mean[k % c], inv_std[k % c]);
                y.extend(xs.iter().map(|v| T::from_f64((v.as_f64() - mu) * inv)));
            }
            *stats.borrow_mut() = (mean, var);
            let rule = BatchNormalize {
                axes,
                c,
                rest,
                eps,
                inv_std,
            };
            (Tensor::from_vec(y, shape.as_slice()), rule)
        });
        let (mean, var) = stats.into_inner();
        let to_t = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(T::from_f64).collect(), [c]);
        (y, to_t(mean), to_t(var))
    }
}
