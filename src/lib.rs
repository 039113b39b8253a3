//! `backprop`: the workspace's umbrella crate. It re-exports [`autodiff`] (the tape) and
//! [`nn`] (networks on top of it) and owns the examples, integration tests and
//! benchmarks. The README's example and the tour (`docs/tour.md`, the [`tour`] module)
//! are compiled as doctests, so they stay true.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The tour of `docs/tour.md`: each idea of the project as code that runs.
#[doc = include_str!("../docs/tour.md")]
pub mod tour {}

pub mod digit;
pub mod draw;
mod notation;
mod nudges;
pub mod pictures;
mod step;
pub mod walk;

pub use autodiff;
pub use nn;
