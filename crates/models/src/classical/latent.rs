//! The latent autoregressive model: a hidden state summarises the whole past.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::error::SequentError;
use crate::forecast::Forecaster;
use crate::recurrent::{CellKind, Recurrent, RecurrentState};

/// Configuration of a [`LatentAutoregressive`] model around a given transition.
#[derive(Config, Debug)]
pub struct LatentAutoregressiveConfig {
    /// Warm-up length used when the model serves as a [`Forecaster`]: it reads the last `warmup`
    /// values from the zero state before predicting.
    pub warmup: usize,
    /// Number `C` of known-future covariates among the transition's inputs (the last `C`
    /// columns, see [`crate::forecast`]); the readout predicts the other `F` columns.
    #[config(default = 0)]
    pub covariates: usize,
}

impl LatentAutoregressiveConfig {
    /// Wraps a recurrent transition `g` (its `input_size` is `F`) with a fresh readout.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init<C: CellKind>(
        &self,
        transition: Recurrent<C>,
        device: &Device,
    ) -> LatentAutoregressive<C> {
        self.try_init(transition, device)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error for a zero warm-up or no column left to predict.
    pub fn try_init<C: CellKind>(
        &self,
        transition: Recurrent<C>,
        device: &Device,
    ) -> crate::Result<LatentAutoregressive<C>> {
        if self.warmup == 0 {
            return Err(SequentError::InvalidConfig(
                "warmup must be at least 1".into(),
            ));
        }
        if self.covariates >= transition.input_size {
            return Err(SequentError::InvalidConfig(format!(
                "{} covariates leave none of the transition's {} inputs to predict",
                self.covariates, transition.input_size
            )));
        }
        let features = transition.input_size - self.covariates;
        let readout = LinearConfig::new(transition.output_size(), features).init(device);
        Ok(LatentAutoregressive {
            transition,
            readout,
            warmup: self.warmup,
            covariates: self.covariates,
        })
    }
}

/// Latent autoregressive model over a series of `F` features:
///
/// ```text
/// h_t     = g(h_{t-1}, x_t)      g: any recurrent cell (RNN, GRU, LSTM), one layer
/// x_hat_{t+1} = f(h_t)           f: a linear readout H -> F
/// ```
///
/// With `C` covariates the transition reads `[x_t, c_{t+1}]` (`F + C` inputs) and `f` still
/// predicts the `F` values.
///
/// Unlike the windowed [`super::AutoregressiveMlp`], `h_t` can carry information from arbitrarily
/// far back; the state is returned so that it can be carried across calls.
#[derive(Module, Debug)]
pub struct LatentAutoregressive<C: CellKind> {
    /// The transition `g`.
    pub transition: Recurrent<C>,
    /// The readout `f`.
    pub readout: Linear,
    /// Warm-up length used when the model serves as a [`Forecaster`]: it reads the last `warmup`
    /// values from the zero state before predicting.
    pub warmup: usize,
    /// Covariates `C` among the transition's inputs.
    pub covariates: usize,
}

impl<C: CellKind> LatentAutoregressive<C> {
    /// Reads `x_1..x_T` (`[B, T, F + C]`) from `state` (zeros if `None`) and returns the predictions
    /// `x_hat_2..x_hat_{T+1}` (`[B, T, F]`: row `t` predicts `x_{t+1}`) and the state after `x_T`.
    pub fn try_forward(
        &self,
        series: Tensor<3>,
        state: Option<RecurrentState>,
    ) -> crate::Result<(Tensor<3>, RecurrentState)> {
        let (h, state) = self.transition.try_forward(series, state, None)?;
        Ok((self.readout.forward(h), state))
    }

    /// [`Self::try_forward`], panicking with the error's message.
    pub fn forward(
        &self,
        series: Tensor<3>,
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, RecurrentState) {
        self.try_forward(series, state)
            .unwrap_or_else(|e: SequentError| panic!("{e}"))
    }
}

impl<C: CellKind> Forecaster for LatentAutoregressive<C> {
    fn window(&self) -> usize {
        self.warmup
    }

    fn covariates(&self) -> usize {
        self.covariates
    }

    fn predict_next(&self, window: Tensor<3>) -> Tensor<2> {
        let (pred, _) = self.forward(window, None);
        let [b, t, f] = pred.dims();
        pred.narrow(1, t - 1, 1).reshape([b, f])
    }
}
