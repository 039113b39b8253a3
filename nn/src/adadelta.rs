//! Adadelta (Zeiler, 2012), as PyTorch's `torch.optim.Adadelta` computes it: the step
//! is the gradient scaled by the ratio of two running root mean squares, of past steps
//! and of past gradients, so that its units are the parameter's.

use crate::error::NnError;
use crate::optim::{check_grads, check_hypers, check_kind, check_state, for_each_chunk, hyper};
use crate::optim::{or_panic, split_tensors, Allowed, Optimizer, OptimizerState};
use crate::params::{Grads, ParamStore};
use autodiff::{Float, Tensor};
use indexmap::IndexMap;

/// Adadelta with PyTorch's update rule and defaults (`lr` 1.0, `rho` 0.9, `eps` 1e-6).
/// With `g` the gradient plus `weight_decay · p`:
///
/// ```text
/// s = ρ s + (1 - ρ) g²                  (square_avg)
/// Δ = √(u + ε) / √(s + ε) · g
/// u = ρ u + (1 - ρ) Δ²                  (acc_delta)
/// p -= lr Δ
/// ```
///
/// Both states start at zero. PyTorch's MNIST example trains with `Adadelta(lr=1.0)`.
///
/// ```
/// use nn::{Adadelta, Optimizer};
///
/// let opt = Adadelta::<f32>::new(1.0).with_rho(0.95);
/// assert_eq!(opt.state().kind, "adadelta");
/// ```
#[derive(Clone, Debug)]
pub struct Adadelta<T: Float = f32> {
    /// Learning rate (a scale on the step; 1 in Zeiler's paper).
    pub lr: f64,
    /// Decay of the running averages ρ, in [0, 1].
    pub rho: f64,
    /// Added inside both roots.
    pub eps: f64,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    step: u64,
    square_avg: IndexMap<String, Tensor<T>>,
    acc_delta: IndexMap<String, Tensor<T>>,
}

impl<T: Float> Adadelta<T> {
    /// Adadelta with PyTorch's defaults and learning rate `lr`. Panics if `lr` is
    /// negative or not finite.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        let opt = Adadelta {
            lr,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            step: 0,
            square_avg: IndexMap::new(),
            acc_delta: IndexMap::new(),
        };
        or_panic(opt.check());
        opt
    }

    /// Sets the decay ρ. Panics outside [0, 1].
    #[track_caller]
    pub fn with_rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        or_panic(self.check());
        self
    }

    /// Sets ε. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        or_panic(self.check());
        self
    }

    /// Sets the (L2) weight decay. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        or_panic(self.check());
        self
    }

    fn check(&self) -> Result<(), NnError> {
        check_hypers(
            "Adadelta",
            &[
                ("lr", self.lr, Allowed::AtLeastZero),
                ("rho", self.rho, Allowed::ZeroToOne),
                ("eps", self.eps, Allowed::AtLeastZero),
                ("weight_decay", self.weight_decay, Allowed::AtLeastZero),
            ],
        )
    }
}

/// The numbers one Adadelta step applies to every element.
#[derive(Clone, Copy)]
struct AdadeltaConsts<T> {
    lr: T,
    rho: T,
    eps: T,
    weight_decay: T,
}

/// One Adadelta step over a tensor's range.
#[inline(always)]
fn adadelta_update<T: Float>(
    k: AdadeltaConsts<T>,
    w: &mut [T],
    g: &[T],
    square_avg: &mut [T],
    acc_delta: &mut [T],
) {
    let one = T::one();
    for (((w, &d), s), u) in w
        .iter_mut()
        .zip(g)
        .zip(square_avg.iter_mut())
        .zip(acc_delta.iter_mut())
    {
        let (w0, s0, u0) = (*w, *s, *u);
        let d = d + k.weight_decay * w0;
        let s1 = k.rho * s0 + (one - k.rho) * d * d;
        let delta = (u0 + k.eps).sqrt() / (s1 + k.eps).sqrt() * d;
        *u = k.rho * u0 + (one - k.rho) * delta * delta;
        *s = s1;
        *w = w0 - k.lr * delta;
    }
}

const SLOTS: [&str; 2] = ["square_avg", "acc_delta"];

impl<T: Float> Optimizer<T> for Adadelta<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        self.check()?;
        check_grads(params, grads)?;
        check_state("square average", &self.square_avg, params)?;
        check_state("accumulated update", &self.acc_delta, params)?;
        let k = AdadeltaConsts {
            lr: T::from_f64(self.lr),
            rho: T::from_f64(self.rho),
            eps: T::from_f64(self.eps),
            weight_decay: T::from_f64(self.weight_decay),
        };
        for_each_chunk(
            params,
            grads,
            [&mut self.square_avg, &mut self.acc_delta],
            #[inline(always)]
            |w, g, [s, u]| adadelta_update(k, w, g, s, u),
        );
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::saved(
            "adadelta",
            self.step,
            &[
                ("lr", self.lr),
                ("rho", self.rho),
                ("eps", self.eps),
                ("weight_decay", self.weight_decay),
            ],
            &[(SLOTS[0], &self.square_avg), (SLOTS[1], &self.acc_delta)],
        )
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<(), NnError> {
        check_kind(&state, "adadelta")?;
        let [square_avg, acc_delta] =
            split_tensors("Adadelta", std::mem::take(&mut state.tensors), SLOTS)?;
        let loaded = Adadelta {
            lr: hyper(&state, "lr")?,
            rho: hyper(&state, "rho")?,
            eps: hyper(&state, "eps")?,
            weight_decay: hyper(&state, "weight_decay")?,
            step: state.step,
            square_avg,
            acc_delta,
        };
        loaded.check()?;
        *self = loaded;
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}
