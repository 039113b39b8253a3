//! `backprop`: the workspace's umbrella crate. It re-exports [`autodiff`] (the tape) and
//! [`nn`] (networks on top of it) and owns the examples, integration tests and
//! benchmarks. The README's tour is compiled as a doctest below, so it stays true.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod digit;
pub mod draw;
mod nudges;
pub mod pictures;
pub mod walk;

pub use autodiff;
pub use nn;
