//! The classic sequence models of the lecture that are not recurrent networks.

mod autoregressive;
mod latent;
mod markov;
mod ngram;

pub use autoregressive::{AutoregressiveMlp, AutoregressiveMlpConfig};
pub use latent::{LatentAutoregressive, LatentAutoregressiveConfig};
pub use markov::{MarkovLm, MarkovLmConfig};
pub use ngram::{NgramConfig, NgramModel};
