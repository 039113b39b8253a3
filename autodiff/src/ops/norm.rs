//! Normalisation, each one fused rule: layer normalisation (`LayerNormalize`, each row
//! over its last axes) and batch normalisation's normalising step (`BatchNormalize`,
//! each channel over the batch). Both outputs are the normalised input itself, so their
//! rules need only `1 / √(var + eps)` besides it, and both have the same symmetric
//! Jacobian over their groups, `v ↦ (v - mean(v) - y · mean(v y)) / √(var + eps)`
//! (`Groups`), their recorded vjp and their tangent.

use super::{want, BatchView, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::norm::{normalize_rows, normalize_rows_vjp};
use crate::kernels::{pool, schedule};
use crate::shape::{numel, Dims};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

/// The groups a normalisation normalises over (its axes) and its `eps`: what its
/// recorded rules need, the Jacobian `v ↦ (v - mean(v) - y · mean(v y)) / √(var + eps)`
/// over the groups, symmetric, so it is both the recorded vjp and the tangent. The
/// statistics are recomputed from the input `x` on the tape, so that the result
/// differentiates again.
struct Groups {
    axes: Vec<usize>,
    eps: f64,
}

impl Groups {
    fn project<'t, T: Float>(&self, x: Var<'t, T>, y: Var<'t, T>, v: Var<'t, T>) -> Var<'t, T> {
        let axes = &self.axes;
        let centred = x - x.mean_axes(axes, true);
        let std = (centred.square().mean_axes(axes, true) + T::from_f64(self.eps)).sqrt();
        (v - v.mean_axes(axes, true) - y * (v * y).mean_axes(axes, true)) / std
    }

    fn vjp_var<'t, T: Float>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![ctx.wants[0].then(|| self.project(ctx.inputs[0], ctx.output, ctx.grad))]
    }

    fn jvp_var<'t, T: Float>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(self.project(ctx.inputs[0], ctx.output, ctx.tangents[0]?))
    }
}

/// Layer normalisation, fused: each row of `d` elements (the last axes) normalised on
/// its own. Rows are independent, so the work is split by rows across threads, and
/// the results do not depend on the split.
pub(crate) struct LayerNormalize {
    /// The normalised (last) axes and eps, for the recorded rules.
    groups: Groups,
    /// Elements per row.
    d: usize,
    /// `1 / √(var + eps)` per row.
    inv_std: Vec<f64>,
}

impl<T: Float> Rule<T> for LayerNormalize {
    fn name(&self) -> String {
        "layer_norm".into()
    }
    /// `dx = (g - mean(g) - y · mean(g y)) / √(var + eps)`, per row: two sums and the
    /// result in one visit of the row.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![want(ctx, 0, || {
            let (g, y, d) = (ctx.grad.data(), ctx.output.data(), self.d);
            let mut dx = vec![T::zero(); g.len()];
            let rows = g.len() / d.max(1);
            let parts = schedule::row_band_parts(g.len(), rows);
            pool::for_row_bands(&mut dx, rows, parts, |rows, band| {
                let (gs, ys) = (
                    &g[rows.start * d..rows.end * d],
                    &y[rows.start * d..rows.end * d],
                );
                normalize_rows_vjp(gs, ys, d, &self.inv_std[rows], band);
            });
            Tensor::from_vec(dx, ctx.grad.shape())
        })]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        self.groups.vjp_var(ctx)
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        self.groups.jvp_var(ctx)
    }
    /// Each row is normalised on its own: the examples stay apart unless the batch
    /// axis is among the normalised ones.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.rows(0) && !self.groups.axes.contains(&0)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Layer normalisation over the last `axes` axes, `(x - mean) / √(var + eps)` with
    /// the biased variance: PyTorch's `F.layer_norm` with `normalized_shape` those axes
    /// and no weight or bias (`nn::LayerNorm` adds them). Each row of a batch is
    /// normalised on its own, so per-sample gradients keep the batched path.
    ///
    /// One fused rule (statistics in f64): its vjp is one visit of each row for two sums
    /// and the result; its recorded vjp and its tangent are ops, so double backward and
    /// forward mode go through it.
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
        let d = numel(&shape[shape.len() - axes..]);
        let eps = eps.as_f64();
        self.tape.record(&[self], |x, _| {
            let x = x[0].data();
            let rows = x.len() / d.max(1);
            let mut inv_std = vec![0.0; rows];
            let mut y = vec![T::zero(); x.len()];
            if !x.is_empty() {
                // Each band of rows writes its rows of `y` and of `inv_std`.
                let per = rows.div_ceil(schedule::row_band_parts(x.len(), rows));
                let bands: smallvec::SmallVec<[(&mut [T], &mut [f64]); 8]> =
                    y.chunks_mut(per * d).zip(inv_std.chunks_mut(per)).collect();
                pool::for_each_owned(bands, |i, (ys, invs)| {
                    normalize_rows(&x[i * per * d..][..ys.len()], d, eps, ys, invs);
                });
            }
            let rule = LayerNormalize {
                groups: Groups { axes: over, eps },
                d,
                inv_std,
            };
            (Tensor::from_vec(y, shape.as_slice()), rule)
        })
    }
}

/// Batch normalisation's normalising step, fused: per channel (axis 1), over the batch
/// and every axis after the channel. The input, viewed as `[n, c, rest]`, is
/// normalised over `n` and `rest` for each of the `c` channels. The output `y` is the
/// normalised input itself, so the rules need only `1 / √(var + eps)` besides it.
pub(crate) struct BatchNormalize {
    /// The reduced axes and eps, for the recorded rules.
    groups: Groups,
    /// Channels, and elements per channel within one example.
    c: usize,
    rest: usize,
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
        self.groups.vjp_var(ctx)
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        self.groups.jvp_var(ctx)
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
                groups: Groups { axes, eps },
                c,
                rest,
                inv_std,
            };
            (Tensor::from_vec(y, shape.as_slice()), rule)
        });
        let (mean, var) = stats.into_inner();
        let to_t = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(T::from_f64).collect(), [c]);
        (y, to_t(mean), to_t(var))
    }
}
