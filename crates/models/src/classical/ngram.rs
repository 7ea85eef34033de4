//! Count-based n-gram language model with add-epsilon smoothing: the baseline every neural
//! language model is compared with.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SequentError, check_tokens};
use crate::generate::Sampling;
use crate::rng::SplitMix64;

/// Configuration of an [`NgramModel`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NgramConfig {
    /// Order `n`: a token is predicted from the `n - 1` tokens before it (`n = 1`: unigram,
    /// `n = 2`: first-order Markov chain).
    pub order: usize,
    /// Vocabulary size `V`; tokens are ids in `0..V`.
    pub vocab_size: usize,
    /// Smoothing pseudo-count `epsilon` added to every count (`1.0` is Laplace smoothing).
    pub smoothing: f64,
}

impl NgramConfig {
    /// An order-`order` model over `vocab_size` tokens with Laplace smoothing.
    pub fn new(order: usize, vocab_size: usize) -> Self {
        Self {
            order,
            vocab_size,
            smoothing: 1.0,
        }
    }

    /// Sets the smoothing pseudo-count.
    pub fn with_smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// An empty model.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init(&self) -> NgramModel {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or an error for `order = 0`, `vocab_size = 0` or a smoothing that is not
    /// positive and finite.
    pub fn try_init(&self) -> Result<NgramModel> {
        if self.order == 0 || self.vocab_size == 0 {
            return Err(SequentError::InvalidConfig(format!(
                "n-gram order and vocabulary size must be at least 1, got order {} and vocabulary {}",
                self.order, self.vocab_size
            )));
        }
        if !(self.smoothing > 0.0 && self.smoothing.is_finite()) {
            return Err(SequentError::InvalidConfig(format!(
                "n-gram smoothing must be positive and finite, got {}",
                self.smoothing
            )));
        }
        Ok(NgramModel {
            config: self.clone(),
            counts: HashMap::new(),
        })
    }
}

/// Counts of the tokens that followed one context.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Follow {
    total: u64,
    next: HashMap<u32, u64>,
}

/// n-gram model fitted by counting:
///
/// ```text
/// P(x_t = v | c) = (count(c, v) + epsilon) / (count(c) + epsilon * V),   c = x_{t-n+1} .. x_{t-1}
/// ```
///
/// At the start of a sequence, where fewer than `n - 1` tokens precede `x_t`, the context is the
/// shorter history (the model keeps the counts of every order up to `n`), so the log-likelihood of
/// a sequence is exact: `log P(x_1..x_T) = sum_t log P(x_t | x_{max(1, t-n+1)} .. x_{t-1})`.
/// Every probability is positive thanks to the smoothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NgramModel {
    config: NgramConfig,
    counts: HashMap<Vec<u32>, Follow>,
}

impl NgramModel {
    /// The configuration.
    pub fn config(&self) -> &NgramConfig {
        &self.config
    }

    fn check(&self, tokens: &[u32]) -> Result<()> {
        check_tokens(tokens.iter().map(|&t| t as i64), self.config.vocab_size)
    }

    /// The context of position `t`: up to `n - 1` tokens before it.
    fn context<'a>(&self, tokens: &'a [u32], t: usize) -> &'a [u32] {
        &tokens[t.saturating_sub(self.config.order - 1)..t]
    }

    /// Adds the counts of one sequence (call once per document; contexts do not cross calls).
    pub fn fit(&mut self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(SequentError::EmptySequence("n-gram training text"));
        }
        self.check(tokens)?;
        for t in 0..tokens.len() {
            let follow = self
                .counts
                .entry(self.context(tokens, t).to_vec())
                .or_default();
            follow.total += 1;
            *follow.next.entry(tokens[t]).or_default() += 1;
        }
        Ok(())
    }

    /// How often `token` followed `context` in the training data.
    pub fn count(&self, context: &[u32], token: u32) -> u64 {
        self.counts
            .get(context)
            .and_then(|f| f.next.get(&token))
            .copied()
            .unwrap_or(0)
    }

    /// `P(token | context)`, with `context` the (at most `n - 1`) preceding tokens.
    pub fn prob(&self, context: &[u32], token: u32) -> f64 {
        let ctx = &context[context.len().saturating_sub(self.config.order - 1)..];
        let (eps, v) = (self.config.smoothing, self.config.vocab_size as f64);
        let total = self.counts.get(ctx).map_or(0, |f| f.total) as f64;
        (self.count(ctx, token) as f64 + eps) / (total + eps * v)
    }

    /// The distribution over the next token after `context`, `[V]`.
    pub fn distribution(&self, context: &[u32]) -> Vec<f64> {
        (0..self.config.vocab_size as u32)
            .map(|v| self.prob(context, v))
            .collect()
    }

    /// Exact log-likelihood (natural log) of a sequence.
    pub fn log_likelihood(&self, tokens: &[u32]) -> Result<f64> {
        if tokens.is_empty() {
            return Err(SequentError::EmptySequence("n-gram evaluation text"));
        }
        self.check(tokens)?;
        Ok((0..tokens.len())
            .map(|t| self.prob(self.context(tokens, t), tokens[t]).ln())
            .sum())
    }

    /// Perplexity `exp(-log P(x) / T)` of a sequence; the uniform model's is `V`.
    pub fn perplexity(&self, tokens: &[u32]) -> Result<f64> {
        Ok((-self.log_likelihood(tokens)? / tokens.len() as f64).exp())
    }

    /// Continues `prefix` by `len` tokens chosen by `sampling` (greedy, temperature, top-k);
    /// seeded and reproducible. Returns prefix + continuation.
    pub fn generate(&self, prefix: &[u32], len: usize, sampling: &Sampling) -> Result<Vec<u32>> {
        crate::generate::collect_after(prefix, |each| {
            self.generate_each(prefix, len, sampling, each)
        })
    }

    /// [`NgramModel::generate`] that hands each new token to `each` as soon as it is chosen (to
    /// stream long generations) instead of collecting them.
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
        self.check(prefix)?;
        let mut rng = SplitMix64::new(sampling.seed);
        // The context: the last `order - 1` tokens are all the model reads.
        let mut recent = prefix.to_vec();
        for _ in 0..len {
            let ctx = self.context(&recent, recent.len());
            let log_probs: Vec<f64> = self.distribution(ctx).iter().map(|p| p.ln()).collect();
            let token = sampling.pick(&log_probs, &mut rng) as u32;
            each(token);
            recent.push(token);
            if recent.len() > 2 * self.config.order {
                recent.drain(..recent.len() - self.config.order);
            }
        }
        Ok(())
    }
}
