//! `BatchNorm`: batch normalisation over the channel axis, as PyTorch's `BatchNorm1d`
//! (`[batch, channels]` or `[batch, channels, length]`) and `BatchNorm2d`
//! (`[batch, channels, height, width]`): one layer for every rank, since the statistics
//! are taken per channel (axis 1) over every other axis either way.

use crate::module::Module;
use crate::params::{Bound, Mode, ParamStore};
use autodiff::{Float, Tensor, Var};

/// Batch normalisation with an affine weight (`{prefix}.weight`, ones) and bias
/// (`{prefix}.bias`, zeros) per channel, and running statistics kept as buffers
/// (`{prefix}.running_mean`, zeros, and `{prefix}.running_var`, ones): PyTorch's
/// defaults, `eps` 1e-5 and momentum 0.1.
///
/// - **Training** ([`Mode::Train`]): each channel is normalised by the batch's mean
///   and biased variance (one fused rule, [`autodiff::Var::batch_norm`]), and the pass
///   writes the running statistics `(1 - momentum) · running + momentum · batch`, with
///   the *unbiased* variance (`m / (m - 1)` times the biased, `m` values per channel),
///   as PyTorch. [`ParamStore::update_buffers`] keeps them (the
///   [`Trainer`](crate::Trainer) does after each step).
/// - **Evaluation** ([`Mode::Eval`]): each channel is normalised by the running
///   statistics: a fixed affine map per channel.
///
/// The buffers are not parameters: the optimizer never sees them; checkpoints save
/// them as buffers.
///
/// Per-sample gradients: in training, every example's output depends on the whole
/// batch through its statistics, so an example's gradient on its own does not exist;
/// per-sample gradients take the loop, normalising each example alone (an input
/// `[n, c]` then has one value per channel and is refused). Opacus refuses batch norm
/// for the same reason. In evaluation the layer keeps examples apart and the batched
/// path applies.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    prefix: String,
    channels: usize,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// Creates the layer for `channels` channels and registers its weight, bias and
    /// running statistics in `store`.
    #[track_caller]
    pub fn new<T: Float>(store: &mut ParamStore<T>, prefix: &str, channels: usize) -> Self {
        assert!(
            channels > 0,
            "BatchNorm {prefix}: needs at least one channel"
        );
        let ones = || Tensor::from_vec(vec![T::one(); channels], [channels]);
        store.insert(format!("{prefix}.weight"), ones());
        store.insert(format!("{prefix}.bias"), Tensor::zeros([channels]));
        store.insert_buffer(format!("{prefix}.running_mean"), Tensor::zeros([channels]));
        store.insert_buffer(format!("{prefix}.running_var"), ones());
        BatchNorm {
            prefix: prefix.to_string(),
            channels,
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    /// The same layer with `eps` added to the variance.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// The same layer with the running statistics' momentum (the weight of each
    /// batch's statistics). Panics unless `0 <= momentum <= 1`.
    #[track_caller]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&momentum),
            "BatchNorm {}: momentum must be in [0, 1], got {momentum}",
            self.prefix
        );
        self.momentum = momentum;
        self
    }

    /// The number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The layer's name: the prefix of its parameters' and buffers' names.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// The name of parameter or buffer `what` (`weight`, `bias`, `running_mean`,
    /// `running_var`).
    pub fn key(&self, what: &str) -> String {
        format!("{}.{what}", self.prefix)
    }

    /// A per-channel `[c]` tensor shaped to broadcast against an input of rank `rank`
    /// (`[c, 1, ..]`, one trailing 1 per axis after the channel).
    fn per_channel<'t, T: Float>(&self, v: Var<'t, T>, rank: usize) -> Var<'t, T> {
        let mut shape = vec![self.channels];
        shape.resize(rank - 1, 1);
        v.reshape(shape)
    }
}

impl<T: Float> Module<T> for BatchNorm {
    /// Panics, naming the layer, unless the input is `[batch, channels, ..]` with this
    /// layer's channels, or in a pass bound without a mode.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        let what = format!("{} (batch norm, {} channels)", self.prefix, self.channels);
        assert!(
            shape.len() >= 2 && shape[1] == self.channels,
            "{what}: input {:?} is not [batch, {}, ..]",
            shape.as_slice(),
            self.channels
        );
        let rank = shape.len();
        let normalised = match params.mode_for(&what) {
            Mode::Train { .. } => {
                let (y, mean, var) = x.batch_norm(T::from_f64(self.eps));
                let m = (shape.iter().product::<usize>() / self.channels) as f64;
                let update = |name: &str, batch: &Tensor<T>, scale: f64| {
                    let running = params.buffer(&self.key(name));
                    let mixed = running.data().iter().zip(batch.data()).map(|(&r, &b)| {
                        T::from_f64(
                            (1.0 - self.momentum) * r.as_f64() + self.momentum * scale * b.as_f64(),
                        )
                    });
                    params.set_buffer(
                        &self.key(name),
                        Tensor::from_vec(mixed.collect(), [self.channels]),
                    );
                };
                update("running_mean", &mean, 1.0);
                update("running_var", &var, m / (m - 1.0));
                y
            }
            Mode::Eval => {
                let tape = x.tape();
                let mean = tape.constant(params.buffer(&self.key("running_mean")));
                let var = tape.constant(params.buffer(&self.key("running_var")));
                let std = (var + T::from_f64(self.eps)).sqrt();
                (x - self.per_channel(mean, rank)) / self.per_channel(std, rank)
            }
        };
        let weight = self.per_channel(params.get(&self.key("weight")), rank);
        let bias = self.per_channel(params.get(&self.key("bias")), rank);
        normalised * weight + bias
    }
}
