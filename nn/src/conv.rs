//! Convolutional layers: `Conv2d`, `MaxPool2d`, `AvgPool2d`, `Flatten`, and
//! `Unflatten` to turn rows of pixels back into images.

use crate::init::Init;
use crate::module::Module;
use crate::params::{Bound, ParamStore};
use autodiff::{Conv2dOptions, Float, Var};
use rand::Rng;

/// A 2-D convolution over `[n, c, h, w]` with a bias per output channel. Parameters:
/// `{prefix}.weight` (`[out, in / groups, k, k]`) and `{prefix}.bias` (`[out]`).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: String,
    bias: String,
    options: Conv2dOptions,
}

impl Conv2d {
    /// Creates the layer and registers its parameters, drawn by `init` with
    /// fan-in `in / groups * k * k`.
    #[allow(clippy::too_many_arguments)]
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        prefix: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv2dOptions,
        init: Init,
        rng: &mut R,
    ) -> Self {
        let groups = options.groups.max(1);
        assert!(
            in_channels.is_multiple_of(groups) && out_channels.is_multiple_of(groups) && kernel > 0,
            "Conv2d {prefix}: {in_channels} -> {out_channels} channels with kernel {kernel} and {groups} groups"
        );
        let per_group = in_channels / groups;
        let fan_in = per_group * kernel * kernel;
        let weight = format!("{prefix}.weight");
        let bias = format!("{prefix}.bias");
        store.insert(
            weight.clone(),
            init.tensor(
                &[out_channels, per_group, kernel, kernel],
                fan_in,
                out_channels * kernel * kernel,
                rng,
            ),
        );
        store.insert(bias.clone(), init.bias(fan_in, out_channels, rng));
        Conv2d {
            weight,
            bias,
            options,
        }
    }

    /// The layer's name: the prefix of its parameters' names (`conv1`).
    pub fn name(&self) -> &str {
        self.weight.strip_suffix(".weight").unwrap_or(&self.weight)
    }
}

impl<T: Float> Module<T> for Conv2d {
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let weight = params.get(&self.weight);
        // Weight [out, in / groups, k, k]: the input needs `in` channels.
        let (shape, w) = (x.shape(), weight.shape());
        let channels = w.get(1).map(|c| c * self.options.groups.max(1));
        if let (4, Some(channels)) = (w.len(), channels) {
            // Only built for the message: a closure that panics would report its own line.
            let layer = || {
                format!(
                    "{} (conv2d {channels} -> {}, kernel {}x{})",
                    self.name(),
                    w[0],
                    w[2],
                    w[3]
                )
            };
            if shape.len() != 4 {
                panic!(
                    "{}: input {:?} is not a batch of images [n, {channels}, height, width]",
                    layer(),
                    shape.as_slice()
                );
            }
            if shape[1] != channels {
                panic!(
                    "{}: input {:?} has {} channels, expected {channels}",
                    layer(),
                    shape.as_slice(),
                    shape[1]
                );
            }
        }
        x.conv2d_bias(weight, params.get(&self.bias), self.options)
    }
}

/// Max over `kernel x kernel` windows.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

/// Mean over `kernel x kernel` windows.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

/// `[n, ...]` to `[n, everything else]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

/// `[n, features]` to `[n, shape...]` (rows of pixels to images).
#[derive(Clone, Debug)]
pub struct Unflatten {
    /// The shape of one example.
    pub shape: Vec<usize>,
}

/// `(x - mean) / std` with fixed numbers: inputs standardised inside the model, as
/// PyTorch's MNIST example's `transforms.Normalize((0.1307,), (0.3081,))` does outside
/// it, so that a checkpoint reads the same raw pixels everything else gives it.
#[derive(Clone, Copy, Debug)]
pub struct Standardize {
    /// Subtracted first.
    pub mean: f64,
    /// Divided by next.
    pub std: f64,
}

impl<T: Float> Module<T> for Standardize {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        (x - T::from_f64(self.mean)) * T::from_f64(1.0 / self.std)
    }
}

impl<T: Float> Module<T> for MaxPool2d {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.max_pool2d(self.kernel, self.stride, 0)
    }
}

impl<T: Float> Module<T> for AvgPool2d {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.avg_pool2d(self.kernel, self.stride, 0)
    }
}

impl<T: Float> Module<T> for Flatten {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        x.flatten()
    }
}

impl<T: Float> Module<T> for Unflatten {
    fn forward<'t>(&self, _: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let input = x.shape();
        let want: usize = self.shape.iter().product();
        let has: Option<usize> = input.get(1..).map(|rest| rest.iter().product());
        if has != Some(want) {
            panic!(
                "unflatten to {:?}: input {:?} {}, expected {want}",
                self.shape,
                input.as_slice(),
                match has {
                    Some(k) => format!("has {k} features per example"),
                    None => "has no examples axis".into(),
                }
            );
        }
        let mut shape = vec![input[0]];
        shape.extend_from_slice(&self.shape);
        x.reshape(shape)
    }
}
