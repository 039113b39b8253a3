//! Costs as autodiff expressions: the video's quadratic cost, mean squared error and
//! cross-entropy from logits. Their gradients come from the tape.
//!
//! A cost compares a batch of outputs with a [`Target`]: class labels (one per row) or a
//! tensor of wanted outputs. Quadratic and mean squared error take either (labels mean
//! one-hot rows); cross-entropy takes labels.
//!
//! ```
//! use autodiff::{Tape, Tensor};
//! use nn::{Cost, CrossEntropy, MeanSquaredError};
//!
//! let tape = Tape::<f64>::new();
//! let out = tape.param(Tensor::from_vec(vec![0.2, 0.9], [2, 1]));
//! // A regression: one wanted value per row.
//! let wanted = Tensor::from_vec(vec![0.0, 1.0], [2, 1]);
//! let mse = MeanSquaredError.cost(out, &wanted);
//! assert!((mse.item() - (0.04 + 0.01) / 2.0).abs() < 1e-12);
//!
//! // A classification: one class index per row.
//! let logits = tape.param(Tensor::from_vec(vec![2.0, 0.0, 0.0, 2.0], [2, 2]));
//! assert!(CrossEntropy.cost(logits, &[0, 1]).item() < 0.2);
//! ```

use autodiff::{Float, Tensor, Var};

/// What a cost compares the outputs with.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a, T: Float = f32> {
    /// One class index per row of the outputs.
    Labels(&'a [usize]),
    /// The wanted outputs, of the outputs' shape.
    Values(&'a Tensor<T>),
}

impl<'a, T: Float> From<&'a [usize]> for Target<'a, T> {
    fn from(labels: &'a [usize]) -> Self {
        Target::Labels(labels)
    }
}

impl<'a, T: Float, const N: usize> From<&'a [usize; N]> for Target<'a, T> {
    fn from(labels: &'a [usize; N]) -> Self {
        Target::Labels(labels)
    }
}

impl<'a, T: Float> From<&'a Vec<usize>> for Target<'a, T> {
    fn from(labels: &'a Vec<usize>) -> Self {
        Target::Labels(labels)
    }
}

impl<'a, T: Float> From<&'a Tensor<T>> for Target<'a, T> {
    fn from(values: &'a Tensor<T>) -> Self {
        Target::Values(values)
    }
}

/// A cost of a batch of network outputs against a [`Target`].
pub trait Cost<T: Float = f32>: Send + Sync {
    /// The mean cost over the batch, as a one-element expression. Panics, naming the
    /// cost and both shapes, if the target does not fit the outputs.
    ///
    /// This is the form a trait object can hold. A `Box<dyn Cost>` offers [`Cost::cost`]
    /// too, through its own implementation; on a `&dyn Cost`, call this with
    /// `Target::from(&labels)` or `Target::from(&tensor)`.
    fn cost_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T>;

    /// Each example's cost, shape `[n]`, whose mean is [`Cost::cost_of`] (to rounding):
    /// what `autodiff::func::per_sample_grads` and DP-SGD differentiate.
    /// Panics like [`Cost::cost_of`].
    fn per_sample_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T>;

    /// A short name for logs and messages.
    fn name(&self) -> &'static str;

    /// The mean cost over the batch against labels (`&[usize]`, `&Vec<usize>`) or a
    /// target tensor (`&Tensor<T>`): [`Cost::cost_of`] with the conversion done.
    #[track_caller]
    fn cost<'t, 'a>(&self, output: Var<'t, T>, target: impl Into<Target<'a, T>>) -> Var<'t, T>
    where
        Self: Sized,
        T: 'a,
    {
        self.cost_of(output, target.into())
    }
}

impl<T: Float, C: Cost<T> + ?Sized> Cost<T> for Box<C> {
    #[track_caller]
    fn cost_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        (**self).cost_of(output, target)
    }
    #[track_caller]
    fn per_sample_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        (**self).per_sample_of(output, target)
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// The quadratic cost of the video and of Nielsen's book:
/// `C = 1/(2n) Σ_x ||a(x) - y(x)||²`, with `y` the target or the one-hot label.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quadratic;

/// Mean squared error over every element: `mean((a - y)²)`, with `y` the target or the
/// one-hot label.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanSquaredError;

/// Softmax cross-entropy straight from logits, fused and stable; takes class labels.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy;

/// `[n, classes]` one-hot rows for `labels`. Panics if a label is out of range.
#[track_caller]
pub fn one_hot<T: Float>(labels: &[usize], classes: usize) -> Tensor<T> {
    let mut t = Tensor::zeros([labels.len(), classes]);
    for (row, &l) in labels.iter().enumerate() {
        assert!(
            l < classes,
            "one_hot: label {l} is out of range for {classes} classes"
        );
        t.data_mut()[row * classes + l] = T::one();
    }
    t
}

/// `1/(2n) Σ ||a - y||²` for outputs `a` and targets `y` of shape `[n, k]`.
pub fn quadratic<'t, T: Float>(a: Var<'t, T>, y: Var<'t, T>) -> Var<'t, T> {
    let n = a.shape()[0];
    (a - y).square().sum() / T::from_usize(2 * n.max(1))
}

/// `mean((a - y)²)`.
pub fn mean_squared_error<'t, T: Float>(a: Var<'t, T>, y: Var<'t, T>) -> Var<'t, T> {
    (a - y).square().mean()
}

/// The target as a constant of the outputs' shape: the tensor itself, or one-hot rows
/// for labels. Panics naming `cost` and both shapes when they do not fit.
#[track_caller]
fn target_of<'t, T: Float>(cost: &str, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
    let shape = output.shape();
    match target {
        Target::Values(y) => {
            assert!(
                y.shape() == shape.as_slice(),
                "{cost}: the target has shape {:?} but the outputs have shape {:?}",
                y.shape(),
                shape.as_slice()
            );
            output.tape().constant(y.clone())
        }
        Target::Labels(labels) => {
            assert!(
                shape.len() == 2 && shape[0] == labels.len(),
                "{cost}: outputs of shape {:?} do not fit {} labels (they need shape [{}, classes])",
                shape.as_slice(),
                labels.len(),
                labels.len()
            );
            if let Some(&l) = labels.iter().find(|&&l| l >= shape[1]) {
                panic!(
                    "{cost}: label {l} is out of range for outputs of shape {:?} ({} classes); \
                     for a regression, pass the wanted outputs as a tensor instead of labels",
                    shape.as_slice(),
                    shape[1]
                );
            }
            output.tape().constant(one_hot(labels, shape[1]))
        }
    }
}

/// Every axis but the first (the examples').
fn but_first<T: Float>(output: &Var<'_, T>) -> Vec<usize> {
    (1..output.shape().len()).collect()
}

impl<T: Float> Cost<T> for Quadratic {
    #[track_caller]
    fn cost_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        quadratic(output, target_of("quadratic", output, target))
    }
    #[track_caller]
    fn per_sample_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        let y = target_of("quadratic", output, target);
        (output - y).square().sum_axes(&but_first(&output), false) * T::from_f64(0.5)
    }
    fn name(&self) -> &'static str {
        "quadratic"
    }
}

impl<T: Float> Cost<T> for MeanSquaredError {
    #[track_caller]
    fn cost_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        mean_squared_error(output, target_of("mse", output, target))
    }
    #[track_caller]
    fn per_sample_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        let y = target_of("mse", output, target);
        (output - y).square().mean_axes(&but_first(&output), false)
    }
    fn name(&self) -> &'static str {
        "mse"
    }
}

impl<T: Float> Cost<T> for CrossEntropy {
    #[track_caller]
    fn cost_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        match target {
            Target::Labels(labels) => output.cross_entropy(labels),
            Target::Values(y) => panic!(
                "cross-entropy: takes class labels, not a target tensor (shape {:?}, outputs {:?}); \
                 for a regression use MeanSquaredError or Quadratic",
                y.shape(),
                output.shape().as_slice()
            ),
        }
    }
    #[track_caller]
    fn per_sample_of<'t>(&self, output: Var<'t, T>, target: Target<'_, T>) -> Var<'t, T> {
        if let Target::Values(y) = target {
            self.cost_of(output, Target::Values(y)); // panics, saying why
        }
        // -log softmax(z)[label] per row: the one-hot row picks the label's term.
        let y = target_of("cross-entropy", output, target);
        -(output.log_softmax(1) * y).sum_axes(&[1], false)
    }
    fn name(&self) -> &'static str {
        "cross-entropy"
    }
}
