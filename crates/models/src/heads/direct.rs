//! A direct multi-horizon forecaster: every step of the horizon predicted at once.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::readout::last_state;
use crate::error::SequentError;
use crate::forecast::{Forecaster, check_covariates, input_rows, windows};
use crate::recurrent::{CellKind, Recurrent};

/// Configuration of a [`DirectForecaster`] around a given recurrent stack.
#[derive(Config, Debug)]
pub struct DirectForecasterConfig {
    /// Values `F` of each step (the stack reads `F + C`).
    pub features: usize,
    /// Window `tau`: the rows read before the first predicted step.
    pub window: usize,
    /// Horizon `H`: the steps predicted at once.
    pub horizon: usize,
    /// Known-future covariates `C` after the values of each row (see [`crate::forecast`]).
    #[config(default = 0)]
    pub covariates: usize,
}

impl DirectForecasterConfig {
    /// Builds the forecaster around `rnn` with a fresh head.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init<C: CellKind>(&self, rnn: Recurrent<C>, device: &Device) -> DirectForecaster<C> {
        self.try_init(rnn, device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error for a zero size or a stack whose input is not `F + C`.
    pub fn try_init<C: CellKind>(
        &self,
        rnn: Recurrent<C>,
        device: &Device,
    ) -> crate::Result<DirectForecaster<C>> {
        if self.features == 0 || self.window == 0 || self.horizon == 0 {
            return Err(SequentError::InvalidConfig(format!(
                "features, window and horizon must be at least 1, got {}, {} and {}",
                self.features, self.window, self.horizon
            )));
        }
        if rnn.input_size != self.features + self.covariates {
            return Err(SequentError::InvalidConfig(format!(
                "the stack reads {} inputs; {} features and {} covariates need {}",
                rnn.input_size,
                self.features,
                self.covariates,
                self.features + self.covariates
            )));
        }
        let head = LinearConfig::new(rnn.output_size(), self.horizon * self.features).init(device);
        Ok(DirectForecaster {
            rnn,
            head,
            window: self.window,
            horizon: self.horizon,
            features: self.features,
            covariates: self.covariates,
        })
    }
}

/// Direct multi-horizon forecaster: the stack reads the window `[x_{t-tau}, ..., x_{t-1}]`
/// (each row followed by the next step's covariates, `c_t` last) and one linear head on its
/// last state predicts `x_t, ..., x_{t+H-1}` at once:
///
/// ```text
/// [x_hat_t, ..., x_hat_{t+H-1}] = W h_{t-1} + b        W: [H * F, D * hidden]
/// ```
///
/// No prediction is fed back, so errors do not compound along the horizon as they do in the
/// recursive forecast of [`crate::forecast::k_step_predictions`]; in exchange each horizon
/// has its own outputs to learn, and covariates beyond `c_t` are not read.
#[derive(Module, Debug)]
pub struct DirectForecaster<C: CellKind> {
    /// The recurrent stack (`input_size = F + C`).
    pub rnn: Recurrent<C>,
    /// The linear head `D * hidden -> H * F`.
    pub head: Linear,
    /// The window length `tau`.
    pub window: usize,
    /// The horizon `H`.
    pub horizon: usize,
    /// Values `F` of each step.
    pub features: usize,
    /// Covariates `C` after the values of each row.
    pub covariates: usize,
}

impl<C: CellKind> DirectForecaster<C> {
    /// Predictions `[B, H, F]` (index `k - 1` predicts `x_{t+k-1}`) from windows
    /// `[B, tau, F + C]`.
    pub fn try_forward(&self, window: Tensor<3>) -> crate::Result<Tensor<3>> {
        let [b, tau, width] = window.dims();
        if tau != self.window || width != self.features + self.covariates {
            return Err(SequentError::WindowShape {
                tau: self.window,
                features: self.features + self.covariates,
                got: vec![b, tau, width],
            });
        }
        let (_, state) = self.rnn.try_forward(window, None, None)?;
        let last = last_state(&self.rnn, state.hidden);
        Ok(self
            .head
            .forward(last)
            .reshape([b, self.horizon, self.features]))
    }

    /// [`Self::try_forward`], panicking with the error's message.
    pub fn forward(&self, window: Tensor<3>) -> Tensor<3> {
        self.try_forward(window).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Direct forecasts from every origin `o` in `origins` (clipped so that `o >= tau` and
    /// `o + H - 1 < T`), in the shape of [`crate::forecast::k_step_predictions`]: the first
    /// origin and, for `k = 1..=H`, the predictions `[N, F]` whose row `i` predicts
    /// `series[first + i + k - 1]`. `covariates` (`[T' >= T, C]`) for a model that reads them.
    pub fn predictions(
        &self,
        series: &Tensor<2>,
        covariates: Option<&Tensor<2>>,
        origins: std::ops::Range<usize>,
    ) -> crate::Result<(usize, Vec<Tensor<2>>)> {
        let (tau, h) = (self.window, self.horizon);
        let [steps, _] = series.dims();
        let first = origins.start.max(tau);
        let last = origins.end.min(steps + 1).saturating_sub(h);
        if first >= last {
            return Err(SequentError::SeriesTooShort {
                steps,
                needed: first + h,
            });
        }
        check_covariates(self.covariates, covariates, steps)?;
        let n = last - first;
        let rows = input_rows(series, covariates, first - tau, first + n - 1);
        let all = self.try_forward(windows(&rows, tau)?)?;
        let per_step = (0..h)
            .map(|k| all.clone().narrow(1, k, 1).reshape([n, self.features]))
            .collect();
        Ok((first, per_step))
    }
}

/// As a one-step forecaster the model gives the first step of its horizon.
impl<C: CellKind> Forecaster for DirectForecaster<C> {
    fn window(&self) -> usize {
        self.window
    }

    fn covariates(&self) -> usize {
        self.covariates
    }

    fn predict_next(&self, window: Tensor<3>) -> Tensor<2> {
        let b = window.dims()[0];
        self.forward(window)
            .narrow(1, 0, 1)
            .reshape([b, self.features])
    }
}
