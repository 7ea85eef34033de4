//! Sequence model with a readout: classification and regression over sequences.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::SequentError;
use crate::recurrent::{CellKind, Recurrent};

/// How a [`SequenceModel`] turns the per-step outputs `o_1..o_T` (`[B, T, D*H]`) into what its
/// linear head reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Readout {
    /// Each sequence's last valid state: the final `h` of the last layer, both directions
    /// concatenated (the reverse direction's final state is its state after `x_1`). Sequence-to-one.
    Last,
    /// Mean of `o_t` over each sequence's valid steps. Sequence-to-one.
    Mean,
    /// Element-wise max of `o_t` over each sequence's valid steps. Sequence-to-one.
    Max,
    /// The head applied at every step: sequence-to-sequence, `[B, T, O]`.
    EveryStep,
}

/// Configuration of a [`SequenceModel`] around a given recurrent stack.
#[derive(Config, Debug)]
pub struct SequenceModelConfig {
    /// Outputs `O` of the linear head: classes, or regression targets.
    pub outputs: usize,
    /// How the per-step outputs are read out.
    #[config(default = "Readout::Last")]
    pub readout: Readout,
}

impl SequenceModelConfig {
    /// Builds the model around `rnn` with a fresh head.
    ///
    /// # Panics
    /// With the message of the error [`Self::try_init`] would return.
    pub fn init<C: CellKind>(&self, rnn: Recurrent<C>, device: &Device) -> SequenceModel<C> {
        self.try_init(rnn, device).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::init`], or a typed error for zero outputs.
    pub fn try_init<C: CellKind>(
        &self,
        rnn: Recurrent<C>,
        device: &Device,
    ) -> crate::Result<SequenceModel<C>> {
        if self.outputs == 0 {
            return Err(SequentError::InvalidConfig(
                "outputs must be at least 1".into(),
            ));
        }
        let head = LinearConfig::new(rnn.output_size(), self.outputs).init(device);
        Ok(SequenceModel {
            rnn,
            head,
            readout: self.readout,
        })
    }
}

/// `y = W r + b` with `r` the [`Readout`] of a recurrent stack: with `O` classes it is a sequence
/// classifier (logits), with `O` targets a sequence regressor (sequence-to-one, or with
/// [`Readout::EveryStep`] sequence-to-sequence forecasting of `F'` outputs from `F` inputs).
#[derive(Module, Debug)]
pub struct SequenceModel<C: CellKind> {
    /// The recurrent stack.
    pub rnn: Recurrent<C>,
    /// The linear head `D*H -> O`.
    pub head: Linear,
    /// The readout.
    #[module(skip)]
    pub readout: Readout,
}

impl<C: CellKind> SequenceModel<C> {
    /// `[B, O]` for the sequence-to-one readouts, `[B, T, O]` reshaped to `[B * T, O]` for
    /// [`Readout::EveryStep`] (row `b * T + t`). `lengths`, if given, marks padded batches.
    pub fn try_forward(
        &self,
        input: Tensor<3>,
        lengths: Option<&[usize]>,
    ) -> crate::Result<Tensor<2>> {
        let (out, state) = self.rnn.try_forward(input, None, lengths)?;
        let [b, t, w] = out.dims();
        let device = out.device();
        let lens: Vec<usize> = lengths.map(<[usize]>::to_vec).unwrap_or_else(|| vec![t; b]);
        let pooled = match self.readout {
            Readout::EveryStep => return Ok(self.head.forward(out.reshape([b * t, w]))),
            Readout::Last => last_state(&self.rnn, state.hidden),
            Readout::Mean => {
                let inv: Vec<f32> = lens.iter().map(|&l| 1.0 / l as f32).collect();
                // Padded outputs are zero, so the sum runs over valid steps only.
                out.sum_dim(1).reshape([b, w])
                    * Tensor::<2>::from_data(TensorData::new(inv, [b, 1]), &device)
            }
            Readout::Max => {
                let pad: Vec<f32> = lens
                    .iter()
                    .flat_map(|&l| (0..t).map(move |s| if s < l { 0.0 } else { f32::NEG_INFINITY }))
                    .collect();
                let masked = out + Tensor::<3>::from_data(TensorData::new(pad, [b, t, 1]), &device);
                masked.max_dim(1).reshape([b, w])
            }
        };
        Ok(self.head.forward(pooled))
    }

    /// [`Self::try_forward`], panicking with the error's message.
    pub fn forward(&self, input: Tensor<3>, lengths: Option<&[usize]>) -> Tensor<2> {
        self.try_forward(input, lengths)
            .unwrap_or_else(|e: SequentError| panic!("{e}"))
    }
}

/// The final `h` of a stack's last layer, both directions concatenated, `[B, D*H]`, from its
/// `h_n` (`[layers * D, B, H]`).
pub(crate) fn last_state<C: CellKind>(rnn: &Recurrent<C>, hidden: Tensor<3>) -> Tensor<2> {
    let dirs = rnn.num_directions();
    let [layers, b, h] = hidden.dims();
    let last = hidden.narrow(0, layers - dirs, dirs); // [D, B, H]
    last.swap_dims(0, 1).reshape([b, dirs * h])
}

/// A sequence-to-one [`SequenceModel`] used as a forecaster: it reads the last `window` values
/// `[x_{t-tau}, ..., x_{t-1}]` (`[B, tau, F]`) and its head (`F` outputs) predicts `x_t`. With
/// `C` covariates the stack reads rows `[x_s, c_{s+1}]` (`input_size = F + C`, see
/// [`crate::forecast`]) and the head still has `F` outputs.
#[derive(Module, Debug)]
pub struct SequenceForecaster<C: CellKind> {
    /// The recurrent stack and its head (`outputs = F`, a sequence-to-one readout).
    pub model: SequenceModel<C>,
    /// The window length `tau`.
    pub window: usize,
    /// Covariates `C` after the `F` values of each row.
    pub covariates: usize,
}

impl<C: CellKind> crate::forecast::Forecaster for SequenceForecaster<C> {
    fn window(&self) -> usize {
        self.window
    }

    fn covariates(&self) -> usize {
        self.covariates
    }

    fn predict_next(&self, window: Tensor<3>) -> Tensor<2> {
        self.model.forward(window, None)
    }
}
