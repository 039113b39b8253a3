//! `Linear`: the affine layer `x W + b`, with `W` stored as `[in, out]` so a batch of
//! row vectors multiplies without a transpose.

use crate::activation::Activation;
use crate::init::Init;
use crate::module::Module;
use crate::params::{Bound, ParamStore};
use autodiff::{Float, Var};
use rand::Rng;

/// A fully connected layer, optionally followed by an activation. Its parameters live in
/// a [`ParamStore`] under `{prefix}.weight` (`[in, out]`) and `{prefix}.bias` (`[out]`).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: String,
    bias: String,
    in_features: usize,
    out_features: usize,
    activation: Activation,
}

impl Linear {
    /// Creates the layer and registers its initialised parameters in `store`.
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        init: Init,
        rng: &mut R,
    ) -> Self {
        assert!(
            in_features > 0 && out_features > 0,
            "Linear {prefix}: sizes must be positive, got {in_features} x {out_features}"
        );
        let weight = format!("{prefix}.weight");
        let bias = format!("{prefix}.bias");
        store.insert(weight.clone(), init.weight(in_features, out_features, rng));
        store.insert(bias.clone(), init.bias(in_features, out_features, rng));
        Linear {
            weight,
            bias,
            in_features,
            out_features,
            activation: Activation::Identity,
        }
    }

    /// The same layer with `activation` applied to its output. On a batch of rows it is
    /// one fused op ([`Var::linear_with`]): each thread applies the
    /// activation to the rows of the product it has just computed, with the same values
    /// and gradients as a separate activation layer, one pass and one split job fewer.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The activation applied to the layer's output ([`Activation::Identity`]: none).
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The weight's parameter name.
    pub fn weight_name(&self) -> &str {
        &self.weight
    }

    /// The bias's parameter name.
    pub fn bias_name(&self) -> &str {
        &self.bias
    }

    /// The layer's name: the prefix of its parameters' names (`layers.1`).
    pub fn name(&self) -> &str {
        self.weight.strip_suffix(".weight").unwrap_or(&self.weight)
    }

    /// Panics at the caller's line, naming the layer, unless `shape` ends in
    /// `in_features`.
    #[track_caller]
    fn check_input(&self, shape: &[usize]) {
        let features = shape.last().copied();
        if features != Some(self.in_features) {
            let has = match features {
                Some(k) => format!("has {k} features"),
                None => "has no features axis".into(),
            };
            panic!(
                "{} (linear {} -> {}): input {shape:?} {has}, expected {}",
                self.name(),
                self.in_features,
                self.out_features,
                self.in_features
            );
        }
    }
}

impl<T: Float> Module<T> for Linear {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        self.check_input(&shape);
        let (w, b) = (params.get(&self.weight), params.get(&self.bias));
        if shape.len() == 2 {
            // Fused: the product accumulates onto the bias rows, then the activation.
            x.linear_with(w, b, self.activation)
        } else {
            // The bias broadcasts over the leading dimensions.
            (x.matmul(w) + b).activation(self.activation)
        }
    }
}
