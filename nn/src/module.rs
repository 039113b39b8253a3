//! The `Module` trait that layers implement, and `Sequential` to chain them. Layers
//! hold parameter *names*; the values live in a `ParamStore` bound to each step's tape,
//! so no layer type carries a tape lifetime.

use crate::params::Bound;
use autodiff::{Float, Var};

/// A differentiable function of its input and some named parameters.
pub trait Module<T: Float = f32>: Send + Sync {
    /// Builds this layer's expression on `x`'s tape.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T>;
}

/// Layers applied one after another.
#[derive(Default)]
pub struct Sequential<T: Float = f32> {
    pub(crate) layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Float> Sequential<T> {
    /// An empty chain (the identity).
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Module<T> + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// The output of every layer in turn (the last is the chain's output).
    pub fn forward_each<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Vec<Var<'t, T>> {
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut h = x;
        for layer in &self.layers {
            h = layer.forward(params, h);
            outputs.push(h);
        }
        outputs
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl<T: Float> Module<T> for Sequential<T> {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        self.layers
            .iter()
            .fold(x, |h, layer| layer.forward(params, h))
    }
}
