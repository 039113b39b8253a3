//! `Gradients`: what `backward` returns, read by the handle of each parameter.

use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

/// The gradients of one backward pass, indexed by the [`Var`] of each parameter.
///
/// Only leaves recorded with [`crate::Tape::param`] keep a gradient, and values marked
/// with [`Var::retain_grad`]; other intermediate gradients are freed during the sweep.
pub struct Gradients<T: Float = f32> {
    tape_id: u64,
    grads: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Gradients<T> {
    pub(crate) fn new(tape_id: u64, grads: Vec<Option<Tensor<T>>>) -> Self {
        Gradients { tape_id, grads }
    }

    /// The gradient of `var`, or `None` when the output does not depend on it (or it is
    /// not a parameter).
    pub fn get(&self, var: Var<'_, T>) -> Option<&Tensor<T>> {
        assert!(
            var.tape.id() == self.tape_id,
            "gradients: this Var belongs to another tape"
        );
        self.grads.get(var.id as usize).and_then(|g| g.as_ref())
    }

    /// Takes the gradient of `var` out of the store.
    pub fn take(&mut self, var: Var<'_, T>) -> Option<Tensor<T>> {
        assert!(
            var.tape.id() == self.tape_id,
            "gradients: this Var belongs to another tape"
        );
        self.grads.get_mut(var.id as usize).and_then(|g| g.take())
    }
}

impl<'t, T: Float> std::ops::Index<Var<'t, T>> for Gradients<T> {
    type Output = Tensor<T>;

    /// Panics when `var` has no gradient; see [`Gradients::get`].
    fn index(&self, var: Var<'t, T>) -> &Tensor<T> {
        match self.get(var) {
            Some(g) => g,
            None => panic!(
                "gradients: node #{} has no gradient (it is a constant, or the output does not depend on it)",
                var.id
            ),
        }
    }
}
