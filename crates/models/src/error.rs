//! The one error type of `sequent-models`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The error a reader, writer or file system gave, kept as the [`std::error::Error::source`] of a
/// [`SequentError`]. Shared, so that the error stays `Clone`; two sources are equal when they say
/// the same. [`ErrorSource::get`] gives the original error (to downcast it).
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// Keeps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The original error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

/// Everything that can go wrong when a sequent model is given input, state or weights.
///
/// Each variant names the problem and the values involved, so that a user sees what to fix rather
/// than a panic from inside Burn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SequentError {
    /// The input's feature width does not match the layer's `input_size`.
    #[error(
        "input must be shaped [batch, time, {expected}] (input_size = {expected}), got {got:?}"
    )]
    InputWidth {
        /// The layer's input size.
        expected: usize,
        /// The input's shape.
        got: Vec<usize>,
    },
    /// The input has a zero-sized dimension.
    #[error("input has an empty dimension: shape {0:?} (batch and time must be at least 1)")]
    EmptyInput(Vec<usize>),
    /// An initial state tensor has the wrong shape.
    #[error(
        "initial {which} state must be shaped {expected:?} ([num_layers * directions, batch, hidden]), got {got:?}"
    )]
    StateShape {
        /// `"hidden"` or `"cell"`.
        which: &'static str,
        /// The shape the layer expects.
        expected: Vec<usize>,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// The state's kind does not match the cell (an LSTM needs `c`, RNN and GRU have none).
    #[error(
        "{}",
        if *needs_cell {
            format!("an {cell} state needs a cell tensor c")
        } else {
            format!("a {cell} state has no cell tensor c, but one was given")
        }
    )]
    StateKind {
        /// The cell's name (`LSTM`, `GRU`, `RNN`).
        cell: &'static str,
        /// Whether the cell needs `c` (and it was missing) or has none (and one was given).
        needs_cell: bool,
    },
    /// `lengths` does not have one entry per sequence of the batch.
    #[error("lengths has {got} entries for a batch of {batch} sequences")]
    LengthsCount {
        /// The batch size.
        batch: usize,
        /// The number of lengths given.
        got: usize,
    },
    /// A sequence length is 0 or longer than the padded input.
    #[error(
        "length {length} of sequence {index} is outside 1..={steps} (the input has {steps} time steps)"
    )]
    Length {
        /// The sequence's index in the batch.
        index: usize,
        /// Its length.
        length: usize,
        /// The padded input's number of time steps.
        steps: usize,
    },
    /// A weight file could not be read or written.
    #[error("weight file {}: {source}", path.display())]
    WeightIo {
        /// The file.
        path: PathBuf,
        /// What the reader, writer or file system said.
        source: ErrorSource,
    },
    /// A weight file was read but does not fit the layer: missing, extra or mis-shaped tensors.
    #[error("weight file {} does not fit the layer:{}", path.display(), problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    WeightMismatch {
        /// The file.
        path: PathBuf,
        /// One line per problem, naming the tensor.
        problems: Vec<String>,
    },
    /// A token id outside the vocabulary.
    #[error(
        "token {token} at position {position} is outside the vocabulary of {vocab_size} tokens"
    )]
    UnknownToken {
        /// The token id.
        token: i64,
        /// Its position in the sequence.
        position: usize,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A sequence that must not be empty is.
    #[error("the {0} is empty")]
    EmptySequence(&'static str),
    /// A window fed to a windowed model has the wrong shape.
    #[error(
        "window must be shaped [batch, {tau}, {features}] (tau = {tau}, features = {features}), got {got:?}"
    )]
    WindowShape {
        /// The model's window length.
        tau: usize,
        /// The model's number of features.
        features: usize,
        /// The window's shape.
        got: Vec<usize>,
    },
    /// A series is too short for what was asked of it (e.g. `tau` larger than the series).
    #[error("the series has {steps} time steps, at least {needed} are needed")]
    SeriesTooShort {
        /// The series' length.
        steps: usize,
        /// The length needed.
        needed: usize,
    },
    /// The covariates given to a forecast do not fit the model: another number of columns.
    #[error("the model reads {expected} covariate column(s), {got} were given")]
    CovariateWidth {
        /// The model's number of covariates.
        expected: usize,
        /// The number of columns given.
        got: usize,
    },
    /// The covariates end before the last step a forecast needs them for.
    #[error(
        "the covariates are known for {known} time steps, the forecast needs them for {needed} \
         (the horizon reaches past the known covariates)"
    )]
    CovariatesEnd {
        /// Rows of covariates given.
        known: usize,
        /// Rows needed.
        needed: usize,
    },
    /// A configuration value is out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// A device cannot run sequent's kernels on this machine.
    #[error("device `{device}`: {reason}; {install}")]
    DeviceUnavailable {
        /// The device's name (`wgpu`).
        device: &'static str,
        /// What is missing.
        reason: String,
        /// What to install to get it.
        install: &'static str,
    },
}

/// `Result` with [`SequentError`].
pub type Result<T> = std::result::Result<T, SequentError>;

/// [`SequentError::UnknownToken`] for the first token id outside `0..vocab_size`, if any.
pub(crate) fn check_tokens(tokens: impl IntoIterator<Item = i64>, vocab_size: usize) -> Result<()> {
    match tokens
        .into_iter()
        .enumerate()
        .find(|(_, t)| *t < 0 || *t as usize >= vocab_size)
    {
        Some((position, token)) => Err(SequentError::UnknownToken {
            token,
            position,
            vocab_size,
        }),
        None => Ok(()),
    }
}
