//! Automatic differentiation on a tape: reverse mode, forward mode, any order.
//!
//! Every operation on a [`Var`] is recorded on its [`Tape`] (a Wengert list) as it
//! runs; [`Var::backward`] replays the chain rule over the tape in reverse, asking each
//! op for its vector-Jacobian product. [`gradcheck`] compares those gradients with
//! central finite differences.
//!
//! ```toml
//! [dependencies]
//! autodiff = { package = "backprop-autodiff", version = "0.1" }
//! [profile.dev.package.backprop-autodiff]
//! opt-level = 3 # the engine optimised in debug builds too (about 10x faster there)
//! ```
//!
//! Derivatives of any order: [`Var::grad`] (and [`scalar::Var::grad`]) records the
//! backward pass itself as ops, so a gradient can be differentiated again; [`func`]
//! has JAX-style transforms (`grad`, `vjp`, forward-mode `jvp`, `hvp`, `jacobian`,
//! `hessian`); [`gradgradcheck`] checks second derivatives against finite differences.
//! A closure kept in a variable for more than one of them is wrapped in
//! [`func::function`] first.
//!
//! Random tensors ([`Tensor::randn`]) take the generators of [`rand`], this crate's
//! `rand` re-exported: `autodiff::rand::rngs::StdRng`.
//!
//! Kernels split their work over every core; [`with_threads`] sets how many for a
//! closure, on the calling thread only. Code outside the engine gets the same parallel
//! machinery through [`update_in_parallel`] (an element-wise update of many tensors
//! in one job: an optimizer's step) and [`Tensor::gather_rows`] (rows picked into a
//! batch: a data loader).
//!
//! ```
//! use autodiff::{gradcheck, scalar, GradcheckOptions, Tape, Tensor};
//!
//! // Scalars, micrograd-style.
//! let tape = scalar::Tape::new();
//! let x = tape.var(3.0);
//! let y = x * x + 2.0 * x;
//! assert_eq!(y.backward()[x], 8.0); // dy/dx = 2x + 2
//!
//! // Tensors: one sigmoid layer and the quadratic cost C = 1/(2n) Σ ||a - y||².
//! let tape = Tape::<f64>::new();
//! let x = tape.constant(Tensor::from_vec(vec![0.1, 0.9, 0.4, 0.2], [2, 2]));
//! let w = tape.param(Tensor::from_vec(vec![0.5, -0.3, 0.8, 0.1], [2, 2]));
//! let b = tape.param(Tensor::zeros([2]));
//! let target = tape.constant(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], [2, 2]));
//! let a = (x.matmul(w) + b).sigmoid(); // b broadcasts over the rows
//! let cost = (a - target).square().sum() / 4.0;
//! let grads = cost.backward();
//! assert_eq!(grads[w].shape(), &[2, 2]);
//!
//! // The same gradients, checked against finite differences.
//! let report = gradcheck(|tape, p| {
//!     let x = tape.constant(Tensor::from_vec(vec![0.1, 0.9, 0.4, 0.2], [2, 2]));
//!     (x.matmul(p[0]) + p[1]).sigmoid().square().sum()
//! }, &[w.value(), b.value()], GradcheckOptions::default()).unwrap();
//! assert_eq!(report.checks, 6);
//! ```
#![warn(missing_docs)]
// Only the kernels may hold `unsafe`; every other module forbids it.
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
mod cpu;
#[forbid(unsafe_code)]
mod error;
#[forbid(unsafe_code)]
mod float;
#[forbid(unsafe_code)]
pub mod func;
#[forbid(unsafe_code)]
mod grad;
#[forbid(unsafe_code)]
mod gradcheck;
#[forbid(unsafe_code)]
mod hooks;
#[allow(unsafe_code)]
mod kernels;
#[forbid(unsafe_code)]
mod ops;
#[forbid(unsafe_code)]
mod per_sample;
mod profile;
#[forbid(unsafe_code)]
pub mod scalar;
#[forbid(unsafe_code)]
mod shape;
#[forbid(unsafe_code)]
mod sweep;
#[forbid(unsafe_code)]
mod tape;
#[forbid(unsafe_code)]
mod tensor;

/// The kernels' entry points for the workspace's own benchmarks (feature `internals`):
/// not part of the API, and free to change.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::kernels::gemm::{matmul_into, MatRef};
    pub use crate::kernels::schedule::with_gemm_split_min_work;
}

/// The `rand` crate (0.9) this crate is built with. Functions that take an RNG
/// ([`Tensor::randn`], [`Tensor::rand_uniform`]) take its generators; one from another
/// major version of `rand` (`cargo add rand` picks the newest) fails with a trait error
/// naming two versions of `rand`. Import the generators from here (or depend on
/// `rand = "0.9"`):
///
/// ```
/// use autodiff::rand::{rngs::StdRng, SeedableRng};
/// use autodiff::Tensor;
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let x = Tensor::<f64>::randn([2, 3], &mut rng);
/// assert_eq!(x.shape(), &[2, 3]);
/// ```
pub use rand;

pub use cpu::{peak_gflops, threads, update_in_parallel, with_threads, TensorUpdate};
pub use error::Error;
pub use float::{erf, erfc, sigmoid, softplus, Float};
pub use grad::Gradients;
pub use gradcheck::{
    gradcheck, gradcheck_scalar, gradgradcheck, gradgradcheck_scalar, GradcheckError,
    GradcheckLocation, GradcheckOptions, GradcheckReport,
};
pub use ops::activation::Activation;
pub use ops::conv::Conv2dOptions;
pub use ops::CustomOp;
pub use profile::{OpTime, Profile};
pub use shape::{broadcast_shapes, Shape, ShapeError};
pub use tape::{Anomaly, AnomalyPhase, Flops, NodeId, Tape, Var};
pub use tensor::Tensor;
