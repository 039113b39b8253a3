//! User-defined ops: any forward function with its own vector-Jacobian product can be
//! recorded on a tape and checked with `gradcheck` like a built-in op.

use super::{InputGrads, Op, VjpContext};
use crate::float::Float;
use crate::shape::Dims;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// An operation defined outside this crate.
///
/// ```
/// use autodiff::{CustomOp, Tape, Tensor};
///
/// /// y = x³, dy/dx = 3x²
/// struct Cube;
/// impl CustomOp<f64> for Cube {
///     fn name(&self) -> &str { "cube" }
///     fn forward(&self, inputs: &[&Tensor<f64>]) -> Tensor<f64> { inputs[0].map(|x| x * x * x) }
///     fn vjp(&self, inputs: &[&Tensor<f64>], _output: &Tensor<f64>, grad: &Tensor<f64>) -> Vec<Tensor<f64>> {
///         vec![inputs[0].zip_map(grad, |x, g| 3.0 * x * x * g)]
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(Tensor::from_vec(vec![2.0], [1]));
/// let y = tape.custom(Cube, &[x]).sum();
/// assert_eq!(y.backward()[x].data(), &[12.0]);
/// ```
pub trait CustomOp<T: Float>: 'static {
    /// The name shown in graphs and messages.
    fn name(&self) -> &str;

    /// Computes the output from the input values.
    fn forward(&self, inputs: &[&Tensor<T>]) -> Tensor<T>;

    /// Given the adjoint `grad` of the output, returns one gradient per input, each of
    /// its input's shape.
    fn vjp(&self, inputs: &[&Tensor<T>], output: &Tensor<T>, grad: &Tensor<T>) -> Vec<Tensor<T>>;
}

pub(crate) fn vjp<T: Float>(op: &dyn CustomOp<T>, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let grads = op.vjp(ctx.inputs, ctx.output, ctx.grad);
    assert!(
        grads.len() == ctx.inputs.len(),
        "{}: vjp returned {} gradients for {} inputs",
        op.name(),
        grads.len(),
        ctx.inputs.len()
    );
    grads
        .into_iter()
        .zip(ctx.inputs)
        .zip(ctx.wants)
        .map(|((g, x), &wanted)| {
            assert!(
                g.shape() == x.shape(),
                "{}: vjp returned a gradient of shape {} for an input of shape {}",
                op.name(),
                Dims(g.shape()),
                Dims(x.shape())
            );
            wanted.then_some(g)
        })
        .collect()
}

impl<T: Float> Tape<T> {
    /// Records a user-defined op applied to `inputs`. A panic in the op's `forward`
    /// names the op's own line; mixing tapes panics at the caller's line.
    #[track_caller]
    pub fn custom<'t>(&'t self, op: impl CustomOp<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        self.record(inputs, |x, _| (op.forward(x), Op::Custom(Box::new(op))))
    }
}
