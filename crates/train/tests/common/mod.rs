//! Helpers shared by the learner tests.
#![allow(dead_code)] // Each test binary uses a part of these helpers.

use burn::tensor::Device;
use sequent_models::heads::{LanguageModel, LanguageModelConfig};
use sequent_models::recurrent::{Lstm, LstmConfig, LstmKind};

/// The default CPU device of this build.
#[allow(deprecated)]
pub fn device() -> Device {
    #[cfg(feature = "flex")]
    return Device::flex();
    #[cfg(not(feature = "flex"))]
    return Device::ndarray();
}

/// A 2-layer LSTM language model over 5 tokens, weights drawn after seeding with `seed`.
pub fn lm(device: &Device, seed: u64) -> LanguageModel<LstmKind> {
    device.seed(seed);
    let rnn: Lstm = LstmConfig::new(6, 8).with_num_layers(2).init(device);
    LanguageModelConfig::new(5).init(rnn, device)
}
