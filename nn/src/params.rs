//! Named parameters: an insertion-ordered store of owned tensors (names such as
//! `layers.0.weight`), bound onto each training step's fresh tape as leaves, with the
//! buffers beside them (running statistics: saved, never trained), and the mode a
//! forward pass runs in.

use crate::error::NnError;
use autodiff::{Float, Gradients, Tape, Tensor, Var};
use indexmap::IndexMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Whether a forward pass trains or evaluates: PyTorch's `model.train()` and
/// `model.eval()`, chosen per pass where the parameters are bound
/// ([`Bound::train`], [`Bound::eval`]), never held in a global.
///
/// Most layers compute the same thing in both; [`Dropout`](crate::Dropout) and
/// [`BatchNorm`](crate::BatchNorm) do not, and panic, naming themselves, in a pass bound
/// without a mode. [`ParamStore::bind_constants`] (inference, as
/// [`Model::predict`](crate::Model::predict)) evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout drops, batch norm normalises by the batch's statistics and
    /// updates its running ones. `seed` picks this pass's dropout masks (one per
    /// layer, from the seed and the layer's name): give each step its own, derived from
    /// the run's seed and the step, and a run is reproducible and resumes
    /// bit-identically.
    Train {
        /// The seed of this pass's random draws.
        seed: u64,
    },
    /// Evaluation: dropout is the identity, batch norm uses its running statistics.
    Eval,
}

/// What a forward pass knows besides its parameters' handles: its mode, the buffers as
/// bound, and the buffers it wrote. Shared by a `Bound` and those made from it for a
/// recomputed block's tape, so that a write inside the block is kept.
#[derive(Clone)]
pub(crate) struct Pass<T: Float> {
    mode: Option<Mode>,
    buffers: Arc<IndexMap<String, Tensor<T>>>,
    writes: Arc<Mutex<IndexMap<String, Tensor<T>>>>,
}

/// The parameters of a model, by name, in the order they were created. The order is
/// what makes initialisation, optimizer state and checkpoints deterministic.
///
/// Beside the parameters it holds *buffers*: tensors a layer keeps between passes
/// without training them, as batch norm's running mean and variance (PyTorch's
/// `register_buffer`). The optimizer never sees them ([`ParamStore::iter`] and
/// [`ParamStore::len`] are the parameters alone); checkpoints save them as buffers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore<T: Float = f32> {
    params: IndexMap<String, Tensor<T>>,
    buffers: IndexMap<String, Tensor<T>>,
}

impl<T: Float> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore {
            params: IndexMap::new(),
            buffers: IndexMap::new(),
        }
    }

    /// Adds a buffer. Panics if the name is taken by a parameter or a buffer.
    pub fn insert_buffer(&mut self, name: impl Into<String>, value: Tensor<T>) {
        let name = name.into();
        assert!(
            !self.params.contains_key(&name) && !self.buffers.contains_key(&name),
            "ParamStore: {name:?} already exists"
        );
        self.buffers.insert(name, value);
    }

    /// The buffer called `name`.
    pub fn buffer(&self, name: &str) -> Option<&Tensor<T>> {
        self.buffers.get(name)
    }

    /// The buffer called `name`, mutably.
    pub fn buffer_mut(&mut self, name: &str) -> Option<&mut Tensor<T>> {
        self.buffers.get_mut(name)
    }

    /// The buffers' (name, value) pairs in creation order.
    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> {
        self.buffers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Keeps the buffers a training pass bound from this store wrote (batch norm's
    /// running statistics): call it once the pass is done, as
    /// [`Trainer`](crate::Trainer) does after each step. A pass that wrote none (an
    /// evaluation, a model without such layers) changes nothing.
    ///
    /// Panics if `bound` wrote a buffer this store does not hold (it was bound from
    /// another store: a programming error).
    pub fn update_buffers(&mut self, bound: &Bound<'_, T>) {
        let writes = std::mem::take(
            &mut *bound
                .pass
                .writes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (name, value) in writes {
            match self.buffers.get_mut(&name) {
                Some(b) => *b = value,
                None => panic!(
                    "update_buffers: the pass wrote {name:?}, which this store does not hold"
                ),
            }
        }
    }

    /// Adds a parameter. Panics if the name is taken: two layers sharing a name is a
    /// programming error.
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor<T>) {
        let name = name.into();
        assert!(
            !self.params.contains_key(&name),
            "ParamStore: parameter {name:?} already exists"
        );
        self.params.insert(name, value);
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.params.get(name)
    }

    /// The parameter called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor<T>> {
        self.params.get_mut(name)
    }

    /// (name, value) pairs in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// (name, value) pairs in creation order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Tensor<T>)> {
        self.params.iter_mut().map(|(k, v)| (k.as_str(), v))
    }

    /// The values in creation order, without their names.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Tensor<T>> + DoubleEndedIterator {
        self.params.values()
    }

    /// The values in creation order as a list: what [`autodiff::func`]'s transforms
    /// take. Each is a clone, which shares its storage with the store's tensor (no
    /// element is copied); writing to either one copies it first.
    ///
    /// ```
    /// use nn::{Activation, Init, Model};
    ///
    /// let model = Model::<f32>::new(&[2, 3, 2], Activation::Relu, Activation::Identity, Init::He, 1);
    /// let values = model.params().to_values();
    /// assert_eq!(values.len(), 4);
    /// assert_eq!(values[0].shape(), &[2, 3]);
    /// assert_eq!(&values[1], model.params().get("layers.0.bias").unwrap());
    /// ```
    pub fn to_values(&self) -> Vec<Tensor<T>> {
        self.params.values().cloned().collect()
    }

    /// The values in creation order as a list, dropping the names.
    pub fn into_values(self) -> Vec<Tensor<T>> {
        self.params.into_values().collect()
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.params.values().map(Tensor::numel).sum()
    }

    /// Records every parameter on `tape` as a leaf that wants a gradient.
    ///
    /// The pass has no [`Mode`] until one is given ([`Bound::train`], [`Bound::eval`]):
    /// a model with dropout or batch norm needs one, others run the same in both.
    pub fn bind<'t>(&self, tape: &'t Tape<T>) -> Bound<'t, T> {
        self.bound(
            self.params
                .iter()
                .map(|(k, v)| (k.clone(), tape.param(v.clone()))),
        )
    }

    /// Records every parameter as a constant: for inference, where no gradient is
    /// wanted and the tape records no vjp state. The pass evaluates ([`Mode::Eval`]).
    pub fn bind_constants<'t>(&self, tape: &'t Tape<T>) -> Bound<'t, T> {
        self.bound(
            self.params
                .iter()
                .map(|(k, v)| (k.clone(), tape.constant(v.clone()))),
        )
        .eval()
    }

    /// A `Bound` of these handles and this store's buffers, without a mode.
    fn bound<'t>(&self, vars: impl IntoIterator<Item = (String, Var<'t, T>)>) -> Bound<'t, T> {
        Bound {
            vars: vars.into_iter().collect(),
            pass: Pass {
                mode: None,
                buffers: Arc::new(self.buffers.clone()),
                writes: Arc::default(),
            },
        }
    }

    /// Names tape values after this store's parameters, one per parameter in store
    /// order: a model run inside a function transform that records the parameters
    /// itself ([`autodiff::func::hvp`], [`autodiff::func::hessian`]), so that the cost is
    /// a function of the parameters' values rather than of the store. Panics naming the
    /// parameter when the count or a shape differs (a programming error).
    ///
    /// ```
    /// use autodiff::{func, Tensor};
    /// use nn::{Activation, Cost, Init, Model, Module, Quadratic};
    ///
    /// let model = Model::<f64>::new(&[2, 3, 2], Activation::Sigmoid, Activation::Sigmoid, Init::Xavier, 1);
    /// let x = Tensor::from_vec(vec![0.1, 0.9, 0.4, 0.2], [2, 2]);
    /// let values = model.params().to_values();
    /// let v: Vec<Tensor<f64>> = values.iter().map(|t| Tensor::ones(t.shape())).collect();
    /// // H v for the Hessian of the cost with respect to every parameter.
    /// let hv = func::hvp(|tape, p| {
    ///     let bound = model.params().bind_vars(p);
    ///     Quadratic.cost(model.forward(&bound, tape.constant(&x)), &[1, 0])
    /// }, &values, &v);
    /// assert_eq!(hv[0].shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn bind_vars<'t>(&self, vars: &[Var<'t, T>]) -> Bound<'t, T> {
        assert!(
            vars.len() == self.params.len(),
            "bind_vars: {} values given for {} parameters",
            vars.len(),
            self.params.len()
        );
        let pairs = self.params.iter().zip(vars).map(|((name, value), &var)| {
            let shape = var.shape();
            assert!(
                shape.as_slice() == value.shape(),
                "bind_vars: the value for {name:?} has shape {:?}, the parameter {:?}",
                shape.as_slice(),
                value.shape()
            );
            (name.clone(), var)
        });
        let pairs: Vec<_> = pairs.collect();
        self.bound(pairs)
    }

    /// Replaces every value (parameters and buffers) from `other`, which must hold
    /// exactly the same names and shapes; the error lists every difference.
    pub fn assign_from(&mut self, other: ParamStore<T>) -> Result<(), String> {
        let mut problems = Vec::new();
        differences(&self.params, &other.params, "tensor", &mut problems);
        differences(&self.buffers, &other.buffers, "buffer", &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        for (name, value) in other.params {
            self.params[&name] = value;
        }
        for (name, value) in other.buffers {
            self.buffers[&name] = value;
        }
        Ok(())
    }
}

/// Appends to `problems` every name `given` lacks or adds against `expected`, and every
/// shape that differs; `what` names the kind of tensor.
fn differences<T: Float>(
    expected: &IndexMap<String, Tensor<T>>,
    given: &IndexMap<String, Tensor<T>>,
    what: &str,
    problems: &mut Vec<String>,
) {
    for (name, value) in expected {
        match given.get(name) {
            None => problems.push(format!("missing {what} {name:?}")),
            Some(v) if v.shape() != value.shape() => problems.push(format!(
                "{name:?} has shape {:?}, the model expects {:?}",
                v.shape(),
                value.shape()
            )),
            Some(_) => {}
        }
    }
    for name in given.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("unexpected {what} {name:?}"));
    }
}

/// A model's parameters recorded on one tape ([`ParamStore::bind`]): a [`Var`] per
/// parameter, looked up by name inside `forward`, living as long as that tape.
///
/// One of three gradient-related types, each keyed differently: a `Bound` maps names
/// to this tape's handles; the backward pass returns an [`autodiff::Gradients`], keyed by
/// those handles; [`Bound::grads`] turns it into [`Grads`], keyed by parameter name,
/// which outlives the tape and is what an optimizer reads.
pub struct Bound<'t, T: Float = f32> {
    vars: IndexMap<String, Var<'t, T>>,
    pass: Pass<T>,
}

impl<'t, T: Float> Bound<'t, T> {
    /// The tape handle of parameter `name`. Panics with the known names if there is
    /// no such parameter (a layer and its store disagree: a programming error).
    #[track_caller]
    pub fn get(&self, name: &str) -> Var<'t, T> {
        match self.vars.get(name) {
            Some(v) => *v,
            None => panic!(
                "Bound: no parameter {name:?}; known: {:?}",
                self.vars.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// This pass trains, its random draws seeded by `seed` ([`Mode::Train`]).
    pub fn train(self, seed: u64) -> Self {
        self.with_mode(Mode::Train { seed })
    }

    /// This pass evaluates ([`Mode::Eval`]).
    pub fn eval(self) -> Self {
        self.with_mode(Mode::Eval)
    }

    /// This pass runs in `mode`.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.pass.mode = Some(mode);
        self
    }

    /// The pass's mode, if one was given.
    pub fn mode(&self) -> Option<Mode> {
        self.pass.mode
    }

    /// The pass's mode, for a layer that behaves differently in training and
    /// evaluation: panics at the caller's line, naming `layer`, when none was given.
    #[track_caller]
    pub fn mode_for(&self, layer: &str) -> Mode {
        match self.pass.mode {
            Some(mode) => mode,
            None => panic!(
                "{layer} behaves differently in training and evaluation: bind the \
                 parameters with `.train(seed)` or `.eval()` (`store.bind(&tape).train(seed)`)"
            ),
        }
    }

    /// The buffer called `name` as the pass sees it: its latest write in this pass, else
    /// the store's value when bound. Panics naming the known buffers if there is none.
    #[track_caller]
    pub fn buffer(&self, name: &str) -> Tensor<T> {
        let writes = self
            .pass
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match writes.get(name).or_else(|| self.pass.buffers.get(name)) {
            Some(t) => t.clone(),
            None => panic!(
                "Bound: no buffer {name:?}; known: {:?}",
                self.pass.buffers.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// Writes the buffer `name` for this pass (a training pass's running statistics);
    /// [`ParamStore::update_buffers`] keeps the writes afterwards. Panics if the store
    /// has no such buffer or the shape differs.
    #[track_caller]
    pub fn set_buffer(&self, name: &str, value: Tensor<T>) {
        match self.pass.buffers.get(name) {
            Some(b) => assert!(
                b.shape() == value.shape(),
                "Bound::set_buffer: {name:?} has shape {:?}, the value {:?}",
                b.shape(),
                value.shape()
            ),
            None => panic!(
                "Bound: no buffer {name:?}; known: {:?}",
                self.pass.buffers.keys().collect::<Vec<_>>()
            ),
        }
        self.pass
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), value);
    }

    /// Runs `hook` on parameter `name`'s gradient once it is complete, in the backward
    /// pass, before the pass returns it: PyTorch's `register_post_accumulate_grad_hook`,
    /// for logging, clipping or scaling one parameter's gradient. Returning `Some(g)`
    /// replaces the gradient (the optimizer then sees `g`), `None` keeps it. A
    /// parameter's gradient is complete as the walk reaches the parameter, after every
    /// op that reads it (they all come later on the tape), so hooks run in reverse
    /// store order. See [`autodiff::Var::register_hook`] for the recorded pass.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// use nn::{Activation, Cost, CrossEntropy, Init, Model, Module};
    ///
    /// let model = Model::<f64>::new(&[2, 3, 2], Activation::Relu, Activation::Identity, Init::He, 1);
    /// let tape = Tape::new();
    /// let bound = model.params().bind(&tape);
    /// // Halve the first layer's weight gradient.
    /// bound.register_hook("layers.0.weight", |g| Some(g.map(|v| v * 0.5)));
    /// let x = tape.constant(Tensor::from_vec(vec![0.5, -1.0], [1, 2]));
    /// let cost = CrossEntropy.cost(model.forward(&bound, x), &[1]);
    /// let grads = bound.grads(cost.backward()).unwrap();
    /// assert_eq!(grads.get("layers.0.weight").unwrap().shape(), &[2, 3]);
    /// ```
    ///
    /// Panics naming the known parameters if there is no parameter `name`, and at the
    /// caller's line if it was bound as a constant (no gradient reaches it).
    #[track_caller]
    pub fn register_hook(
        &self,
        name: &str,
        hook: impl Fn(&Tensor<T>) -> Option<Tensor<T>> + 'static,
    ) {
        self.get(name).register_hook(hook);
    }

    /// This pass's mode and buffers, to bind other handles into the same pass with
    /// [`Bound::from_parts`].
    pub(crate) fn pass(&self) -> Pass<T> {
        self.pass.clone()
    }

    /// Names and handles from (name, handle) pairs, in `pass` (a recomputed block's
    /// tape, in the pass that recorded the block).
    pub(crate) fn from_parts(
        pairs: impl IntoIterator<Item = (String, Var<'t, T>)>,
        pass: Pass<T>,
    ) -> Self {
        Bound {
            vars: pairs.into_iter().collect(),
            pass,
        }
    }

    /// The names and the handles, in store order.
    pub(crate) fn split(&self) -> (Vec<String>, Vec<Var<'t, T>>) {
        self.vars.iter().map(|(k, &v)| (k.clone(), v)).unzip()
    }

    /// Takes each parameter's gradient out of `grads`, in store order. A parameter
    /// without a gradient is an error naming it, never silently skipped.
    pub fn grads(&self, mut grads: Gradients<T>) -> Result<Grads<T>, NnError> {
        let mut out = IndexMap::with_capacity(self.vars.len());
        let mut missing = Vec::new();
        for (name, &var) in &self.vars {
            match grads.take(var) {
                Some(g) => {
                    out.insert(name.clone(), g);
                }
                None => missing.push(name.clone()),
            }
        }
        if missing.is_empty() {
            Ok(Grads { grads: out })
        } else {
            Err(NnError::MissingGradient(missing))
        }
    }
}

/// One gradient per parameter, keyed by parameter name (as in the [`ParamStore`]), in
/// store order: what [`Bound::grads`] makes of a backward pass's
/// [`autodiff::Gradients`] (keyed by the tape's [`Var`] handles) and what an
/// [`Optimizer`](crate::Optimizer) reads. Owned tensors, so it outlives the tape.
#[derive(Clone, Debug)]
pub struct Grads<T: Float = f32> {
    grads: IndexMap<String, Tensor<T>>,
}

impl<T: Float> Grads<T> {
    /// Gradients computed by other means than a backward pass (DP-SGD's noisy clipped
    /// mean), by name in store order.
    pub(crate) fn from_map(grads: IndexMap<String, Tensor<T>>) -> Self {
        Grads { grads }
    }

    /// The gradient of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.grads.get(name)
    }

    /// (name, gradient) pairs in store order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> {
        self.grads.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The gradients in store order, without their names.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Tensor<T>> + DoubleEndedIterator {
        self.grads.values()
    }

    /// The gradients in store order, mutably (for [`crate::clip_grad_norm`]).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Tensor<T>> {
        self.grads.values_mut()
    }

    /// The gradients in store order as a list; each a clone that shares its storage
    /// with this one's (no element is copied).
    pub fn to_values(&self) -> Vec<Tensor<T>> {
        self.grads.values().cloned().collect()
    }

    /// The gradients in store order as a list, dropping the names.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// use nn::{Activation, Cost, CrossEntropy, Init, Model, Module};
    ///
    /// let model = Model::<f32>::new(&[2, 3, 2], Activation::Relu, Activation::Identity, Init::He, 1);
    /// let tape = Tape::new();
    /// let bound = model.params().bind(&tape);
    /// let out = model.forward(&bound, tape.constant(Tensor::from_vec(vec![0.5, -1.0], [1, 2])));
    /// let grads = bound.grads(CrossEntropy.cost(out, &[1]).backward()).unwrap();
    /// let list = grads.into_values();
    /// let shapes: Vec<&[usize]> = list.iter().map(|g| g.shape()).collect();
    /// assert_eq!(shapes, [&[2, 3][..], &[3], &[3, 2], &[2]]);
    /// ```
    pub fn into_values(self) -> Vec<Tensor<T>> {
        self.grads.into_values().collect()
    }

    /// Number of gradients.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

#[cfg(test)]
mod values_tests {
    use super::*;

    fn store() -> ParamStore<f32> {
        let mut s = ParamStore::new();
        s.insert("b", Tensor::from_vec(vec![1.0, 2.0], [2]));
        s.insert("a", Tensor::from_vec(vec![3.0], [1]));
        s
    }

    #[test]
    fn values_come_in_store_order_and_share_storage() {
        let s = store();
        let listed: Vec<&Tensor<f32>> = s.values().collect();
        assert_eq!(listed, [s.get("b").unwrap(), s.get("a").unwrap()]);
        assert_eq!(s.values().len(), 2);
        let cloned = s.to_values();
        assert_eq!(cloned.len(), 2);
        for (c, (_, t)) in cloned.iter().zip(s.iter()) {
            assert_eq!(
                c.data().as_ptr(),
                t.data().as_ptr(),
                "a clone copied its data"
            );
        }
        let owned = s.clone().into_values();
        assert_eq!(owned, cloned);
    }

    #[test]
    fn gradient_values_come_in_store_order() {
        let s = store();
        let grads = Grads::from_map(s.iter().map(|(k, v)| (k.to_string(), v.clone())).collect());
        assert_eq!(
            grads.values().collect::<Vec<_>>(),
            s.values().collect::<Vec<_>>()
        );
        assert_eq!(grads.to_values(), s.to_values());
        assert_eq!(grads.into_values(), s.into_values());
    }
}
