//! The crate's one error enum, for callers that want a single type to `?` into. The
//! variants carry the specific errors, each with a message naming what went wrong.

use crate::gradcheck::GradcheckError;
use crate::shape::ShapeError;

/// Anything `autodiff` reports as a `Result` rather than a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A shape that does not fit (from the `try_` constructors).
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A gradient that disagrees with finite differences, or a non-finite output.
    #[error(transparent)]
    Gradcheck(#[from] GradcheckError),
}
