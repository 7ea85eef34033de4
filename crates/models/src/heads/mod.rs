//! Task heads: what users plug data into. A language model (tokens in, next-token logits out) and
//! a sequence model with a readout (sequence classification, sequence-to-one and
//! sequence-to-sequence regression), and a direct multi-horizon forecaster.

mod direct;
mod language;
mod readout;

pub use direct::{DirectForecaster, DirectForecasterConfig};
pub use language::{LanguageModel, LanguageModelConfig, LanguageStepper};
pub use readout::{Readout, SequenceForecaster, SequenceModel, SequenceModelConfig};
