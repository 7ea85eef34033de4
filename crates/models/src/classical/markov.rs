//! The first-order neural Markov model for tokens.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::SequentError;
use crate::generate::Sampling;
use crate::rng::SplitMix64;

/// Configuration of a [`MarkovLm`].
#[derive(Config, Debug)]
pub struct MarkovLmConfig {
    /// Vocabulary size `V`.
    pub vocab_size: usize,
    /// Width of the token embedding.
    #[config(default = 32)]
    pub embedding_size: usize,
}

/// First-order Markov model over tokens, `p(x_{t+1} | x_t) = softmax(W E[x_t] + b)`: the next token
/// depends on the current one only (the neural counterpart of a bigram [`super::NgramModel`]).
#[derive(Module, Debug)]
pub struct MarkovLm {
    /// Token embedding `E`.
    pub embedding: Embedding,
    /// Output projection `W`, `b`.
    pub output: Linear,
}

impl MarkovLmConfig {
    /// Builds the model on `device`.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init(&self, device: &Device) -> MarkovLm {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error if a size is 0.
    pub fn try_init(&self, device: &Device) -> crate::Result<MarkovLm> {
        if self.vocab_size == 0 || self.embedding_size == 0 {
            return Err(SequentError::InvalidConfig(format!(
                "vocab_size and embedding_size must be at least 1, got {} and {}",
                self.vocab_size, self.embedding_size
            )));
        }
        Ok(MarkovLm {
            embedding: EmbeddingConfig::new(self.vocab_size, self.embedding_size).init(device),
            output: LinearConfig::new(self.embedding_size, self.vocab_size).init(device),
        })
    }
}

impl MarkovLm {
    /// Logits `[B, T, V]` of `x_{t+1}` for tokens `[B, T]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.output.forward(self.embedding.forward(tokens))
    }

    /// Continues `prefix` by `len` tokens chosen by `sampling`; only the last token matters.
    /// Returns prefix + continuation.
    pub fn generate(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
    ) -> crate::Result<Vec<u32>> {
        crate::generate::collect_after(prefix, |each| {
            self.generate_each(prefix, len, sampling, each)
        })
    }

    /// [`MarkovLm::generate`] that hands each new token to `each` as soon as it is chosen (to
    /// stream long generations) instead of collecting them.
    pub fn generate_each(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
        each: &mut dyn FnMut(u32),
    ) -> crate::Result<()> {
        let vocab = self.embedding.weight.dims()[0];
        let Some(&last) = prefix.last() else {
            return Err(SequentError::EmptySequence("generation prefix"));
        };
        crate::error::check_tokens(prefix.iter().map(|&t| t as i64), vocab)?;
        sampling.validate()?;
        // All V conditionals at once: row v is p(. | v).
        let device = self.embedding.weight.device();
        let all = Tensor::<2, Int>::from_data(
            TensorData::new((0..vocab as i64).collect::<Vec<_>>(), [vocab, 1]),
            &device,
        );
        let table = self
            .forward(all)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap_or_default();
        let mut rng = SplitMix64::new(sampling.seed);
        let mut current = last as usize;
        for _ in 0..len {
            current = sampling.pick(&table[current * vocab..(current + 1) * vocab], &mut rng);
            each(current as u32);
        }
        Ok(())
    }
}
