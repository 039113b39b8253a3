//! `Recompute`: a module whose intermediate values are computed again during backward
//! instead of being kept on the tape ([`autodiff::Tape::recompute`]; PyTorch calls it
//! activation or gradient checkpointing). Not to be confused with [`crate::checkpoint`],
//! which saves a model to disk.

use crate::module::{Module, Sequential};
use crate::params::Bound;
use autodiff::{Float, Var};
use std::ops::Range;
use std::sync::Arc;

/// Runs `M` as one recomputed block: only its output stays on the tape, its
/// intermediate values are computed again when backward reaches it. Gradients are bit
/// for bit those of `M` itself (see [`autodiff::Tape::recompute`] for when), at the cost
/// of about one more forward pass of `M` per backward pass.
///
/// ```
/// use autodiff::{Tape, Tensor};
/// use nn::{Activation, Init, Linear, Module, ParamStore, Recompute, Sequential};
///
/// let mut rng = rand::rng();
/// let mut params = ParamStore::<f64>::new();
/// let mut block = Sequential::new();
/// block.push(Linear::new(&mut params, "l0", 4, 8, Init::He, &mut rng).with_activation(Activation::Relu));
/// block.push(Linear::new(&mut params, "l1", 8, 2, Init::He, &mut rng));
/// let net = Recompute::new(block);
///
/// let tape = Tape::new();
/// let bound = params.bind(&tape);
/// let y = net.forward(&bound, tape.constant(Tensor::ones([3, 4]))).sum();
/// let grads = bound.grads(y.backward()).unwrap();
/// assert_eq!(grads.get("l0.weight").unwrap().shape(), &[4, 8]);
/// ```
pub struct Recompute<M> {
    inner: Arc<M>,
}

impl<M> Recompute<M> {
    /// Wraps `module`.
    pub fn new(module: M) -> Self {
        Recompute {
            inner: Arc::new(module),
        }
    }

    /// The wrapped module.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<T: Float> Sequential<T> {
    /// Turns the layers in `layers` into one [`Recompute`] block (what PyTorch calls
    /// activation checkpointing): only its output stays on the tape, the values inside
    /// are computed again during backward. The block counts as one layer afterwards.
    ///
    /// Panics when the range is empty or reaches past the last layer.
    #[track_caller]
    pub fn recompute(&mut self, layers: Range<usize>) {
        assert!(
            layers.start < layers.end && layers.end <= self.layers.len(),
            "Sequential::recompute: layers {layers:?} of {}",
            self.layers.len()
        );
        let block: Vec<_> = self.layers.drain(layers.clone()).collect();
        self.layers.insert(
            layers.start,
            Box::new(Recompute::new(Sequential { layers: block })),
        );
    }
}

impl<T: Float, M: Module<T> + 'static> Module<T> for Recompute<M> {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        // The block reads parameters through a `Bound` on whichever tape it runs on, so
        // every bound parameter is an input; those it does not read get no gradient
        // from it.
        let (names, vars) = params.split();
        let mut inputs = Vec::with_capacity(vars.len() + 1);
        inputs.push(x);
        inputs.extend(vars);
        let inner = Arc::clone(&self.inner);
        let pass = params.pass();
        x.tape().recompute(
            move |_, inputs| {
                let pairs = names.iter().cloned().zip(inputs[1..].iter().copied());
                inner.forward(&Bound::from_parts(pairs, pass.clone()), inputs[0])
            },
            &inputs,
        )
    }
}
