//! The classic sequence models of the lecture that are not recurrent networks.

mod autoregressive;
mod latent;
mod ngram;

pub use autoregressive::{AutoregressiveMlp, AutoregressiveMlpConfig};
pub use latent::LatentAutoregressive;
pub use ngram::{NgramConfig, NgramModel};
