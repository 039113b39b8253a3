//! The `Module` trait that layers implement, and `Sequential` to chain them. Layers
//! hold parameter *names*; the values live in a `ParamStore` bound to each step's tape,
//! so no layer type carries a tape lifetime.

use crate::params::Bound;
use autodiff::{Float, Var};

/// A differentiable function of its input and some named parameters.
pub trait Module<T: Float = f32>: Send + Sync {
    /// Builds this layer's expression on `x`'s tape.
    ///
    /// The method is `#[track_caller]` (every implementation is, through a
    /// `Box<dyn Module>` too): an input of the wrong shape panics naming the line that
    /// called the model's `forward`, not a line inside a layer. A layer that checks its
    /// input names itself in the message (`layers.1 (linear 3 -> 3): input [2, 2] has 2
    /// features, expected 3`). Code between the caller and the layer keeps the caller's
    /// line only without closures in between: loop over layers with `for`, not `fold`.
    #[track_caller]
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
    #[track_caller]
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
        // A loop, not a fold: a closure would report its own line for a shape panic.
        let mut h = x;
        for layer in &self.layers {
            h = layer.forward(params, h);
        }
        h
    }
}

#[cfg(test)]
mod wrong_input_tests {
    use super::*;
    use crate::conv::Conv2d;
    use crate::init::Init;
    use crate::linear::Linear;
    use crate::params::ParamStore;
    use autodiff::{Conv2dOptions, Tape, Tensor};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    #[should_panic(expected = "layers.1 (linear 3 -> 3): input [2, 2] has 2 features, expected 3")]
    fn a_chain_names_the_layer_whose_input_does_not_fit() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut params = ParamStore::<f32>::new();
        let mut net = Sequential::new();
        net.push(Linear::new(
            &mut params,
            "layers.0",
            3,
            2,
            Init::He,
            &mut rng,
        ));
        net.push(Linear::new(
            &mut params,
            "layers.1",
            3,
            3,
            Init::He,
            &mut rng,
        ));
        let tape = Tape::new();
        let bound = params.bind(&tape);
        net.forward(&bound, tape.constant(Tensor::zeros([2, 3])));
    }

    #[test]
    #[should_panic(
        expected = "conv1 (conv2d 1 -> 6, kernel 5x5): input [1, 3, 8, 8] has 3 channels, expected 1"
    )]
    fn a_convolution_names_itself_and_the_channels() {
        conv1_forward([1, 3, 8, 8]);
    }

    #[test]
    #[should_panic(
        expected = "conv1 (conv2d 1 -> 6, kernel 5x5): input [2, 784] is not a batch of images [n, 1, height, width]"
    )]
    fn a_convolution_refuses_rows() {
        conv1_forward([2, 784]);
    }

    /// A 1 -> 6 channel, 5x5 convolution named `conv1`, given zeros of `shape`.
    fn conv1_forward(shape: impl AsRef<[usize]>) {
        let mut rng = StdRng::seed_from_u64(1);
        let mut params = ParamStore::<f32>::new();
        let opts = Conv2dOptions::new(1, 0);
        let conv = Conv2d::new(&mut params, "conv1", 1, 6, 5, opts, Init::He, &mut rng);
        let tape = Tape::new();
        let bound = params.bind(&tape);
        conv.forward(&bound, tape.constant(Tensor::zeros(shape.as_ref())));
    }
}
