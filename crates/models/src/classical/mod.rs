//! The classic sequence models of the lecture that are not recurrent networks.

mod ngram;

pub use ngram::{NgramConfig, NgramModel};
