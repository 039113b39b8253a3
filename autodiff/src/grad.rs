//! `Gradients`: what `backward` returns, read by the handle of each parameter.

use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// The gradients of one backward pass, indexed by the [`Var`] of each parameter: keyed
/// by tape handle, so they are read while the tape lives. (`nn` turns them into its
/// `Grads`, keyed by parameter name, through its `Bound`, the parameters' handles on
/// one tape.)
///
/// Only leaves recorded with [`crate::Tape::param`] keep a gradient, and values marked
/// with [`Var::retain_grad`]; other intermediate gradients are freed during the sweep.
///
/// ```
/// # use autodiff::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let w = tape.param(Tensor::from_vec(vec![3.0], [1]));
/// let c = tape.constant(Tensor::from_vec(vec![2.0], [1]));
/// let grads = (w * c).sum().backward();
/// assert_eq!(grads[w].data(), &[2.0]); // panics where `get` says None
/// assert!(grads.get(c).is_none()); // a constant has no gradient
/// ```
pub struct Gradients<T: Float> {
    tape_id: u64,
    grads: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Gradients<T> {
    pub(crate) fn new(tape_id: u64, grads: Vec<Option<Tensor<T>>>) -> Self {
        Gradients { tape_id, grads }
    }

    /// The gradient of `var`, or `None` when it has none: the output does not depend on
    /// it, it is not a parameter (nor marked with [`Var::retain_grad`]), or it belongs
    /// to another tape than the one `backward` ran on.
    pub fn get(&self, var: Var<'_, T>) -> Option<&Tensor<T>> {
        if var.tape.id() != self.tape_id {
            return None;
        }
        self.grads.get(var.id as usize).and_then(|g| g.as_ref())
    }

    /// Takes the gradient of `var` out of the store; `None` in the cases of
    /// [`Gradients::get`].
    pub fn take(&mut self, var: Var<'_, T>) -> Option<Tensor<T>> {
        if var.tape.id() != self.tape_id {
            return None;
        }
        self.grads.get_mut(var.id as usize).and_then(|g| g.take())
    }
}

impl<'t, T: Float> std::ops::Index<Var<'t, T>> for Gradients<T> {
    type Output = Tensor<T>;

    /// Panics, at the caller's line, when `var` has no gradient (see
    /// [`Gradients::get`]); the message says which case it is.
    #[track_caller]
    fn index(&self, var: Var<'t, T>) -> &Tensor<T> {
        match self.get(var) {
            Some(g) => g,
            None if var.tape.id() != self.tape_id => panic!(
                "gradients: node #{} belongs to another tape than the one backward ran on",
                var.id
            ),
            None => panic!(
                "gradients: node #{} has no gradient (it is a constant, or the output does not depend on it)",
                var.id
            ),
        }
    }
}
