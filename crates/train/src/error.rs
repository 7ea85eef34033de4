//! The error type of `sequent-train`'s loaders, learner and run files.

use std::path::PathBuf;

use sequent_models::ErrorSource;

/// What can go wrong when sequent-train splits data, builds a loader, trains, or reads and writes
/// the files of a run. Reading a data file has its own errors ([`crate::data::timeseries`]'s and
/// [`crate::data::ts`]'s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// An option or a data set that cannot be used as it is: the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A model's weights could not be saved, read or fitted to the model.
    #[error("{} {problem}: {source}", path.display())]
    Weights {
        /// The weight file.
        path: PathBuf,
        /// What went wrong (`cannot be written`, `cannot be read (missing or damaged)`, `does not
        /// fit this model`).
        problem: &'static str,
        /// What Burn's recorder said.
        source: ErrorSource,
    },
    /// Training stopped before its last epoch (a non-finite loss, an I/O error); the checkpoints
    /// written so far are kept.
    #[error("{reason}; checkpoints in {}", checkpoints.display())]
    Stopped {
        /// Why it stopped.
        reason: String,
        /// The run's checkpoint directory.
        checkpoints: PathBuf,
    },
    /// A checkpoint to resume from cannot be read back.
    #[error(
        "checkpoint {} is damaged or incomplete ({source}); delete it to resume from an earlier epoch",
        path.display()
    )]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What Burn's checkpointer said.
        source: ErrorSource,
    },
}

impl From<TrainError> for String {
    /// The error's one-line message, for callers that report errors as text.
    fn from(e: TrainError) -> Self {
        e.to_string()
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
