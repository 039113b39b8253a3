//! Automatic differentiation in Rust, written to show what backpropagation really does,
//! and the MNIST demo of 3Blue1Brown's digit network built on it.
//!
//! This crate is the workspace's umbrella: it re-exports the two libraries a program
//! depends on, and holds the demo's pictures and its draw page.
//!
//! - [`autodiff`] (package `backprop-autodiff`): the tape, for scalars and f32/f64
//!   tensors; `.backward()` replays the chain rule over it in reverse. Derivatives of any
//!   order in reverse and forward mode ([`autodiff::func`]: `grad`, `jvp`, `hvp`,
//!   `hessian`, per-sample gradients) and finite-difference checks
//!   ([`autodiff::gradcheck()`]).
//! - [`nn`] (package `backprop-nn`): layers, costs, optimizers, checkpoints and the
//!   MNIST loader, written as expressions on the tape; nothing in it writes a derivative.
//! - [`tour`]: each idea of the project as code that runs (every block is a doctest);
//!   [`gpt_walk`]: one prediction of a small [`nn::Gpt`], piece by piece, the same way.
//! - [`digit`], [`draw`], [`pictures`], [`walk`]: what the demo and the draw page show;
//!   [`attention`]: what the Shakespeare GPT's attention heads read.
//!
//! ```toml
//! [dependencies]
//! autodiff = { package = "backprop-autodiff", version = "0.1" }
//! nn = { package = "backprop-nn", version = "0.1" }
//! # Debug builds run the engine unoptimised (a small classifier: 1.5 s, not 0.14 s):
//! [profile.dev.package.backprop-autodiff]
//! opt-level = 3
//! ```
//!
//! ```
//! use autodiff::{Tape, Tensor};
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
//! let w = tape.param(Tensor::from_vec(vec![0.5, -0.5, 0.25, 1.0], [2, 2]));
//! let cost = x.matmul(w).relu().sum();
//! let grads = cost.backward();
//! assert_eq!(grads[w].data(), &[4.0, 4.0, 6.0, 6.0]);
//! ```
//!
//! The demo, the tests and the rest of the documentation live in the repository
//! (`cargo run --release --example mnist`, `cargo test --workspace`):
//! [README](https://github.com/backprop-rs/backprop#readme),
//! [networks](https://github.com/backprop-rs/backprop/blob/main/docs/networks.md),
//! [derivatives](https://github.com/backprop-rs/backprop/blob/main/docs/derivatives.md),
//! [architecture](https://github.com/backprop-rs/backprop/blob/main/docs/architecture.md),
//! [performance](https://github.com/backprop-rs/backprop/blob/main/docs/performance.md),
//! [soundness](https://github.com/backprop-rs/backprop/blob/main/docs/soundness.md).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// The tour of `docs/tour.md`: each idea of the project as code that runs.
#[doc = include_str!("../docs/tour.md")]
pub mod tour {}

/// The walk of `docs/gpt-walk.md`: one prediction of a small GPT, each piece computed by hand.
#[doc = include_str!("../docs/gpt-walk.md")]
pub mod gpt_walk {}

/// README.md's code, compiled as doctests (README is written for GitHub; the page above
/// is written for rustdoc).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod attention;
pub mod digit;
pub mod draw;
mod notation;
mod nudges;
pub mod pictures;
mod step;
pub mod walk;

pub use autodiff;
pub use nn;
