//! Every model of the lecture by name, built from a [`RunConfig`]: `ar`, `markov`, `ngram`,
//! `latent`, `rnn`, `lstm`, `gru`. Generic code receives the built model through a visitor
//! ([`TokenModelFn`], [`SeriesModelFn`]) so each command is written once for all of them.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use sequent_models::classical::{
    AutoregressiveMlpConfig, LatentAutoregressiveConfig, MarkovLmConfig,
};
use sequent_models::heads::{
    LanguageModelConfig, Readout, SequenceForecaster, SequenceModel, SequenceModelConfig,
};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_train::learner::{SeriesModel, TokenModel};

use crate::config::RunConfig;

/// The models the command line trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelName {
    /// Naive autoregressive MLP over the last `tau` values (series).
    Ar,
    /// First-order Markov model: neural over tokens (text), `ar` with `tau = 1` (series).
    Markov,
    /// Count-based n-gram with add-epsilon smoothing (text).
    Ngram,
    /// Latent autoregressive model `h_t = g(h_{t-1}, x_t)`, `x_hat = f(h_t)` with a GRU cell,
    /// trained at every step (series).
    Latent,
    /// Vanilla tanh RNN stack.
    Rnn,
    /// LSTM stack.
    Lstm,
    /// GRU stack.
    Gru,
}

/// Every model name, in the order help texts list them.
pub const MODEL_NAMES: &str = "ar, markov, ngram, latent, rnn, lstm, gru";

impl FromStr for ModelName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ar" => Self::Ar,
            "markov" => Self::Markov,
            "ngram" => Self::Ngram,
            "latent" => Self::Latent,
            "rnn" => Self::Rnn,
            "lstm" => Self::Lstm,
            "gru" => Self::Gru,
            _ => {
                return Err(format!(
                    "unknown model `{s}`; expected one of: {MODEL_NAMES}"
                ));
            }
        })
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{self:?}").to_lowercase();
        f.write_str(&name)
    }
}

impl ModelName {
    /// Whether this model fits text (tokens), a series, or labelled sequences (`classes`);
    /// errors name the models that fit.
    pub fn check_fits(self, text: bool, classes: bool) -> Result<(), String> {
        match (self, text) {
            (Self::Ar | Self::Latent, true) => Err(format!(
                "model `{self}` forecasts series; for text use ngram, markov, rnn, lstm or gru"
            )),
            (Self::Ar | Self::Latent | Self::Markov | Self::Ngram, _) if classes => Err(format!(
                "model `{self}` does not classify sequences; for .ts data use rnn, lstm or gru"
            )),
            (Self::Ngram, false) => Err(
                "model `ngram` models tokens; for a series use ar, markov, latent, rnn, lstm or gru"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

impl ModelName {
    /// Checks that every setting `given` (by a flag or a settings file) is one this model uses
    /// on this data (`text`: language modelling, `classes`: `.ts` cases, neither: a series): a
    /// flag that would be silently ignored is an error naming it.
    pub fn check_settings(self, given: &[String], text: bool, classes: bool) -> Result<(), String> {
        let data_uses = |key: &str| match key {
            "columns" | "missing" | "covariates" | "date" => !text && !classes,
            "tokenizer" | "partition" | "test_fraction" | "embedding" => text,
            _ => true,
        };
        let model_uses = |key: &str| match (self, key) {
            (Self::Lstm, "proj_size" | "layer_norm") | (Self::Gru, "layer_norm") => true,
            (_, "proj_size" | "layer_norm") => false,
            (
                Self::Rnn | Self::Lstm | Self::Gru,
                "input_dropout" | "recurrent_dropout" | "weight_drop" | "zoneout",
            ) => true,
            (_, "input_dropout" | "recurrent_dropout" | "weight_drop" | "zoneout") => false,
            (Self::Ngram, "order" | "smoothing") => true,
            (_, "order" | "smoothing") => false,
            (
                Self::Ngram,
                "hidden" | "layers" | "embedding" | "dropout" | "epochs" | "batch" | "steps" | "lr"
                | "clip" | "patience" | "schedule" | "partition",
            ) => false,
            _ => true,
        };
        if let Some(key) = given.iter().find(|k| !data_uses(k)) {
            let data = if text {
                "text"
            } else if classes {
                "labelled cases (.ts)"
            } else {
                "a series"
            };
            return Err(format!(
                "{} does not apply to {data}",
                crate::config::flag(key)
            ));
        }
        if let Some(key) = given.iter().find(|k| !model_uses(k)) {
            return Err(format!(
                "{} does not apply to model `{self}`",
                crate::config::flag(key)
            ));
        }
        Ok(())
    }
}

/// Receives a token model, whatever its concrete type.
pub trait TokenModelFn {
    /// What the call returns.
    type Out;
    /// Called with the model built from the config.
    fn call<M: TokenModel>(self, model: M) -> Self::Out;
}

/// Receives a series model, whatever its concrete type.
pub trait SeriesModelFn {
    /// What the call returns.
    type Out;
    /// Called with the model built from the config.
    fn call<M: SeriesModel>(self, model: M) -> Self::Out;
}

/// Receives a recurrent sequence classifier, whatever its cell.
pub trait ClassifierFn {
    /// What the call returns.
    type Out;
    /// Called with the model built from the config.
    fn call<C: CellKind>(self, model: SequenceModel<C>) -> Self::Out;
}

/// `config` with the options every recurrent config has, from `cfg`.
macro_rules! shared_options {
    ($config:expr, $cfg:expr) => {
        $config
            .with_num_layers($cfg.layers)
            .with_dropout($cfg.dropout)
            .with_input_dropout($cfg.input_dropout)
            .with_recurrent_dropout($cfg.recurrent_dropout)
            .with_weight_drop($cfg.weight_drop)
            .with_zoneout($cfg.zoneout)
    };
}

/// A recurrent stack of `cfg`'s cell, width and depth over `input` features, handed to `f`.
macro_rules! with_stack {
    ($name:expr, $cfg:expr, $input:expr, $device:expr, |$rnn:ident| $body:expr) => {
        match $name {
            ModelName::Rnn => {
                let $rnn = shared_options!(RnnConfig::new($input, $cfg.hidden), $cfg)
                    .try_init($device)
                    .map_err(|e| e.to_string())?;
                $body
            }
            ModelName::Lstm => {
                let $rnn = shared_options!(LstmConfig::new($input, $cfg.hidden), $cfg)
                    .with_layer_norm($cfg.layer_norm)
                    .with_proj_size($cfg.proj_size)
                    .try_init($device)
                    .map_err(|e| e.to_string())?;
                $body
            }
            _ => {
                let $rnn = shared_options!(GruConfig::new($input, $cfg.hidden), $cfg)
                    .with_layer_norm($cfg.layer_norm)
                    .try_init($device)
                    .map_err(|e| e.to_string())?;
                $body
            }
        }
    };
}

/// Builds the text model `cfg.model` over `vocab` tokens on `device` and hands it to `f`.
/// `ar` and `latent` are series models and `ngram` is not trained by gradient: errors.
pub fn with_token_model<F: TokenModelFn>(
    cfg: &RunConfig,
    vocab: usize,
    device: &Device,
    f: F,
) -> Result<F::Out, String> {
    let name: ModelName = cfg.model.parse()?;
    match name {
        ModelName::Markov => Ok(f.call(
            MarkovLmConfig::new(vocab)
                .with_embedding_size(cfg.embedding)
                .try_init(device)
                .map_err(|e| e.to_string())?,
        )),
        ModelName::Rnn | ModelName::Lstm | ModelName::Gru => {
            with_stack!(name, cfg, cfg.embedding, device, |rnn| {
                language_model(rnn, vocab, device).map(|m| f.call(m))
            })
        }
        ModelName::Ar | ModelName::Latent | ModelName::Ngram => Err(format!(
            "model `{name}` is not a neural text model; for text use ngram, markov, rnn, lstm or gru"
        )),
    }
}

fn language_model<C: CellKind>(
    rnn: Recurrent<C>,
    vocab: usize,
    device: &Device,
) -> Result<sequent_models::heads::LanguageModel<C>, String> {
    LanguageModelConfig::new(vocab)
        .try_init(rnn, device)
        .map_err(|e| e.to_string())
}

/// Builds the forecaster `cfg.model` over `features` series and `covariates` covariate columns
/// on `device` (window `cfg.steps`) and hands it to `f`. `ngram` models tokens: an error.
pub fn with_series_model<F: SeriesModelFn>(
    cfg: &RunConfig,
    features: usize,
    covariates: usize,
    device: &Device,
    f: F,
) -> Result<F::Out, String> {
    let name: ModelName = cfg.model.parse()?;
    let hidden = vec![cfg.hidden; cfg.layers];
    match name {
        ModelName::Ar => Ok(f.call(
            AutoregressiveMlpConfig::new(cfg.steps)
                .with_features(features)
                .with_covariates(covariates)
                .with_hidden(hidden)
                .try_init(device)
                .map_err(|e| e.to_string())?,
        )),
        ModelName::Markov => Ok(f.call(
            AutoregressiveMlpConfig::markov(features)
                .with_covariates(covariates)
                .with_hidden(hidden)
                .try_init(device)
                .map_err(|e| e.to_string())?,
        )),
        ModelName::Latent => {
            let g = GruConfig::new(features + covariates, cfg.hidden)
                .try_init(device)
                .map_err(|e| e.to_string())?;
            let model = LatentAutoregressiveConfig::new(cfg.steps)
                .with_covariates(covariates)
                .try_init(g, device);
            Ok(f.call(model.map_err(|e| e.to_string())?))
        }
        ModelName::Rnn | ModelName::Lstm | ModelName::Gru => {
            with_stack!(name, cfg, features + covariates, device, |rnn| Ok(f.call(
                SequenceForecaster {
                    model: SequenceModelConfig::new(features)
                        .try_init(rnn, device)
                        .map_err(|e| e.to_string())?,
                    window: cfg.steps,
                    covariates,
                }
            )))
        }
        ModelName::Ngram => Err(
            "model `ngram` models tokens; for a series use ar, markov, latent, rnn, lstm or gru"
                .into(),
        ),
    }
}

/// Builds a sequence classifier (`rnn`, `lstm`, `gru`; last-valid-state readout) over `features`
/// inputs and `classes` classes on `device` and hands it to `f`.
pub fn with_classifier<F: ClassifierFn>(
    cfg: &RunConfig,
    features: usize,
    classes: usize,
    device: &Device,
    f: F,
) -> Result<F::Out, String> {
    with_sequence_model(cfg, features, classes, Readout::Last, device, f)
}

/// Builds a recurrent [`SequenceModel`] (`rnn`, `lstm`, `gru`) with `outputs` outputs read out by
/// `readout` and hands it to `f`.
pub fn with_sequence_model<F: ClassifierFn>(
    cfg: &RunConfig,
    features: usize,
    outputs: usize,
    readout: Readout,
    device: &Device,
    f: F,
) -> Result<F::Out, String> {
    let name: ModelName = cfg.model.parse()?;
    name.check_fits(false, true)?;
    Ok(with_stack!(name, cfg, features, device, |rnn| f.call(
        SequenceModelConfig::new(outputs)
            .with_readout(readout)
            .try_init(rnn, device)
            .map_err(|e| e.to_string())?
    )))
}
