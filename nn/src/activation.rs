//! Activation layers: elementwise functions with no parameters.

use crate::module::Module;
use crate::params::Bound;
use autodiff::{Float, Var};
use std::fmt;
use std::str::FromStr;

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

/// An activation chosen at run time (by the MLP builder or a command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// [`Sigmoid`]
    Sigmoid,
    /// [`ReLU`]
    Relu,
    /// [`Tanh`]
    Tanh,
    /// No activation: the layer's output is left linear (logits).
    Identity,
}

impl<T: Float> Module<T> for Activation {
    fn forward<'t>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        match self {
            Activation::Sigmoid => Sigmoid.forward(p, x),
            Activation::Relu => ReLU.forward(p, x),
            Activation::Tanh => Tanh.forward(p, x),
            Activation::Identity => x,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        })
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sigmoid" => Ok(Activation::Sigmoid),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "identity" | "none" => Ok(Activation::Identity),
            _ => Err(format!(
                "unknown activation {s:?} (expected sigmoid, relu, tanh or identity)"
            )),
        }
    }
}
