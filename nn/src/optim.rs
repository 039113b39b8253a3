//! Optimizers: SGD (momentum, weight decay), Adam and AdamW, and the machinery every
//! optimizer shares (RMSprop, Adagrad and Adadelta live beside this file). Each step is
//! a function of (parameter, gradient, state); the state is named like the parameters
//! so that a checkpoint can hold it.

use crate::error::NnError;
use crate::params::{Grads, ParamStore};
use autodiff::{update_in_parallel, Float, Tensor, TensorUpdate};
use indexmap::IndexMap;

/// Everything an optimizer needs to resume exactly: its kind, hyper-parameters, step
/// count and per-parameter tensors (named `{slot}.{parameter}`).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<T: Float = f32> {
    /// `"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"`, `"adagrad"` or `"adadelta"`.
    pub kind: String,
    /// Steps taken so far.
    pub step: u64,
    /// Hyper-parameters by name.
    pub hyper: IndexMap<String, f64>,
    /// Per-parameter state tensors.
    pub tensors: IndexMap<String, Tensor<T>>,
}

impl<T: Float> OptimizerState<T> {
    /// The state of a `kind` optimizer after `step` steps: its hyper-parameters by name,
    /// and its tensors by slot, named `{slot}.{parameter}` ([`named_tensors`]).
    pub(crate) fn saved(
        kind: &str,
        step: u64,
        hyper: &[(&str, f64)],
        slots: &[(&str, &IndexMap<String, Tensor<T>>)],
    ) -> Self {
        OptimizerState {
            kind: kind.into(),
            step,
            hyper: hyper.iter().map(|&(k, v)| (k.to_string(), v)).collect(),
            tensors: named_tensors(slots),
        }
    }
}

/// Updates parameters from their gradients.
pub trait Optimizer<T: Float = f32>: Send + Sync {
    /// One update. Every parameter must have a gradient and vice versa.
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError>;
    /// A copy of the state, for checkpoints.
    fn state(&self) -> OptimizerState<T>;
    /// Restores a state saved by [`Optimizer::state`] of the same kind.
    fn load_state(&mut self, state: OptimizerState<T>) -> Result<(), NnError>;
    /// Current learning rate.
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate of the next steps (a [`crate::Schedule`] calls this
    /// before every step).
    fn set_learning_rate(&mut self, lr: f64);
}

/// A boxed optimizer (a recipe's `Box<dyn Optimizer>`) is one too, so that wrappers
/// such as [`crate::DpSgd`] take either.
impl<T: Float, O: Optimizer<T> + ?Sized> Optimizer<T> for Box<O> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        (**self).step(params, grads)
    }
    fn state(&self) -> OptimizerState<T> {
        (**self).state()
    }
    fn load_state(&mut self, state: OptimizerState<T>) -> Result<(), NnError> {
        (**self).load_state(state)
    }
    fn learning_rate(&self) -> f64 {
        (**self).learning_rate()
    }
    fn set_learning_rate(&mut self, lr: f64) {
        (**self).set_learning_rate(lr)
    }
}

/// Checks that params and grads name the same tensors with the same shapes.
pub(crate) fn check_grads<T: Float>(
    params: &ParamStore<T>,
    grads: &Grads<T>,
) -> Result<(), NnError> {
    let missing: Vec<String> = params
        .iter()
        .filter(|(n, _)| grads.get(n).is_none())
        .map(|(n, _)| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(NnError::MissingGradient(missing));
    }
    for (name, g) in grads.iter() {
        match params.get(name) {
            None => {
                return Err(NnError::Optimizer(format!(
                    "gradient for unknown parameter {name:?}"
                )))
            }
            Some(p) if p.shape() != g.shape() => {
                return Err(NnError::Optimizer(format!(
                    "gradient of {name:?} has shape {:?}, the parameter {:?}",
                    g.shape(),
                    p.shape()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn check_kind<T: Float>(state: &OptimizerState<T>, kind: &str) -> Result<(), NnError> {
    if state.kind == kind {
        Ok(())
    } else {
        Err(NnError::Optimizer(format!(
            "state is for a {:?} optimizer, this one is {kind:?}",
            state.kind
        )))
    }
}

pub(crate) fn hyper<T: Float>(state: &OptimizerState<T>, name: &str) -> Result<f64, NnError> {
    state
        .hyper
        .get(name)
        .copied()
        .ok_or_else(|| NnError::Optimizer(format!("state lacks hyper-parameter {name:?}")))
}

/// The values a hyper-parameter may take (PyTorch's checks, and finite).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Allowed {
    /// Finite and at least 0 (learning rates, weight decay, ε, momentum).
    AtLeastZero,
    /// In [0, 1] (decay rates such as RMSprop's α and Adadelta's ρ).
    ZeroToOne,
    /// In [0, 1) (Adam's β, whose bias correction divides by `1 - βᵗ`).
    ZeroToBelowOne,
}

impl Allowed {
    fn admits(self, v: f64) -> bool {
        match self {
            Allowed::AtLeastZero => v.is_finite() && v >= 0.0,
            Allowed::ZeroToOne => (0.0..=1.0).contains(&v),
            Allowed::ZeroToBelowOne => (0.0..1.0).contains(&v),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Allowed::AtLeastZero => "finite and at least 0",
            Allowed::ZeroToOne => "in [0, 1]",
            Allowed::ZeroToBelowOne => "in [0, 1)",
        }
    }
}

/// Checks an optimizer's hyper-parameters, naming the optimizer, the first that is out
/// of range and its value (`RMSprop: alpha must be in [0, 1], not 1.5`). Steps and
/// [`Optimizer::load_state`] return this as an error before anything changes;
/// constructors and `with_*` setters panic with it ([`or_panic`]).
pub(crate) fn check_hypers(
    optimizer: &str,
    hypers: &[(&str, f64, Allowed)],
) -> Result<(), NnError> {
    for &(name, value, allowed) in hypers {
        if !allowed.admits(value) {
            return Err(NnError::Optimizer(format!(
                "{optimizer}: {name} must be {}, not {value}",
                allowed.describe()
            )));
        }
    }
    Ok(())
}

/// A constructor's check: a bad hyper-parameter is a programming error, reported at
/// the caller's line.
#[track_caller]
pub(crate) fn or_panic(checked: Result<(), NnError>) {
    if let Err(e) = checked {
        panic!("{e}");
    }
}

/// A state's tensors by slot: each slot's tensors named `{slot}.{parameter}`.
fn named_tensors<T: Float>(
    slots: &[(&str, &IndexMap<String, Tensor<T>>)],
) -> IndexMap<String, Tensor<T>> {
    slots
        .iter()
        .flat_map(|(slot, tensors)| {
            tensors
                .iter()
                .map(move |(name, t)| (format!("{slot}.{name}"), t.clone()))
        })
        .collect()
}

/// Sorts a saved state's tensors back into their slots (the inverse of
/// [`named_tensors`]); a tensor of no slot is an error naming it.
pub(crate) fn split_tensors<T: Float, const N: usize>(
    optimizer: &str,
    tensors: IndexMap<String, Tensor<T>>,
    slots: [&str; N],
) -> Result<[IndexMap<String, Tensor<T>>; N], NnError> {
    let mut out = std::array::from_fn(|_| IndexMap::new());
    for (key, t) in tensors {
        let found = slots.iter().enumerate().find_map(|(i, slot)| {
            key.strip_prefix(slot)
                .and_then(|rest| rest.strip_prefix('.'))
                .map(|name| (i, name.to_string()))
        });
        match found {
            Some((i, name)) => {
                out[i].insert(name, t);
            }
            None => {
                return Err(NnError::Optimizer(format!(
                    "unexpected {optimizer} state tensor {key:?} (expected {})",
                    slots.map(|s| format!("{s}.*")).join(", ")
                )))
            }
        }
    }
    Ok(out)
}

/// Stochastic gradient descent with optional momentum and L2 weight decay
/// (PyTorch's formulation: `v = μ v + (g + λ p)`, `p -= lr v`).
#[derive(Clone, Debug)]
pub struct Sgd<T: Float = f32> {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f64,
    /// L2 weight decay λ.
    pub weight_decay: f64,
    step: u64,
    velocity: IndexMap<String, Tensor<T>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD. Panics if `lr` is negative or not finite.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        let sgd = Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            step: 0,
            velocity: IndexMap::new(),
        };
        or_panic(sgd.check());
        sgd
    }

    /// Sets the momentum. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        or_panic(self.check());
        self
    }

    /// Sets the weight decay. Panics if it is negative or not finite.
    #[track_caller]
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        or_panic(self.check());
        self
    }

    fn check(&self) -> Result<(), NnError> {
        check_hypers(
            "SGD",
            &[
                ("lr", self.lr, Allowed::AtLeastZero),
                ("momentum", self.momentum, Allowed::AtLeastZero),
                ("weight_decay", self.weight_decay, Allowed::AtLeastZero),
            ],
        )
    }
}

/// Checks, before anything is updated, that every state tensor (restored from a
/// checkpoint, perhaps) has its parameter's shape.
pub(crate) fn check_state<T: Float>(
    what: &str,
    states: &IndexMap<String, Tensor<T>>,
    params: &ParamStore<T>,
) -> Result<(), NnError> {
    for (name, state) in states {
        match params.get(name) {
            Some(p) if p.shape() != state.shape() => {
                return Err(NnError::Optimizer(format!(
                    "{what} of {name:?} has shape {:?}, the parameter {:?}",
                    state.shape(),
                    p.shape()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

// The updates are functions taking their constants by value: captured by reference
// inside the closures that split them, the constants were reloaded for every element
// and the loops stayed scalar. They are `#[inline(always)]`, and so are the closures
// that call them, so that they are compiled into `update_in_parallel`'s widest-vector
// code.

/// Plain SGD with (L2) weight decay.
#[inline(always)]
fn sgd_update<T: Float>(w: &mut [T], g: &[T], lr: T, wd: T) {
    for (w, &d) in w.iter_mut().zip(g) {
        *w -= lr * (d + wd * *w);
    }
}

/// SGD with momentum `mu` (zero on the first step, which starts the velocity at the
/// gradient) and (L2) weight decay.
#[inline(always)]
fn momentum_update<T: Float>(w: &mut [T], g: &[T], v: &mut [T], lr: T, mu: T, wd: T) {
    for ((w, &d), vel) in w.iter_mut().zip(g).zip(v.iter_mut()) {
        // Read once, stored once (see `adam_update`).
        let w0 = *w;
        let v1 = mu * *vel + (d + wd * w0);
        *w = w0 - lr * v1;
        *vel = v1;
    }
}

/// Applies an elementwise update to every parameter, as one parallel job of the engine
/// ([`update_in_parallel`]: large tensors split by contiguous ranges, one per thread,
/// the smaller ones whole, each range in the widest vectors the CPU has). Each element
/// sees the same arithmetic whatever the split, so results do not depend on the thread
/// count.
pub(crate) fn for_each_chunk<T: Float, const N: usize>(
    params: &mut ParamStore<T>,
    grads: &Grads<T>,
    states: [&mut IndexMap<String, Tensor<T>>; N],
    update: impl Fn(&mut [T], &[T], [&mut [T]; N]) + Sync,
) {
    let mut states = states.map(|s| state_tensors(s, params).into_iter());
    let tensors = params
        .iter_mut()
        .map(|(name, p)| TensorUpdate {
            grad: grads.get(name).expect("checked by the caller"),
            values: p,
            states: states
                .each_mut()
                .map(|s| s.next().expect("one state per parameter")),
        })
        .collect();
    update_in_parallel(tensors, update);
}

/// The state tensor of every parameter (created as zeros where missing), in the order
/// of the store.
fn state_tensors<'a, T: Float>(
    states: &'a mut IndexMap<String, Tensor<T>>,
    params: &ParamStore<T>,
) -> Vec<&'a mut Tensor<T>> {
    for (name, p) in params.iter() {
        if !states.contains_key(name) {
            states.insert(name.to_string(), Tensor::zeros(p.shape()));
        }
    }
    let index: Vec<usize> = params
        .iter()
        .map(|(name, _)| states.get_index_of(name).expect("inserted above"))
        .collect();
    let mut slots: Vec<Option<&mut Tensor<T>>> = states.values_mut().map(Some).collect();
    index
        .into_iter()
        .map(|i| slots[i].take().expect("parameter names are distinct"))
        .collect()
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        self.check()?;
        check_grads(params, grads)?;
        check_state("velocity", &self.velocity, params)?;
        let (lr, mu, wd) = (
            T::from_f64(self.lr),
            T::from_f64(self.momentum),
            T::from_f64(self.weight_decay),
        );
        if self.momentum == 0.0 {
            for_each_chunk(
                params,
                grads,
                [],
                #[inline(always)]
                |w, g, []| sgd_update(w, g, lr, wd),
            );
        } else {
            // The first step starts the velocity at the gradient.
            let mu = if self.step == 0 { T::zero() } else { mu };
            for_each_chunk(
                params,
                grads,
                [&mut self.velocity],
                #[inline(always)]
                |w, g, [v]| momentum_update(w, g, v, lr, mu, wd),
            );
        }
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::saved(
            "sgd",
            self.step,
            &[
                ("lr", self.lr),
                ("momentum", self.momentum),
                ("weight_decay", self.weight_decay),
            ],
            &[("velocity", &self.velocity)],
        )
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<(), NnError> {
        check_kind(&state, "sgd")?;
        let [velocity] = split_tensors("SGD", std::mem::take(&mut state.tensors), ["velocity"])?;
        let loaded = Sgd {
            lr: hyper(&state, "lr")?,
            momentum: hyper(&state, "momentum")?,
            weight_decay: hyper(&state, "weight_decay")?,
            step: state.step,
            velocity,
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

/// Adam, or AdamW when the weight decay is decoupled from the gradient: PyTorch's
/// `Adam` and `AdamW`.
///
/// Adam's weight decay λ is L2 regularisation, added to the gradient before the
/// moments see it (`g += λ p`). AdamW's shrinks the weight beside the step
/// (`p -= lr λ p`, then the Adam step with the plain gradient), so that a parameter with
/// large gradients is not decayed less (Loshchilov and Hutter, 2019). PyTorch's AdamW
/// defaults to λ = 0.01; [`Adam::adamw`] takes it explicitly.
#[derive(Clone, Debug)]
pub struct Adam<T: Float = f32> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay: added to the gradient (Adam) or applied to the weights (AdamW).
    pub weight_decay: f64,
    decoupled: bool,
    step: u64,
    m: IndexMap<String, Tensor<T>>,
    v: IndexMap<String, Tensor<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam with the usual defaults (β = 0.9, 0.999; ε = 1e-8). Panics if `lr` is
    /// negative or not finite.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        let adam = Self::unchecked(lr);
        or_panic(adam.check());
        adam
    }

    /// AdamW: weight decay applied to the weights, not through the moments. Panics if
    /// `lr` or `weight_decay` is negative or not finite.
    #[track_caller]
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        let adamw = Adam {
            weight_decay,
            decoupled: true,
            ..Self::unchecked(lr)
        };
        or_panic(adamw.check());
        adamw
    }

    fn unchecked(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 0,
            m: IndexMap::new(),
            v: IndexMap::new(),
        }
    }

    fn check(&self) -> Result<(), NnError> {
        check_hypers(
            self.name(),
            &[
                ("lr", self.lr, Allowed::AtLeastZero),
                ("beta1", self.beta1, Allowed::ZeroToBelowOne),
                ("beta2", self.beta2, Allowed::ZeroToBelowOne),
                ("eps", self.eps, Allowed::AtLeastZero),
                ("weight_decay", self.weight_decay, Allowed::AtLeastZero),
            ],
        )
    }

    /// The name errors give it.
    fn name(&self) -> &'static str {
        if self.decoupled {
            "AdamW"
        } else {
            "Adam"
        }
    }

    fn kind(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
}

/// The numbers one Adam step applies to every element.
struct AdamConsts<T> {
    b1: T,
    b2: T,
    c1: T,
    c2: T,
    lr: T,
    eps: T,
    l2: T,
    shrink: T,
}

/// One Adam step over a tensor's range. Run by [`update_in_parallel`], it is compiled
/// for the widest vectors the CPU has: the update is a square root and a division per
/// element, four at a time in the baseline x86-64 build (SSE2) and sixteen with
/// AVX-512. The arithmetic is the same on every path (no fused multiply-adds), so are
/// the results.
#[inline(always)]
fn adam_update<T: Float>(k: &AdamConsts<T>, w: &mut [T], g: &[T], m: &mut [T], v: &mut [T]) {
    let one = T::one();
    for (((w, &d), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        // Branch-free so the loop vectorizes: AdamW shrinks the weight, Adam adds the
        // decay to the gradient. Each element is read into locals and each result
        // stored once: updating through the references made the compiler store the
        // weight twice and reload it and the first moment (it could not rule out that
        // they overlap), and the step ran 1.7x slower than this form.
        let (w0, m0, v0) = (*w, *m, *v);
        let d = d + k.l2 * w0;
        let m1 = k.b1 * m0 + (one - k.b1) * d;
        let v1 = k.b2 * v0 + (one - k.b2) * d * d;
        *w = w0 * k.shrink - k.lr * (m1 * k.c1) / ((v1 * k.c2).sqrt() + k.eps);
        *m = m1;
        *v = v1;
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<(), NnError> {
        self.check()?;
        check_grads(params, grads)?;
        check_state("first moment", &self.m, params)?;
        check_state("second moment", &self.v, params)?;
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (T::from_f64(self.beta1), T::from_f64(self.beta2));
        let c1 = T::from_f64(1.0 / (1.0 - self.beta1.powi(t)));
        let c2 = T::from_f64(1.0 / (1.0 - self.beta2.powi(t)));
        let (lr, eps, wd) = (
            T::from_f64(self.lr),
            T::from_f64(self.eps),
            T::from_f64(self.weight_decay),
        );
        let one = T::one();
        let (l2, shrink) = if self.decoupled {
            (T::zero(), one - lr * wd)
        } else {
            (wd, one)
        };
        let k = AdamConsts {
            b1,
            b2,
            c1,
            c2,
            lr,
            eps,
            l2,
            shrink,
        };
        for_each_chunk(
            params,
            grads,
            [&mut self.m, &mut self.v],
            #[inline(always)]
            |w, g, [m, v]| adam_update(&k, w, g, m, v),
        );
        Ok(())
    }

    fn state(&self) -> OptimizerState<T> {
        OptimizerState::saved(
            self.kind(),
            self.step,
            &[
                ("lr", self.lr),
                ("beta1", self.beta1),
                ("beta2", self.beta2),
                ("eps", self.eps),
                ("weight_decay", self.weight_decay),
            ],
            &[("m", &self.m), ("v", &self.v)],
        )
    }

    fn load_state(&mut self, mut state: OptimizerState<T>) -> Result<(), NnError> {
        check_kind(&state, self.kind())?;
        let [m, v] = split_tensors(self.name(), std::mem::take(&mut state.tensors), ["m", "v"])?;
        let loaded = Adam {
            lr: hyper(&state, "lr")?,
            beta1: hyper(&state, "beta1")?,
            beta2: hyper(&state, "beta2")?,
            eps: hyper(&state, "eps")?,
            weight_decay: hyper(&state, "weight_decay")?,
            decoupled: self.decoupled,
            step: state.step,
            m,
            v,
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

#[cfg(test)]
mod vector_path_tests {
    use super::*;

    #[test]
    fn the_vector_adam_path_gives_the_plain_loops_bits() {
        let n = 1003; // not a multiple of any vector width
        let gen = |seed: u32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32
                        / 1000.0
                        - 1.0
                })
                .collect()
        };
        let k = AdamConsts {
            b1: 0.9f32,
            b2: 0.999,
            c1: 10.0,
            c2: 1000.0,
            lr: 1e-3,
            eps: 1e-8,
            l2: 1e-2,
            shrink: 1.0,
        };
        let g = gen(1);
        let (mut w1, mut m1, mut v1) = (
            gen(2),
            gen(3),
            gen(4).iter().map(|x| x.abs()).collect::<Vec<_>>(),
        );
        let (mut w2, mut m2, mut v2) = (
            Tensor::from_vec(w1.clone(), [n]),
            Tensor::from_vec(m1.clone(), [n]),
            Tensor::from_vec(v1.clone(), [n]),
        );
        // The plain loop, called here (baseline code) ...
        adam_update(&k, &mut w1, &g, &mut m1, &mut v1);
        // ... and the same loop as the optimizer runs it, in the widest vectors.
        let g = Tensor::from_vec(g, [n]);
        let update = TensorUpdate {
            values: &mut w2,
            grad: &g,
            states: [&mut m2, &mut v2],
        };
        update_in_parallel(
            vec![update],
            #[inline(always)]
            |w, g, [m, v]| adam_update(&k, w, g, m, v),
        );
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(w2.data()), bits(&w1));
        assert_eq!(bits(m2.data()), bits(&m1));
        assert_eq!(bits(v2.data()), bits(&v1));
    }
}
