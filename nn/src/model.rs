//! [`Model`], a network that owns its parameters, and the two it builds: a multilayer
//! perceptron from layer widths (`Linear` layers named `layers.{i}`, each with its
//! activation fused in), and LeNet-5 (convolutions, then dense layers).

use crate::activation::Activation;
use crate::conv::{Conv2d, Flatten, MaxPool2d, Standardize, Unflatten};
use crate::dropout::Dropout;
use crate::init::Init;
use crate::linear::Linear;
use crate::module::{Module, Sequential};
use crate::params::{Bound, ParamStore};
use autodiff::{Conv2dOptions, Float, Flops, Tape, Tensor, Var};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::ops::Range;

/// A network that owns its parameters: a chain of layers and the store they read.
/// [`Model::new`] builds a multilayer perceptron, [`Model::lenet`] LeNet-5.
pub struct Model<T: Float = f32> {
    params: ParamStore<T>,
    net: Sequential<T>,
    /// The widths a perceptron was built from; LeNet has none.
    sizes: Option<Vec<usize>>,
    /// The width of an input row.
    inputs: usize,
    /// The width of an output row (its last layer's): the number of classes.
    outputs: usize,
}

impl<T: Float> Model<T> {
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
            "Model::new: needs at least an input and an output size, got {sizes:?}"
        );
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let mut net = Sequential::new();
        let layers = sizes.len() - 1;
        for (i, w) in sizes.windows(2).enumerate() {
            let activation = if i + 1 == layers { output } else { hidden };
            net.push(
                Linear::new(
                    &mut params,
                    &format!("layers.{i}"),
                    w[0],
                    w[1],
                    init,
                    &mut rng,
                )
                .with_activation(activation),
            );
        }
        Model {
            params,
            net,
            sizes: Some(sizes.to_vec()),
            inputs: sizes[0],
            outputs: sizes[layers],
        }
    }

    /// PyTorch's own MNIST example (pytorch/examples, `mnist/main.py`; network E,
    /// docs/networks.md): inputs standardised by mean 0.1307 and deviation 0.3081, conv
    /// 3x3 1->32, ReLU, conv 3x3 32->64, ReLU, max-pool 2, dropout 0.25, flatten,
    /// 9216->128, ReLU, dropout 0.5, 128->10 logits (its log-softmax and negative
    /// log-likelihood are [`crate::CrossEntropy`]). PyTorch initialises its layers as
    /// [`Init::UniformFanIn`]. The ReLU after the second convolution is applied after
    /// the pooling, which gives the same values and gradients.
    pub fn pytorch_mnist(init: Init, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let mut net = Sequential::new();
        net.push(Unflatten {
            shape: vec![1, 28, 28],
        });
        net.push(Standardize {
            mean: 0.1307,
            std: 0.3081,
        });
        let opts = Conv2dOptions::new(1, 0);
        net.push(Conv2d::new(
            &mut params,
            "conv1",
            1,
            32,
            3,
            opts,
            init,
            &mut rng,
        ));
        net.push(Activation::Relu);
        net.push(Conv2d::new(
            &mut params,
            "conv2",
            32,
            64,
            3,
            opts,
            init,
            &mut rng,
        ));
        net.push(MaxPool2d {
            kernel: 2,
            stride: 2,
        });
        net.push(Activation::Relu);
        net.push(Dropout::new("dropout1", 0.25));
        net.push(Flatten);
        net.push(
            Linear::new(&mut params, "fc1", 9216, 128, init, &mut rng)
                .with_activation(Activation::Relu),
        );
        net.push(Dropout::new("dropout2", 0.5));
        net.push(Linear::new(&mut params, "fc2", 128, 10, init, &mut rng));
        Model {
            params,
            net,
            sizes: None,
            inputs: 28 * 28,
            outputs: 10,
        }
    }

    /// LeNet-5 for 28x28 digits (network D, docs/networks.md): conv 5x5 1->6 pad 2, ReLU,
    /// max-pool 2, conv 5x5 6->16, ReLU, max-pool 2, then 400-120-84-10 with ReLU.
    /// Input rows of 784 pixels are reshaped to `[1, 28, 28]` images first. Each ReLU
    /// is applied after its pooling, which gives the same values and gradients.
    pub fn lenet(init: Init, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let mut net = Sequential::new();
        net.push(Unflatten {
            shape: vec![1, 28, 28],
        });
        for (name, from, to, padding) in [("conv1", 1, 6, 2), ("conv2", 6, 16, 0)] {
            let opts = Conv2dOptions::new(1, padding);
            net.push(Conv2d::new(
                &mut params,
                name,
                from,
                to,
                5,
                opts,
                init,
                &mut rng,
            ));
            // Pooling before the ReLU: max and ReLU commute (max of ReLUs = ReLU of the
            // max, and both send a window's gradient to the same element or nowhere),
            // so this is LeNet's conv -> ReLU -> pool, with the ReLU and its gradient
            // on a quarter of the values.
            net.push(MaxPool2d {
                kernel: 2,
                stride: 2,
            });
            net.push(Activation::Relu);
        }
        net.push(Flatten);
        let dense = [400, 120, 84, 10];
        for (i, w) in dense.windows(2).enumerate() {
            let activation = if i + 2 < dense.len() {
                Activation::Relu
            } else {
                Activation::Identity
            };
            net.push(
                Linear::new(
                    &mut params,
                    &format!("fc{}", i + 1),
                    w[0],
                    w[1],
                    init,
                    &mut rng,
                )
                .with_activation(activation),
            );
        }
        Model {
            params,
            net,
            sizes: None,
            inputs: 28 * 28,
            outputs: dense[dense.len() - 1],
        }
    }

    /// The same model with each range of layers in `blocks` run as one recomputed
    /// block ([`Sequential::recompute`]): less memory on the tape for about one more
    /// forward pass of the blocks, the same gradients. Ranges index the layers as built
    /// (LeNet: 0 unflatten, 1 conv1, 2 pool, 3 ReLU, 4 conv2, 5 pool, 6 ReLU, 7 flatten,
    /// 8-10 the dense layers; a perceptron: one `Linear` per layer), in increasing,
    /// disjoint order. [`Model::activations`] then sees each block as one layer.
    ///
    /// ```
    /// use nn::{Init, Model};
    /// let lenet = Model::<f32>::lenet(Init::Xavier, 1).recompute(&[1..4, 4..7]);
    /// ```
    ///
    /// Panics when the ranges overlap, are out of order, empty or out of bounds.
    #[track_caller]
    pub fn recompute(mut self, blocks: &[Range<usize>]) -> Self {
        for pair in blocks.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "Model::recompute: blocks {:?} and {:?} overlap or are out of order",
                pair[0],
                pair[1]
            );
        }
        // From the last block back, so that earlier ranges still index the same layers.
        for block in blocks.iter().rev() {
            self.net.recompute(block.clone());
        }
        self
    }

    /// The parameters.
    pub fn params(&self) -> &ParamStore<T> {
        &self.params
    }

    /// The parameters, mutably (for optimizers and checkpoint loading).
    pub fn params_mut(&mut self) -> &mut ParamStore<T> {
        &mut self.params
    }

    /// The layer widths a perceptron was built from ([`Model::new`]): the input width
    /// first, the number of classes last. `None` for LeNet, which is no chain of widths.
    pub fn sizes(&self) -> Option<&[usize]> {
        self.sizes.as_deref()
    }

    /// The width of an input row (784 for MNIST's 28x28 images).
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The width of an output row, that of the last layer: the number of classes.
    ///
    /// ```
    /// use nn::{Activation, Init, Model};
    /// let a = Model::<f32>::new(&[784, 16, 16, 10], Activation::Sigmoid, Activation::Sigmoid, Init::Xavier, 1);
    /// assert_eq!((a.inputs(), a.outputs(), a.sizes()), (784, 10, Some(&[784, 16, 16, 10][..])));
    /// let lenet = Model::<f32>::lenet(Init::He, 1);
    /// assert_eq!((lenet.inputs(), lenet.outputs(), lenet.sizes()), (784, 10, None));
    /// ```
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Every layer's activations for `x` (after its activation function), first hidden
    /// layer first and the output last: the values the video draws as glowing neurons.
    /// (For LeNet: the output of every module of its chain.)
    #[track_caller]
    pub fn activations<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Vec<Var<'t, T>> {
        // Each layer of a perceptron is one `Linear` with its activation fused in.
        self.net.forward_each(params, x)
    }

    /// The network's outputs for a batch `[n, inputs]`, computed on a tape that records
    /// no gradient state. An input of the wrong width panics at the caller's line,
    /// naming the layer that cannot read it.
    #[track_caller]
    pub fn predict(&self, x: &Tensor<T>) -> Tensor<T> {
        let tape = Tape::new();
        let bound = self.params.bind_constants(&tape);
        self.forward(&bound, tape.constant(x.clone())).value()
    }

    /// The arithmetic of training on one example: the flops of the forward pass's
    /// products (matrix products and convolutions) and of the backward pass through
    /// them, counted on a tape ([`Tape::flops`]). The data needs no gradient, so the
    /// first layer's input gradient is not counted, as no training step computes it.
    ///
    /// ```
    /// use nn::{Activation, Init, Model};
    /// let a = Model::<f32>::new(&[784, 16, 16, 10], Activation::Sigmoid, Activation::Sigmoid, Init::Xavier, 1);
    /// let macs = 784 * 16 + 16 * 16 + 16 * 10;
    /// let flops = a.flops_per_example();
    /// assert_eq!(flops.forward, 2 * macs);
    /// assert_eq!(flops.backward, 2 * (2 * macs - 784 * 16));
    /// ```
    pub fn flops_per_example(&self) -> Flops {
        let tape = Tape::new();
        let bound = self.params.bind(&tape).eval();
        let _ = self.forward(&bound, tape.constant(Tensor::zeros([1, self.inputs])));
        tape.flops()
    }
}

impl<T: Float> Module<T> for Model<T> {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        self.net.forward(params, x)
    }
}

#[cfg(test)]
mod wrong_input_tests {
    use super::*;

    fn perceptron() -> Model<f32> {
        Model::new(
            &[3, 4, 2],
            Activation::Sigmoid,
            Activation::Identity,
            Init::Xavier,
            1,
        )
    }

    #[test]
    #[should_panic(expected = "layers.0 (linear 3 -> 4): input [2, 2] has 2 features, expected 3")]
    fn predict_names_the_layer_that_cannot_read_the_input() {
        perceptron().predict(&Tensor::zeros([2, 2]));
    }

    #[test]
    #[should_panic(expected = "layers.0 (linear 3 -> 4): input [5] has 5 features, expected 3")]
    fn forward_names_the_layer_for_a_single_row() {
        let model = perceptron();
        let tape = Tape::new();
        let bound = model.params().bind(&tape);
        model.forward(&bound, tape.constant(Tensor::zeros([5])));
    }

    #[test]
    #[should_panic(
        expected = "unflatten to [1, 28, 28]: input [2, 700] has 700 features per example, expected 784"
    )]
    fn lenet_refuses_rows_that_are_not_28x28_images() {
        Model::<f32>::lenet(Init::He, 1).predict(&Tensor::zeros([2, 700]));
    }

    #[test]
    fn the_right_width_still_runs() {
        assert_eq!(
            perceptron().predict(&Tensor::zeros([2, 3])).shape(),
            &[2, 2]
        );
        let lenet = Model::<f32>::lenet(Init::He, 1).recompute(&[1..4, 4..7]);
        assert_eq!(lenet.predict(&Tensor::zeros([1, 784])).shape(), &[1, 10]);
    }

    #[test]
    fn inputs_and_outputs_are_the_widths_the_model_reads_and_writes() {
        for model in [perceptron(), Model::lenet(Init::He, 1)] {
            let out = model.predict(&Tensor::zeros([2, model.inputs()]));
            assert_eq!(out.shape(), &[2, model.outputs()]);
        }
    }
}
