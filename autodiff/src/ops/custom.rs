//! User-defined ops: any forward function with its own vector-Jacobian product can be
//! recorded on a tape and checked with `gradcheck` like a built-in op.

use super::{InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::{Dims, Shape};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::panic::Location;
use std::rc::Rc;

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

    /// The same vjp written with tape ops, so that it can be differentiated again
    /// ([`Var::grad`], [`crate::gradgradcheck`]). `None` (the default) means the op has
    /// only its first-order [`CustomOp::vjp`]: `backward` and a first [`Var::grad`] still
    /// work, but differentiating that gradient again panics naming the op, rather than
    /// silently treating the op's second derivative as zero.
    fn vjp_var<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        grad: Var<'t, T>,
    ) -> Option<Vec<Var<'t, T>>> {
        let _ = (inputs, output, grad);
        None
    }

    /// The tangent rule for forward mode ([`crate::func::jvp`]): the output's tangent
    /// from the inputs' tangents (zeros where an input has none), written with tape ops.
    /// `None` (the default): forward mode through this op panics naming it.
    fn jvp_var<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        tangents: &[Var<'t, T>],
    ) -> Option<Var<'t, T>> {
        let _ = (inputs, output, tangents);
        None
    }
}

/// Panics, naming the op, where a first-order-only vjp would be differentiated again.
#[track_caller]
pub(crate) fn refuse_second_order(name: &str) -> ! {
    panic!(
        "custom op `{name}` has only a first-order vjp: its gradient cannot be differentiated \
         again (give the op a differentiable vjp with CustomOp::vjp_var)"
    )
}

/// A recorded custom op: the user's op, with its own rules, and the line that applied it
/// (named when its rules break their contract: the panic itself is raised in here).
pub(crate) struct Custom<T: Float> {
    op: Rc<dyn CustomOp<T>>,
    at: &'static Location<'static>,
}

impl<T: Float> Rule<T> for Custom<T> {
    fn name(&self) -> String {
        self.op.name().into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let grads = self.op.vjp(ctx.inputs, ctx.output, ctx.grad);
        self.checked("vjp", grads, ctx.inputs, ctx.wants, |g, x| {
            (g.shape().into(), x.shape().into())
        })
    }
    /// Recorded: the op's own differentiable vjp, or else its first-order vjp recorded
    /// as a value that refuses to be differentiated ([`FirstOrderOnly`]).
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let op = &self.op;
        if let Some(grads) = op.vjp_var(ctx.inputs, ctx.output, ctx.grad) {
            return self.checked("vjp_var", grads, ctx.inputs, ctx.wants, |g, x| {
                (g.shape(), x.shape())
            });
        }
        let tape = ctx.output.tape();
        let values: Vec<Tensor<T>> = ctx.inputs.iter().map(|x| x.value()).collect();
        let refs: Vec<&Tensor<T>> = values.iter().collect();
        let ctx_values = VjpContext {
            inputs: &refs,
            output: &ctx.output.value(),
            grad: &ctx.grad.value(),
            wants: ctx.wants,
        };
        let grads = self.vjp(&ctx_values);
        let mut depends: Vec<Var<'t, T>> = ctx.inputs.to_vec();
        depends.push(ctx.grad);
        let name: Rc<str> = op.name().into();
        grads
            .into_iter()
            .map(|g| {
                g.map(|g| {
                    let name = name.clone();
                    tape.record(&depends, move |_, _| (g, FirstOrderOnly { name }))
                })
            })
            .collect()
    }
    /// The op's own tangent rule; panics naming the op when it has none.
    #[track_caller]
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let tape = ctx.output.tape();
        let tangents: Vec<Var<'t, T>> = ctx
            .inputs
            .iter()
            .zip(ctx.tangents)
            .map(|(x, t)| t.unwrap_or_else(|| tape.constant(Tensor::zeros(x.shape()))))
            .collect();
        match self.op.jvp_var(ctx.inputs, ctx.output, &tangents) {
            Some(t) => Some(t),
            None => panic!(
                "custom op `{}` has no tangent rule: forward mode cannot go through the op \
                 applied at {} (give it one with CustomOp::jvp_var)",
                self.op.name(),
                self.at
            ),
        }
    }
}

impl<T: Float> Custom<T> {
    /// The gradients that the op's `what` (`vjp` or `vjp_var`) returned, kept where
    /// wanted; panics, naming the op and the line that applied it, unless there is one
    /// per input, of its input's shape.
    fn checked<G, X>(
        &self,
        what: &str,
        grads: Vec<G>,
        inputs: &[X],
        wants: &[bool],
        shapes: impl Fn(&G, &X) -> (Shape, Shape),
    ) -> SmallVec<[Option<G>; 2]> {
        let (name, at) = (self.op.name(), self.at);
        assert!(
            grads.len() == inputs.len(),
            "custom op `{name}` (applied at {at}): its {what} returned {} gradients for {} \
             inputs",
            grads.len(),
            inputs.len()
        );
        grads
            .into_iter()
            .zip(inputs)
            .zip(wants)
            .enumerate()
            .map(|(i, ((g, x), &wanted))| {
                let (gs, xs) = shapes(&g, x);
                assert!(
                    gs == xs,
                    "custom op `{name}` (applied at {at}): its {what} returned a gradient of \
                     shape {} for input {i}, of shape {}",
                    Dims(&gs),
                    Dims(&xs)
                );
                wanted.then_some(g)
            })
            .collect()
    }
}

/// The first-order vjp of a custom op that gives no differentiable one: its value is
/// right, but differentiating it again is refused, naming the op.
pub(crate) struct FirstOrderOnly {
    name: Rc<str>,
}

impl<T: Float> Rule<T> for FirstOrderOnly {
    fn name(&self) -> String {
        format!("vjp of {}", self.name)
    }
    fn vjp(&self, _: &VjpContext<'_, T>) -> InputGrads<T> {
        refuse_second_order(&self.name)
    }
    fn vjp_var<'t>(&self, _: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        refuse_second_order(&self.name)
    }
    fn jvp_var<'t>(&self, _: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        refuse_second_order(&self.name)
    }
    fn first_order_only(&self) -> Option<&str> {
        Some(&self.name)
    }
}

impl<T: Float> Tape<T> {
    /// Records a user-defined op applied to `inputs`. A panic in the op's `forward`
    /// names the op's own line; mixing tapes panics at the caller's line.
    #[track_caller]
    pub fn custom<'t>(&'t self, op: impl CustomOp<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        let at = Location::caller();
        self.record(inputs, |x, _| {
            (
                op.forward(x),
                Custom {
                    op: Rc::new(op),
                    at,
                },
            )
        })
    }
}
