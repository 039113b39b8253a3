//! A multilayer perceptron built from layer sizes: `Linear` layers named
//! `layers.{i}` with an activation after each.

use crate::activation::Activation;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Module, Sequential};
use crate::params::{Bound, ParamStore};
use autodiff::{Float, Tape, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A fully connected network that owns its parameters.
pub struct Mlp<T: Float = f32> {
    params: ParamStore<T>,
    net: Sequential<T>,
    sizes: Vec<usize>,
}

impl<T: Float> Mlp<T> {
    /// Layers of the given widths (`[784, 16, 16, 10]` has three `Linear` layers),
    /// `hidden` after every layer but the last and `output` after the last, parameters
    /// drawn by `init` from a generator seeded with `seed`.
    pub fn new(
        sizes: &[usize],
        hidden: Activation,
        output: Activation,
        init: Init,
        seed: u64,
    ) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp: needs at least an input and an output size, got {sizes:?}"
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let mut net = Sequential::new();
        let layers = sizes.len() - 1;
        for (i, w) in sizes.windows(2).enumerate() {
            net.push(Linear::new(
                &mut params,
                &format!("layers.{i}"),
                w[0],
                w[1],
                init,
                &mut rng,
            ));
            net.push(if i + 1 == layers { output } else { hidden });
        }
        Mlp {
            params,
            net,
            sizes: sizes.to_vec(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore<T> {
        &self.params
    }

    /// The parameters, mutably (for optimizers and checkpoint loading).
    pub fn params_mut(&mut self) -> &mut ParamStore<T> {
        &mut self.params
    }

    /// Layer widths, input first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Every layer's activations for `x` (after its activation function), first hidden
    /// layer first and the output last: the values the video draws as glowing neurons.
    pub fn activations<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Vec<Var<'t, T>> {
        // The chain alternates Linear and activation layers.
        self.net
            .forward_each(params, x)
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect()
    }

    /// The network's outputs for a batch `[n, inputs]`, computed on a tape that records
    /// no gradient state.
    pub fn predict(&self, x: &Tensor<T>) -> Tensor<T> {
        let tape = Tape::new();
        let bound = self.params.bind_constants(&tape);
        self.forward(&bound, tape.constant(x.clone())).value()
    }
}

impl<T: Float> Module<T> for Mlp<T> {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        self.net.forward(params, x)
    }
}
