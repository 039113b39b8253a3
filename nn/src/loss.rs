//! Costs as autodiff expressions: the video's quadratic cost, mean squared error and
//! cross-entropy from logits. Their gradients come from the tape.

use autodiff::{Float, Tensor, Var};

/// A cost of a batch of network outputs against class labels.
pub trait Cost<T: Float = f32>: Send + Sync {
    /// The mean cost over the batch, as a one-element expression.
    fn cost<'t>(&self, output: Var<'t, T>, labels: &[usize]) -> Var<'t, T>;

    /// A short name for logs.
    fn name(&self) -> &'static str;
}

/// The quadratic cost of the video and of Nielsen's book:
/// `C = 1/(2n) Σ_x ||a(x) - y(x)||²` with `y` the one-hot label.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quadratic;

/// Mean squared error over every element: `mean((a - y)²)` with one-hot `y`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MeanSquaredError;

/// Softmax cross-entropy straight from logits, fused and stable.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropy;

/// `[n, classes]` one-hot rows for `labels`. Panics if a label is out of range.
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

fn one_hot_of<'t, T: Float>(output: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
    let shape = output.shape();
    assert!(
        shape.len() == 2 && shape[0] == labels.len(),
        "cost: outputs {:?} need shape [n, classes] with n = {} labels",
        shape.as_slice(),
        labels.len()
    );
    output.tape().constant(one_hot(labels, shape[1]))
}

impl<T: Float> Cost<T> for Quadratic {
    fn cost<'t>(&self, output: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
        quadratic(output, one_hot_of(output, labels))
    }
    fn name(&self) -> &'static str {
        "quadratic"
    }
}

impl<T: Float> Cost<T> for MeanSquaredError {
    fn cost<'t>(&self, output: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
        mean_squared_error(output, one_hot_of(output, labels))
    }
    fn name(&self) -> &'static str {
        "mse"
    }
}

impl<T: Float> Cost<T> for CrossEntropy {
    fn cost<'t>(&self, output: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
        output.cross_entropy(labels)
    }
    fn name(&self) -> &'static str {
        "cross-entropy"
    }
}
