//! RMSprop (Hinton's lecture 6e), as PyTorch's `torch.optim.RMSprop` computes it: each
//! step divides the gradient by a running root mean square of the gradients, optionally
//! centred (by the running mean) and with momentum.

use crate::error::NnError;
use crate::optim::{check_grads, check_hypers, check_kind, check_state, for_each_chunk, hyper};
use crate::optim::{or_panic, split_tensors, Allowed, Optimizer, OptimizerState};
use crate::params::{Grads, ParamStore};
use autodiff::{Float, Tensor};
use indexmap::IndexMap;

/// RMSprop with PyTorch's update rule and defaults (`lr` 0.01, `alpha` 0.99, `eps`
/// 1e-8, no momentum, not centred). With `g` the gradient plus `weight_decay · p`:
///
/// ```text
/// s = α s + (1 - α) g²                  (square_avg)
/// m = α m + (1 - α) g                   (grad_avg, when centred)
/// a = √(s - m²) + ε   when centred, √s + ε otherwise
/// b = μ b + g / a;  p -= lr b           (momentum_buffer, when μ > 0)
/// p -= lr g / a                         (without momentum)
/// ```
///
/// Every state starts at zero.
///
/// ```
/// use nn::{Optimizer, RmsProp};
///
/// let opt = RmsProp::<f32>::new(1e-3).with_momentum(0.9).centered();
/// assert_eq!(opt.state().kind, "rmsprop");
/// ```
#[derive(Clone, Debug)]
pub struct RmsProp<T: Float = f32> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the running averages α, in [0, 1].
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    /// Momentum μ (0 for none).
    pub momentum: f64,
    /// Whether the square average is centred by the running mean of the gradient (an
    /// estimate of the variance rather than of the second moment).
    pub centered: bool,
    step: u64,
    square_avg: IndexMap<String, Tensor<T>>,
    grad_avg: IndexMap<String, Tensor<T>>,
    momentum_buffer: IndexMap<String, Tensor<T>>,
}

impl<T: Float> RmsProp<T> {
    /// RMSprop with PyTorch's defaults and learning rate `lr`. Panics if `lr` is
    /// negative or not finite.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        let opt = RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            step: 0,
            square_avg: IndexMap::new(),
            grad_avg: IndexMap::new(),
            momentum_buffer: IndexMap::new(),
        };
        or_panic(opt.check());
        opt
    }

    /// Sets the decay α of the running averages. Panics outside [0, 1].
    #[track_caller]
    pub fn with_alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
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

    /// Sets the momentum μ. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
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

    /// The centred variant.
    pub fn centered(mut self) -> Self {
        self.centered = true;
        self
    }

    fn check(&self) -> Result<(), NnError> {
        check_hypers(
            "RMSprop",
            &[
                ("lr", self.lr, Allowed::AtLeastZero),
                ("alpha", self.alpha, Allowed::ZeroToOne),
                ("eps", self.eps, Allowed::AtLeastZero),
                ("weight_decay", self.weight_decay, Allowed::AtLeastZero),
                ("momentum", self.momentum, Allowed::AtLeastZero),
            ],
        )
    }
}

/// The numbers one RMSprop step applies to every element.
#[derive(Clone, Copy)]
struct RmsConsts<T> {
    alpha: T,
    lr: T,
    eps: T,
    weight_decay: T,
    momentum: T,
}

/// One RMSprop step over a tensor's range; `grad_avg` is given when centred,
/// `momentum_buffer` with momentum. Each call passes literal `Some`/`None`, so once
/// inlined the four variants are four loops without a branch per element.
#[inline(always)]
fn rmsprop_update<T: Float>(
    k: RmsConsts<T>,
    w: &mut [T],
    g: &[T],
    square_avg: &mut [T],
    grad_avg: Option<&mut [T]>,
    momentum_buffer: Option<&mut [T]>,
) {
    // Every slice cut to the range's length, so that indexing needs no bounds checks.
    let n = w.len();
    let square_avg = &mut square_avg[..n];
    let mut grad_avg = grad_avg.map(|m| &mut m[..n]);
    let mut momentum_buffer = momentum_buffer.map(|b| &mut b[..n]);
    let one = T::one();
    for (i, (w, &d)) in w.iter_mut().zip(g).enumerate() {
        let w0 = *w;
        let d = d + k.weight_decay * w0;
        let s = k.alpha * square_avg[i] + (one - k.alpha) * d * d;
        square_avg[i] = s;
        let avg = match grad_avg.as_deref_mut() {
            Some(m) => {
                let mean = k.alpha * m[i] + (one - k.alpha) * d;
                m[i] = mean;
                (s - mean * mean).sqrt() + k.eps
            }
            None => s.sqrt() + k.eps,
        };
        *w = match momentum_buffer.as_deref_mut() {
            Some(b) => {
                let b1 = k.momentum * b[i] + d / avg;
                b[i] = b1;
                w0 - k.lr * b1
            }
            None => w0 - k.lr * (d / avg),
        };
    }
}

const SLOTS: [&str; 3] = ["square_avg", "grad_avg", "momentum_buffer"];

impl<T: Float> Optimizer<T> for RmsProp<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        self.check()?;
        check_grads(params, grads)?;
        check_state("square average", &self.square_avg, params)?;
        check_state("gradient average", &self.grad_avg, params)?;
        check_state("momentum buffer", &self.momentum_buffer, params)?;
        let k = RmsConsts {
            alpha: T::from_f64(self.alpha),
            lr: T::from_f64(self.lr),
            eps: T::from_f64(self.eps),
            weight_decay: T::from_f64(self.weight_decay),
            momentum: T::from_f64(self.momentum),
        };
        let (sq, mean, buf) = (
            &mut self.square_avg,
            &mut self.grad_avg,
            &mut self.momentum_buffer,
        );
        match (self.centered, self.momentum > 0.0) {
            (false, false) => for_each_chunk(
                params,
                grads,
                [sq],
                #[inline(always)]
                |w, g, [s]| rmsprop_update(k, w, g, s, None, None),
            ),
            (true, false) => for_each_chunk(
                params,
                grads,
                [sq, mean],
                #[inline(always)]
                |w, g, [s, m]| rmsprop_update(k, w, g, s, Some(m), None),
            ),
            (false, true) => for_each_chunk(
                params,
                grads,
                [sq, buf],
                #[inline(always)]
                |w, g, [s, b]| rmsprop_update(k, w, g, s, None, Some(b)),
            ),
            (true, true) => for_each_chunk(
                params,
                grads,
                [sq, mean, buf],
                #[inline(always)]
                |w, g, [s, m, b]| rmsprop_update(k, w, g, s, Some(m), Some(b)),
            ),
        }
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::saved(
            "rmsprop",
            self.step,
            &[
                ("lr", self.lr),
                ("alpha", self.alpha),
                ("eps", self.eps),
                ("weight_decay", self.weight_decay),
                ("momentum", self.momentum),
                ("centered", if self.centered { 1.0 } else { 0.0 }),
            ],
            &[
                (SLOTS[0], &self.square_avg),
                (SLOTS[1], &self.grad_avg),
                (SLOTS[2], &self.momentum_buffer),
            ],
        )
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<(), NnError> {
        check_kind(&state, "rmsprop")?;
        let [square_avg, grad_avg, momentum_buffer] =
            split_tensors("RMSprop", std::mem::take(&mut state.tensors), SLOTS)?;
        let loaded = RmsProp {
            lr: hyper(&state, "lr")?,
            alpha: hyper(&state, "alpha")?,
            eps: hyper(&state, "eps")?,
            weight_decay: hyper(&state, "weight_decay")?,
            momentum: hyper(&state, "momentum")?,
            centered: hyper(&state, "centered")? != 0.0,
            step: state.step,
            square_avg,
            grad_avg,
            momentum_buffer,
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
