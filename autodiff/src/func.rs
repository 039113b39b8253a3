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
//!
//! A function given to more than one transform is either a named `fn` generic over the
//! tape's lifetime, as `f` above, or a closure wrapped in [`function`] (see there), which
//! may capture data of its own; pass it as `&f` to use it again. [`batch_function`] does
//! the same for [`per_sample`]'s closures.

pub use crate::per_sample::{
    batch_function, per_sample, per_sample_grads, BatchFunction, PerSample, PerSamplePath,
};

use crate::float::Float;
use crate::grad::Gradients;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// A function of some tensors built on the tape it is given: any
/// `for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>`, a reference to one included
/// (so `&f` lends `f` to a transform and keeps it). A closure written in a call's
/// argument list has this type; one stored in a variable first needs [`function`].
pub trait Function<T: Float>: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T> {}
impl<T: Float, F> Function<T> for F where F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T> {}

/// Returns `f` unchanged, its type fixed to a [`Function`]: a closure to store in a
/// variable and give to more than one transform ([`grad`], [`hvp`], [`jvp`],
/// [`crate::gradcheck`], ...).
///
/// A closure's argument types are inferred where it is written. Given straight to a
/// transform, it takes the transform's `for<'t> Fn(&'t Tape<T>, &[Var<'t, T>])` bound,
/// one signature for every tape lifetime. Stored first with `let f = |tape, p| ...`, it
/// has no bound to learn from: the compiler asks for type annotations (E0282), and with
/// them (`|tape: &Tape<f64>, p: &[Var<f64>]| -> Var<f64>`) it picks one lifetime for
/// every use, so the transform answers "lifetime may not live long enough" or "one type
/// is more general than the other". `function` gives the closure the bound where it is
/// written. The result is the closure itself: `Copy` where its captures are (references,
/// numbers), else lent as `&f`, which is a [`Function`] too.
///
/// ```
/// use autodiff::func::{function, grad, hvp};
/// use autodiff::Tensor;
///
/// // f(x) = ½ xᵀA x - bᵀx, with A (symmetric) and b owned here and moved into the
/// // closure: ∇f = A x - b, and the Hessian is A, so H v = A v.
/// let a = Tensor::from_vec(vec![2.0, 1.0, 1.0, 3.0], [2, 2]);
/// let b = Tensor::from_vec(vec![1.0, -1.0], [2]);
/// let f = function(move |tape, p| {
///     let x = p[0].reshape([2, 1]);
///     let ax = tape.constant(&a).matmul(x).reshape([2]);
///     (p[0] * ax).sum() * 0.5 - (p[0] * tape.constant(&b)).sum()
/// });
///
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let g = grad(&f, &[x.clone()]); // A x - b = [4 - 1, 7 + 1]
/// assert_eq!(g[0].data(), &[3.0, 8.0]);
/// let v = Tensor::from_vec(vec![1.0, -1.0], [2]);
/// let hv = hvp(&f, &[x], &[v]); // A v = [2 - 1, 1 - 3]
/// assert_eq!(hv[0].data(), &[1.0, -2.0]);
/// ```
pub fn function<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

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
