//! Recurrent language model: embedding -> recurrent stack -> linear over the vocabulary.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::error::SequentError;
use crate::recurrent::{CellKind, Recurrent, RecurrentState, Stepper};
use crate::time_major::every_step;

/// Configuration of a [`LanguageModel`] around a given recurrent stack.
#[derive(Config, Debug)]
pub struct LanguageModelConfig {
    /// Vocabulary size `V`.
    pub vocab_size: usize,
    /// Tie the output projection to the embedding (Press & Wolf 2017): `logits = h E^T + b`;
    /// needs the stack's output width `D*H` to equal its input width (the embedding width).
    #[config(default = false)]
    pub tie_weights: bool,
}

/// `logits_t = W_o h_t + b`, `h_t` the recurrent stack over `E[x_1..x_t]`, with `W_o = E` when the
/// weights are tied. Predicts `x_{t+1}` at every position.
#[derive(Module, Debug)]
pub struct LanguageModel<C: CellKind> {
    /// Token embedding `E`, `[V, I]`.
    pub embedding: Embedding,
    /// The recurrent stack.
    pub rnn: Recurrent<C>,
    /// Output projection (untied).
    pub output: Option<Linear>,
    /// Output bias (tied).
    pub tied_bias: Option<Param<Tensor<1>>>,
}

impl LanguageModelConfig {
    /// Builds the model around `rnn` (its `input_size` is the embedding width).
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init<C: CellKind>(&self, rnn: Recurrent<C>, device: &Device) -> LanguageModel<C> {
        self.try_init(rnn, device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error for a zero vocabulary or tied weights with mismatched
    /// widths.
    pub fn try_init<C: CellKind>(
        &self,
        rnn: Recurrent<C>,
        device: &Device,
    ) -> crate::Result<LanguageModel<C>> {
        if self.vocab_size == 0 {
            return Err(SequentError::InvalidConfig(
                "vocab_size must be at least 1".into(),
            ));
        }
        let (width, out) = (rnn.input_size, rnn.output_size());
        if self.tie_weights && width != out {
            return Err(SequentError::InvalidConfig(format!(
                "tied weights need the recurrent output width ({out}) to equal the embedding width ({width})"
            )));
        }
        Ok(LanguageModel {
            embedding: EmbeddingConfig::new(self.vocab_size, width).init(device),
            output: (!self.tie_weights)
                .then(|| LinearConfig::new(out, self.vocab_size).init(device)),
            tied_bias: self
                .tie_weights
                .then(|| Param::from_tensor(Tensor::zeros([self.vocab_size], device))),
            rnn,
        })
    }
}

impl<C: CellKind> LanguageModel<C> {
    /// Vocabulary size `V`.
    pub fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    /// Logits `[B, T, V]` for tokens `[B, T]` from `state`, and the state after the last token.
    /// Tokens outside `0..V` give [`SequentError::UnknownToken`] (checked on the host, one sync).
    /// The stack runs over the embeddings with [`Recurrent::try_forward_embedded`], which folds
    /// the embedding into the first layer where that saves work.
    pub fn try_forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<RecurrentState>,
    ) -> crate::Result<(Tensor<3>, RecurrentState)> {
        let (h, state) = self
            .rnn
            .try_forward_embedded(&self.embedding, tokens, state)?;
        Ok((every_step(h, |h| self.head(h)), state))
    }

    /// The logits `[N, V]` of the stack's outputs `h` `[N, D*H]`.
    fn head(&self, h: Tensor<2>) -> Tensor<2> {
        match (&self.output, &self.tied_bias) {
            (Some(linear), _) => linear.forward(h),
            (None, Some(bias)) => {
                h.matmul(self.embedding.weight.val().transpose()) + bias.val().unsqueeze_dim(0)
            }
            (None, None) => unreachable!("init sets one of output and tied_bias"),
        }
    }

    /// This model prepared to read one token a call (generation): its stack's [`Stepper`].
    pub fn stepper(&self) -> LanguageStepper<'_, C> {
        LanguageStepper {
            model: self,
            rnn: self.rnn.stepper(),
        }
    }

    /// [`Self::try_forward`], panicking with the error's message.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, RecurrentState) {
        self.try_forward(tokens, state)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A [`LanguageModel`] prepared to read one token a call, as generation reads them: each call
/// gives what [`LanguageModel::try_forward`] gives over one step, through the stack's
/// [`Stepper`] (on the GPU backends without autodiff, all the layers' step in one kernel
/// launch).
#[derive(Debug)]
pub struct LanguageStepper<'a, C: CellKind> {
    model: &'a LanguageModel<C>,
    rnn: Stepper<'a, C>,
}

impl<C: CellKind> LanguageStepper<'_, C> {
    /// The logits `[B, V]` after one token a row, `tokens` `[B]`, from `state` (zeros if
    /// `None`), and the state after it. Tokens outside `0..V` give
    /// [`SequentError::UnknownToken`] (checked on the host, one sync).
    pub fn try_step(
        &self,
        tokens: Tensor<1, Int>,
        state: Option<RecurrentState>,
    ) -> crate::Result<(Tensor<2>, RecurrentState)> {
        let [batch] = tokens.dims();
        if batch == 0 {
            return Err(SequentError::EmptyInput(vec![batch]));
        }
        let ids = tokens.to_data().convert::<i64>().try_into_vec::<i64>();
        crate::error::check_tokens(ids.unwrap_or_default(), self.model.vocab_size())?;
        let x = self.model.embedding.forward(tokens.reshape([batch, 1]));
        let (h, state) = self
            .rnn
            .try_step(x.reshape([batch, self.model.rnn.input_size]), state)?;
        Ok((self.model.head(h), state))
    }
}
