//! The classic sequence models of the lecture that are not recurrent networks.

mod autoregressive;
mod ngram;

pub use autoregressive::{AutoregressiveMlp, AutoregressiveMlpConfig};
pub use ngram::{NgramConfig, NgramModel};
