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
/// GELU, `x Φ(x)` (PyTorch's `nn.GELU`): the exact erf form by default, the tanh form
/// with `approximate` (PyTorch's `approximate='tanh'`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Use `x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))` instead of `x/2 (1 + erf(x/√2))`.
    pub approximate: bool,
}

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
impl<T: Float> Module<T> for Gelu {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        if self.approximate {
            x.gelu_tanh()
        } else {
            x.gelu()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamStore;
    use autodiff::{Tape, Tensor};

    /// The layer is the op: exact by default, the tanh form with `approximate`.
    #[test]
    fn gelu_layer_is_the_engines_gelu_in_either_form() {
        let tape = Tape::<f64>::new();
        let bound = ParamStore::new().bind(&tape);
        let x = tape.constant(Tensor::from_vec(vec![-2.0, -0.5, 0.0, 0.7, 3.0], [5]));
        let exact = Gelu::default().forward(&bound, x).value();
        assert_eq!(exact.data(), x.gelu().value().data());
        let tanh = Gelu { approximate: true }.forward(&bound, x).value();
        assert_eq!(tanh.data(), x.gelu_tanh().value().data());
        assert_ne!(exact.data(), tanh.data());
    }
}
