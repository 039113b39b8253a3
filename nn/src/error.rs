//! The crate's error type: every failure a user can cause or fix, with the file, the
//! field and what was expected.

use std::path::PathBuf;

pub use crate::data::idx::IdxError;

/// Anything that can go wrong in `nn` outside of programming errors.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A malformed or unreadable IDX file.
    #[error(transparent)]
    Idx(#[from] IdxError),

    /// The MNIST files could not be found or fetched.
    #[error("{0}")]
    Data(String),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A checkpoint is malformed or does not fit the model.
    #[error(
        "checkpoint{}: {message}",
        path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default()
    )]
    Checkpoint {
        /// The checkpoint file, if the checkpoint came from one.
        path: Option<PathBuf>,
        /// What is wrong, naming every mismatching tensor.
        message: String,
    },

    /// Some parameters got no gradient from the backward pass.
    #[error("no gradient for parameter(s) {0:?}: they do not influence the cost, or were not bound to the tape")]
    MissingGradient(Vec<String>),

    /// Training produced a non-finite cost or gradient.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: the cost is {cost}{}; try a smaller learning rate",
        anomaly.as_ref().map(|a| format!("; the first non-finite value came from the {a}")).unwrap_or_default()
    )]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (1-based).
        batch: usize,
        /// The cost of that batch.
        cost: f64,
        /// What anomaly detection found, if anything.
        anomaly: Option<String>,
    },

    /// An optimizer was handed a gradient or state that does not fit the parameters.
    #[error("optimizer: {0}")]
    Optimizer(String),
}

impl NnError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NnError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        NnError::Checkpoint {
            path: Some(path.into()),
            message: message.into(),
        }
    }
}
