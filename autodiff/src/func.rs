//! Function transforms, JAX-style: gradients, vector-Jacobian and Jacobian-vector
//! products, Hessian-vector products, whole Jacobians and Hessians of a function given
//! as a closure over a fresh tape (the closure shape [`crate::gradcheck`] uses).
//!
//! ```
//! use autodiff::func::{grad, hessian, hvp, jacobian, jvp};
//! use autodiff::{Tape, Tensor, Var};
//!
//! /// f(x) = Σ sin(x) x²
//! fn f<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>]) -> Var<'t, f64> {
//!     (p[0].sin() * p[0].square()).sum()
//! }
//! let x = Tensor::from_vec(vec![0.3, -1.2], [2]);
//! let g = grad(f, &[x.clone()]);
//! let h = hessian(f, &x); // [2, 2], diagonal here
//! let e0 = Tensor::from_vec(vec![1.0, 0.0], [2]);
//! let hv = hvp(f, &[x.clone()], &[e0.clone()]);
//! assert!((hv[0].data()[0] - h.data()[0]).abs() < 1e-12);
//! let (_, t) = jvp(f, &[x.clone()], &[e0]); // forward mode: ∂f/∂x₀
//! assert!((t.item() - g[0].data()[0]).abs() < 1e-12);
//! assert_eq!(jacobian(|_, p| p[0].exp(), &x).shape(), &[2, 2]);
//! ```
//!
//! Second derivatives of ReLU, `abs`, `max` and max pooling are zero wherever they
//! exist (they are piecewise linear); at their kinks the chosen first derivative is
//! used, as in PyTorch and JAX.

pub use crate::per_sample::{
    per_sample, per_sample_grads, BatchFunction, PerSample, PerSamplePath,
};

use crate::float::Float;
use crate::grad::Gradients;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// A function of some tensors built on the tape it is given.
pub trait Function<T: Float>: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T> {}
impl<T: Float, F> Function<T> for F where F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T> {}

/// Records `primals` as parameters on `tape` and applies `f`.
fn record<'t, T: Float>(
    tape: &'t Tape<T>,
    f: &impl Function<T>,
    primals: &[Tensor<T>],
) -> (Vec<Var<'t, T>>, Var<'t, T>) {
    let xs: Vec<Var<'t, T>> = primals.iter().map(|x| tape.param(x)).collect();
    let y = f(tape, &xs);
    (xs, y)
}

#[track_caller]
fn check_like<T: Float>(what: &str, values: &[Tensor<T>], like: &[Tensor<T>]) {
    assert!(
        values.len() == like.len(),
        "{what}: {} tensors given for {} inputs",
        values.len(),
        like.len()
    );
    for (k, (v, x)) in values.iter().zip(like).enumerate() {
        assert!(
            v.shape() == x.shape(),
            "{what}: tensor {k} has shape {} but its input has shape {}",
            crate::shape::Dims(v.shape()),
            crate::shape::Dims(x.shape())
        );
    }
}

/// Each input's gradient, zeros where the output does not depend on it.
fn gradients_of<T: Float>(
    grads: &Gradients<T>,
    xs: &[Var<'_, T>],
    primals: &[Tensor<T>],
) -> Vec<Tensor<T>> {
    xs.iter()
        .zip(primals)
        .map(|(&x, p)| {
            grads
                .get(x)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(p.shape()))
        })
        .collect()
}

/// The gradient of a one-element `f` at `primals`, one tensor per input (`backward`'s
/// fast path).
#[track_caller]
pub fn grad<T: Float>(f: impl Function<T>, primals: &[Tensor<T>]) -> Vec<Tensor<T>> {
    value_and_grad(f, primals).1
}

/// The value of a one-element `f` at `primals` and its gradient.
#[track_caller]
pub fn value_and_grad<T: Float>(f: impl Function<T>, primals: &[Tensor<T>]) -> (T, Vec<Tensor<T>>) {
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, primals);
    let grads = y.backward();
    let gs = gradients_of(&grads, &xs, primals);
    (y.item(), gs)
}

/// `f(primals)` and the vector-Jacobian products `cotangentᵀ J` for every input
/// (reverse mode).
#[track_caller]
pub fn vjp<T: Float>(
    f: impl Function<T>,
    primals: &[Tensor<T>],
    cotangent: &Tensor<T>,
) -> (Tensor<T>, Vec<Tensor<T>>) {
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, primals);
    let grads = y.backward_with(cotangent.clone());
    let gs = gradients_of(&grads, &xs, primals);
    (y.value(), gs)
}

/// `f(primals)` and the Jacobian-vector product `J · tangents` (forward mode): each
/// op's tangent rule carries the tangents along with the values, one sweep over the
/// recorded ops, whatever the number of inputs.
#[track_caller]
pub fn jvp<T: Float>(
    f: impl Function<T>,
    primals: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> (Tensor<T>, Tensor<T>) {
    check_like("jvp", tangents, primals);
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, primals);
    let seeds: Vec<_> = xs
        .iter()
        .zip(tangents)
        .map(|(&x, t)| (x, tape.constant(t)))
        .collect();
    let t = tape.jvp_from(y.id(), &seeds);
    let value = y.value();
    let tangent = t.map_or_else(|| Tensor::zeros(value.shape()), |t| t.value());
    (value, tangent)
}

/// The Hessian-vector product `H v` of a one-element `f` at `primals`, one tensor per
/// input (`v` has one tensor per input too): the gradient recorded on the tape
/// ([`Var::grad`]), then the gradient of its dot product with `v` (reverse over
/// reverse). Costs a small multiple of one gradient, never the whole Hessian.
#[track_caller]
pub fn hvp<T: Float>(
    f: impl Function<T>,
    primals: &[Tensor<T>],
    v: &[Tensor<T>],
) -> Vec<Tensor<T>> {
    check_like("hvp", v, primals);
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, primals);
    let gs = y.grad(&xs);
    let dot = gs
        .iter()
        .zip(v)
        .map(|(&g, v)| (g * tape.constant(v)).sum())
        .reduce(|a, b| a + b);
    let Some(dot) = dot else { return Vec::new() };
    gradients_of(&dot.backward(), &xs, primals)
}

/// The Jacobian of `f` at `x`, of shape `f(x).shape ++ x.shape`: by rows (one reverse
/// sweep per output element, all on one recording) when the output has at most as
/// many elements as the input, else by columns (one forward-mode sweep per input
/// element).
#[track_caller]
pub fn jacobian<T: Float>(f: impl Function<T>, x: &Tensor<T>) -> Tensor<T> {
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, std::slice::from_ref(x));
    let out_shape = y.shape();
    let (m, n) = (out_shape.iter().product::<usize>(), x.numel());
    let mut shape = out_shape.to_vec();
    shape.extend_from_slice(x.shape());
    let mut data = vec![T::zero(); m * n];
    if m <= n {
        for i in 0..m {
            let mut seed = Tensor::zeros(&out_shape);
            seed.data_mut()[i] = T::one();
            if let Some(row) = y.backward_with(seed).get(xs[0]) {
                data[i * n..(i + 1) * n].copy_from_slice(row.data());
            }
        }
    } else {
        drop(tape);
        for j in 0..n {
            let mut e = Tensor::zeros(x.shape());
            e.data_mut()[j] = T::one();
            let (_, column) = jvp(&f, std::slice::from_ref(x), &[e]);
            for (i, &v) in column.data().iter().enumerate() {
                data[i * n + j] = v;
            }
        }
    }
    Tensor::from_vec(data, shape)
}

/// The Hessian of a one-element `f` at `x`, of shape `x.shape ++ x.shape`: the gradient
/// recorded once, then one reverse sweep through it per row.
#[track_caller]
pub fn hessian<T: Float>(f: impl Function<T>, x: &Tensor<T>) -> Tensor<T> {
    let tape = Tape::new();
    let (xs, y) = record(&tape, &f, std::slice::from_ref(x));
    let g = y.grad(&xs)[0];
    let n = x.numel();
    let mut data = vec![T::zero(); n * n];
    for i in 0..n {
        let mut seed = Tensor::zeros(x.shape());
        seed.data_mut()[i] = T::one();
        if let Some(row) = g.backward_with(seed).get(xs[0]) {
            data[i * n..(i + 1) * n].copy_from_slice(row.data());
        }
    }
    let mut shape = x.shape().to_vec();
    shape.extend_from_slice(x.shape());
    Tensor::from_vec(data, shape)
}
