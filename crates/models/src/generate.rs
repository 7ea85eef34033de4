//! Sampling the next token: greedy, temperature and top-k, seeded and reproducible. Shared by the
//! n-gram model and the neural language models.

use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Result, SequentError};
use crate::heads::LanguageModel;
use crate::recurrent::CellKind;
use crate::rng::SplitMix64;

/// `prefix` followed by every token `generate_each` hands to its callback: how each model's
/// `generate` collects what its `generate_each` streams.
pub fn collect_after(
    prefix: &[u32],
    generate_each: impl FnOnce(&mut dyn FnMut(u32)) -> Result<()>,
) -> Result<Vec<u32>> {
    let mut out = prefix.to_vec();
    generate_each(&mut |token| out.push(token))?;
    Ok(out)
}

/// How the next token is chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature `T`: the token is drawn from `softmax(logits / T)`; `0` is greedy
    /// (argmax), and the distribution tends to greedy as `T -> 0`.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens before drawing (`None`: all).
    pub top_k: Option<usize>,
    /// Seed of the draw.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            seed: 0,
        }
    }

    /// Sampling at `temperature` with `seed`.
    pub fn temperature(temperature: f64, seed: u64) -> Self {
        Self {
            temperature,
            top_k: None,
            seed,
        }
    }

    /// Keeps only the `k` most likely tokens.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(SequentError::InvalidConfig(format!(
                "temperature must be >= 0 and finite, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(SequentError::InvalidConfig("top-k needs k >= 1".into()));
        }
        Ok(())
    }

    /// Draws an index from unnormalised log-probabilities (logits).
    pub fn pick(&self, logits: &[f64], rng: &mut SplitMix64) -> usize {
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold((0, f64::MIN), |b, (i, &l)| if l > b.1 { (i, l) } else { b })
                .0
        };
        if self.temperature == 0.0 || self.top_k == Some(1) {
            return argmax();
        }
        let mut cut = f64::NEG_INFINITY;
        if let Some(k) = self.top_k.filter(|&k| k < logits.len()) {
            let mut sorted = logits.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            cut = sorted[k - 1];
        }
        let max = logits[argmax()];
        // exp((l - max) / T): neither overflows nor underflows to all-zero for small T.
        let weights: Vec<f64> = logits
            .iter()
            .map(|&l| {
                if l >= cut {
                    ((l - max) / self.temperature).exp()
                } else {
                    0.0
                }
            })
            .collect();
        rng.weighted(&weights)
    }
}

impl<C: CellKind> LanguageModel<C> {
    /// Continues `prefix` by `len` tokens: the model first reads the whole prefix (warm-up), then
    /// feeds each chosen token back with the state carried, one token a call through its
    /// [`LanguageModel::stepper`]. Returns prefix + continuation.
    pub fn generate(&self, prefix: &[u32], len: usize, sampling: &Sampling) -> Result<Vec<u32>> {
        collect_after(prefix, |each| {
            self.generate_each(prefix, len, sampling, each)
        })
    }

    /// [`LanguageModel::generate`] that hands each new token to `each` as soon as it is chosen
    /// (to stream long generations) instead of collecting them.
    pub fn generate_each(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
        each: &mut dyn FnMut(u32),
    ) -> Result<()> {
        if prefix.is_empty() {
            return Err(SequentError::EmptySequence("generation prefix"));
        }
        sampling.validate()?;
        if len == 0 {
            return Ok(());
        }
        let device = self.embedding.weight.device();
        let mut rng = SplitMix64::new(sampling.seed);
        let n = prefix.len();
        let ids = prefix.iter().map(|&t| t as i64).collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
        let (logits, mut state) = self.try_forward(tokens, None)?;
        let mut last = logits.narrow(1, n - 1, 1).reshape([1, self.vocab_size()]);
        // Then one token a call, all the layers' step in one launch where the device has one.
        let stepper = self.stepper();
        for i in 0..len {
            let logits = last.into_data().convert::<f64>();
            let token =
                sampling.pick(&logits.try_to_vec::<f64>().unwrap_or_default(), &mut rng) as u32;
            each(token);
            if i + 1 == len {
                break;
            }
            let token = Tensor::<1, Int>::from_data([token as i64], &device);
            (last, state) = stepper.try_step(token, Some(state))?;
        }
        Ok(())
    }
}
