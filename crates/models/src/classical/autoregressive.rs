//! The naive autoregressive model: an MLP over the last `tau` values.

use burn::config::Config;
use burn::module::Module;
use burn::nn::activation::{Activation, ActivationConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::error::SequentError;
use crate::forecast::Forecaster;

/// Configuration of an [`AutoregressiveMlp`].
#[derive(Config, Debug)]
pub struct AutoregressiveMlpConfig {
    /// Number `tau` of past values the model sees (d2l's sine experiment uses 4).
    pub tau: usize,
    /// Number `F` of features of the series (1 for a univariate series).
    #[config(default = 1)]
    pub features: usize,
    /// Number `C` of known-future covariates each row carries after the `F` values (see
    /// [`crate::forecast`]); the model predicts the `F` values only.
    #[config(default = 0)]
    pub covariates: usize,
    /// Widths of the hidden layers (d2l: one layer of 10).
    #[config(default = "vec![10]")]
    pub hidden: Vec<usize>,
    /// Activation after every hidden layer.
    #[config(default = "ActivationConfig::Relu")]
    pub activation: ActivationConfig,
}

/// Naive autoregressive model: `x_hat_t = MLP([x_{t-tau}, ..., x_{t-1}])`, the window flattened to
/// `tau * F` inputs, `F` outputs. With `C` covariates row `i` of the window is
/// `[x_{t-tau+i}, c_{t-tau+i+1}]` and the MLP reads `tau * (F + C)` inputs. It treats the past as a fixed-length window, so it cannot carry
/// information from further back than `tau` steps.
#[derive(Module, Debug)]
pub struct AutoregressiveMlp {
    /// Hidden layers, then the output layer.
    pub layers: Vec<Linear>,
    /// Activation between layers.
    pub activation: Activation,
    /// Window length `tau`.
    pub tau: usize,
    /// Features `F`.
    pub features: usize,
    /// Covariates `C` after the features of each row.
    pub covariates: usize,
}

impl AutoregressiveMlpConfig {
    /// The first-order neural Markov model `p(x_t | x_{t-1})`: an MLP over the last value only
    /// (`tau = 1`), for a series of `features` features.
    pub fn markov(features: usize) -> Self {
        Self::new(1).with_features(features)
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init(&self, device: &Device) -> AutoregressiveMlp {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error if `tau`, `features` or a hidden width is 0.
    pub fn try_init(&self, device: &Device) -> crate::Result<AutoregressiveMlp> {
        if self.tau == 0 || self.features == 0 || self.hidden.contains(&0) {
            return Err(SequentError::InvalidConfig(format!(
                "tau, features and hidden widths must be at least 1, got tau {}, features {}, hidden {:?}",
                self.tau, self.features, self.hidden
            )));
        }
        let widths: Vec<usize> = std::iter::once(self.tau * (self.features + self.covariates))
            .chain(self.hidden.iter().copied())
            .chain(std::iter::once(self.features))
            .collect();
        Ok(AutoregressiveMlp {
            layers: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            activation: self.activation.init(device),
            tau: self.tau,
            features: self.features,
            covariates: self.covariates,
        })
    }
}

impl AutoregressiveMlp {
    /// Predicts `x_t` `[B, F]` from windows `[B, tau, F + C]`.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_forward`] would return.
    pub fn forward(&self, window: Tensor<3>) -> Tensor<2> {
        self.try_forward(window).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The checked forward pass.
    pub fn try_forward(&self, window: Tensor<3>) -> crate::Result<Tensor<2>> {
        let [b, tau, f] = window.dims();
        if tau != self.tau || f != self.features + self.covariates {
            return Err(SequentError::WindowShape {
                tau: self.tau,
                features: self.features + self.covariates,
                got: vec![b, tau, f],
            });
        }
        let last = self.layers.len() - 1;
        let x = window.reshape([b, tau * f]);
        Ok(self.layers.iter().enumerate().fold(x, |x, (i, layer)| {
            let y = layer.forward(x);
            if i < last {
                self.activation.forward(y)
            } else {
                y
            }
        }))
    }
}

impl Forecaster for AutoregressiveMlp {
    fn window(&self) -> usize {
        self.tau
    }

    fn covariates(&self) -> usize {
        self.covariates
    }

    fn predict_next(&self, window: Tensor<3>) -> Tensor<2> {
        self.forward(window)
    }
}
