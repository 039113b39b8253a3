//! Activation layers: elementwise functions with no parameters.

use crate::module::Module;
use crate::params::Bound;
use autodiff::{Float, Var};

/// The logistic function, the video's activation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;
/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;
/// Hyperbolic tangent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

impl<T: Float> Module<T> for Sigmoid {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.sigmoid()
    }
}
impl<T: Float> Module<T> for ReLU {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.relu()
    }
}
impl<T: Float> Module<T> for Tanh {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.tanh()
    }
}

/// An activation chosen at run time (by the model builder or a command line): the
/// engine's own definition, which also gives its derivative and its fused layer.
pub use autodiff::Activation;

impl<T: Float> Module<T> for Activation {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.activation(*self)
    }
}
