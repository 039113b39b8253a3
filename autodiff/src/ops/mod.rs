//! The recorded operations. Each op is one type in one file: its forward (a method on
//! [`Var`](crate::Var)) and, in its [`Rule`] impl, side by side, everything the engine
//! needs to differentiate through it: the fast vjp on buffers, the recorded vjp on
//! `Var`s, the tangent rule of forward mode and the per-example rule of per-sample
//! gradients. This file holds the contract and knows no op by name; the tape stores
//! each recorded op as an `Rc<dyn Rule<T>>` and calls it through the trait.
//! docs/architecture.md walks through adding one.

pub(crate) mod activation;
pub(crate) mod adjoint;
pub(crate) mod conv;
pub(crate) mod custom;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod matmul;
pub(crate) mod nn_ops;
pub(crate) mod norm;
pub(crate) mod recompute;
pub(crate) mod reduce;
pub(crate) mod rules;
pub(crate) mod shape_ops;

use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::rc::Rc;

pub use custom::CustomOp;
pub(crate) use elementwise::{BinaryOp, UnaryOp};

/// A recorded op, shared: the recorded sweeps clone it (a reference count) to call its
/// rules while they append to the tape.
pub(crate) type Op<T> = Rc<dyn Rule<T>>;

/// What a vjp sees: the op's input values, its output value, the adjoint of the output,
/// and which inputs want a gradient (the others need no work).
pub(crate) struct VjpContext<'a, T: Float> {
    pub(crate) inputs: &'a [&'a Tensor<T>],
    pub(crate) output: &'a Tensor<T>,
    pub(crate) grad: &'a Tensor<T>,
    pub(crate) wants: &'a [bool],
}

/// One optional gradient per input, in input order.
pub(crate) type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

/// What a recorded vjp sees: the same as [`VjpContext`], as values on the tape, so that
/// the gradients it returns are recorded ops (differentiable again).
pub(crate) struct VarVjp<'a, 't, T: Float> {
    pub(crate) inputs: &'a [Var<'t, T>],
    pub(crate) output: Var<'t, T>,
    pub(crate) grad: Var<'t, T>,
    pub(crate) wants: &'a [bool],
}

/// One optional recorded gradient per input, in input order.
pub(crate) type VarGrads<'t, T> = SmallVec<[Option<Var<'t, T>>; 2]>;

/// What a tangent rule (forward mode) sees: the op's inputs and output on the tape, and
/// each input's tangent (`None`: zero).
pub(crate) struct VarJvp<'a, 't, T: Float> {
    pub(crate) inputs: &'a [Var<'t, T>],
    pub(crate) output: Var<'t, T>,
    pub(crate) tangents: &'a [Option<Var<'t, T>>],
}

/// How one input of an op relates to a batch, for per-sample gradients.
pub(crate) struct BatchInput<'a> {
    /// Its first axis is the examples, and row `i` depends on example `i` only.
    pub(crate) rows: bool,
    /// It depends on a parameter (it will get an adjoint).
    pub(crate) depends: bool,
    pub(crate) shape: &'a [usize],
}

/// What an op sees when per-sample gradients ask whether its output's rows are still
/// the examples: the batch size, its inputs (at least one has rows) and its output's
/// shape (whose first axis is already known to be `n`).
pub(crate) struct BatchView<'a> {
    pub(crate) n: usize,
    pub(crate) inputs: &'a [BatchInput<'a>],
    pub(crate) output: &'a [usize],
}

impl BatchView<'_> {
    /// Whether input `k` has the examples on its first axis.
    pub(crate) fn rows(&self, k: usize) -> bool {
        self.inputs[k].rows
    }

    /// Whether `shape` starts with the batch axis.
    pub(crate) fn leading(&self, shape: &[usize]) -> bool {
        shape.first() == Some(&self.n)
    }
}

/// Everything the engine knows about one kind of recorded op. The forward is the op's
/// public method on [`Var`]; it records an instance of the op's type, holding whatever
/// its rules need beyond the input and output values.
///
/// Where the fast vjp and the recorded one can be one rule generic over
/// [`rules::Real`], they are; where the fast one is a fused kernel, both stand next to
/// each other and a test holds them equal.
pub(crate) trait Rule<T: Float>: 'static {
    /// The op's name as shown in `to_dot`, anomaly reports and messages.
    fn name(&self) -> String;

    /// The fast vector-Jacobian product on buffers ([`Var::backward`]): one gradient
    /// (or `None`) per input, `None` at least where `ctx.wants` is false.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T>;

    /// The same vjp recorded as ops ([`Var::grad`]), so it can be differentiated again.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T>;

    /// The tangent rule (forward mode): the output's tangent from the inputs' tangents,
    /// recorded as ops; `None` when it is zero.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>>;

    /// Whether a releasing sweep ([`Var::backward_releasing`]) should hand this op its
    /// output and adjoint by value ([`Rule::vjp_owned`]), so that it can free them
    /// before it is done (a recomputed block frees them inside its own sweep).
    fn takes_owned(&self) -> bool {
        false
    }

    /// [`Rule::vjp`] with the output and its adjoint by value; called only where
    /// [`Rule::takes_owned`] says so.
    fn vjp_owned(
        &self,
        inputs: &[&Tensor<T>],
        wants: &[bool],
        output: Tensor<T>,
        grad: Tensor<T>,
    ) -> InputGrads<T> {
        self.vjp(&VjpContext {
            inputs,
            output: &output,
            grad: &grad,
            wants,
        })
    }

    /// Per-sample gradients: whether the output's rows are still the examples, given
    /// how the inputs relate to the batch; `false` (the default) when examples meet
    /// here or the op is not known to keep them apart. An op answering `true` must have
    /// a [`Rule::per_example`] rule for every input that is shared by the examples and
    /// depends on a parameter ([`Rule::has_per_example`]).
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        let _ = batch;
        false
    }

    /// Whether [`Rule::per_example`] covers input `k` where it is shared by the
    /// examples and depends on a parameter.
    fn has_per_example(&self, k: usize, batch: &BatchView<'_>) -> bool {
        let _ = (k, batch);
        false
    }

    /// Input `k`'s gradient for each of the `n` examples, stacked (`n` times its
    /// element count), where the output's rows are the examples and `k` is shared by
    /// them; `ctx.grad` is the output's batch adjoint. Called only where
    /// [`Rule::has_per_example`] said so.
    fn per_example(&self, k: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        let _ = (ctx, n);
        unreachable!("{}: no per-example rule for input {k}", self.name())
    }

    /// The custom op's name, when this is its first-order-only vjp (differentiating it
    /// again is refused).
    fn first_order_only(&self) -> Option<&str> {
        None
    }

    /// The multiply-adds of this op's forward on `inputs`, for the tape's flop count
    /// ([`crate::Tape::flops`]): nonzero for the products only (matmul, linear,
    /// convolution), whose first two inputs are the operands (a bias may follow) and
    /// whose gradient with respect to each operand is one more product of the same size.
    fn multiply_adds(&self, inputs: &[&Tensor<T>]) -> u64 {
        let _ = inputs;
        0
    }
}

/// The sum of two optional tangents (`None` is zero).
pub(crate) fn add_tangents<'t, T: Float>(
    a: Option<Var<'t, T>>,
    b: Option<Var<'t, T>>,
) -> Option<Var<'t, T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Gradient for the inputs that want one, computed lazily.
pub(crate) fn want<T: Float>(
    ctx: &VjpContext<'_, T>,
    i: usize,
    f: impl FnOnce() -> Tensor<T>,
) -> Option<Tensor<T>> {
    if ctx.wants[i] {
        Some(f())
    } else {
        None
    }
}
