//! Adagrad (Duchi, Hazan and Singer, 2011), as PyTorch's `torch.optim.Adagrad`
//! computes it: each parameter's step is divided by the root of the sum of all its
//! squared gradients so far.

use crate::error::NnError;
use crate::optim::{check_grads, check_hypers, check_kind, check_state, for_each_chunk, hyper};
use crate::optim::{or_panic, split_tensors, Allowed, Optimizer, OptimizerState};
use crate::params::{Grads, ParamStore};
use autodiff::{Float, Tensor};
use indexmap::IndexMap;

/// Adagrad with PyTorch's update rule and defaults (`lr` 0.01, `lr_decay` 0,
/// `eps` 1e-10, `initial_accumulator_value` 0). At step t (from 1), with `g` the
/// gradient plus `weight_decay · p`:
///
/// ```text
/// lr_t = lr / (1 + (t - 1) lr_decay)
/// s += g²                               (sum, starting at initial_accumulator_value)
/// p -= lr_t g / (√s + ε)
/// ```
///
/// ```
/// use nn::{Adagrad, Optimizer};
///
/// let opt = Adagrad::<f32>::new(0.01).with_initial_accumulator_value(0.1);
/// assert_eq!(opt.state().kind, "adagrad");
/// ```
#[derive(Clone, Debug)]
pub struct Adagrad<T: Float = f32> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the learning rate with the step count.
    pub lr_decay: f64,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    /// Where each sum of squared gradients starts.
    pub initial_accumulator_value: f64,
    /// Added to the denominator.
    pub eps: f64,
    step: u64,
    sum: IndexMap<String, Tensor<T>>,
}

impl<T: Float> Adagrad<T> {
    /// Adagrad with PyTorch's defaults and learning rate `lr`. Panics if `lr` is
    /// negative or not finite.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        let opt = Adagrad {
            lr,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            step: 0,
            sum: IndexMap::new(),
        };
        or_panic(opt.check());
        opt
    }

    /// Sets the learning-rate decay. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_lr_decay(mut self, lr_decay: f64) -> Self {
        self.lr_decay = lr_decay;
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

    /// Sets where the sums start (for parameters without one yet). Panics if it is
    /// negative or not finite.
    #[track_caller]
    pub fn with_initial_accumulator_value(mut self, value: f64) -> Self {
        self.initial_accumulator_value = value;
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

    fn check(&self) -> Result<(), NnError> {
        check_hypers(
            "Adagrad",
            &[
                ("lr", self.lr, Allowed::AtLeastZero),
                ("lr_decay", self.lr_decay, Allowed::AtLeastZero),
                ("weight_decay", self.weight_decay, Allowed::AtLeastZero),
                (
                    "initial_accumulator_value",
                    self.initial_accumulator_value,
                    Allowed::AtLeastZero,
                ),
                ("eps", self.eps, Allowed::AtLeastZero),
            ],
        )
    }
}

/// One Adagrad step over a tensor's range at learning rate `lr` (already decayed).
#[inline(always)]
fn adagrad_update<T: Float>(w: &mut [T], g: &[T], sum: &mut [T], lr: T, wd: T, eps: T) {
    for ((w, &d), s) in w.iter_mut().zip(g).zip(sum.iter_mut()) {
        let w0 = *w;
        let d = d + wd * w0;
        let s1 = *s + d * d;
        *w = w0 - lr * d / (s1.sqrt() + eps);
        *s = s1;
    }
}

impl<T: Float> Optimizer<T> for Adagrad<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        self.check()?;
        check_grads(params, grads)?;
        check_state("sum", &self.sum, params)?;
        let start = T::from_f64(self.initial_accumulator_value);
        for (name, p) in params.iter() {
            if !self.sum.contains_key(name) {
                self.sum
                    .insert(name.to_string(), Tensor::full(p.shape(), start));
            }
        }
        self.step += 1;
        let lr = T::from_f64(self.lr / (1.0 + (self.step - 1) as f64 * self.lr_decay));
        let (wd, eps) = (T::from_f64(self.weight_decay), T::from_f64(self.eps));
        for_each_chunk(
            params,
            grads,
            [&mut self.sum],
            #[inline(always)]
            |w, g, [s]| adagrad_update(w, g, s, lr, wd, eps),
        );
        Ok(())
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::saved(
            "adagrad",
            self.step,
            &[
                ("lr", self.lr),
                ("lr_decay", self.lr_decay),
                ("weight_decay", self.weight_decay),
                ("initial_accumulator_value", self.initial_accumulator_value),
                ("eps", self.eps),
            ],
            &[("sum", &self.sum)],
        )
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<(), NnError> {
        check_kind(&state, "adagrad")?;
        let [sum] = split_tensors("Adagrad", std::mem::take(&mut state.tensors), ["sum"])?;
        let loaded = Adagrad {
            lr: hyper(&state, "lr")?,
            lr_decay: hyper(&state, "lr_decay")?,
            weight_decay: hyper(&state, "weight_decay")?,
            initial_accumulator_value: hyper(&state, "initial_accumulator_value")?,
            eps: hyper(&state, "eps")?,
            step: state.step,
            sum,
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
