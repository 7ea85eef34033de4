//! The gradients of a layer direction's inputs, the weight gradients as GEMMs over all steps.

use super::buffers::{join_rows, split_rows};
use super::inputs::{LayerInput, LayerInputs};
use super::products::weight_grad;

/// Most elements of the joined weight gradient `[G*H, I+H]` of [`LayerGrads::shared`]. Past it
/// the two products are large enough to run as well apart, and the joined product would write a
/// buffer of tens of megabytes (which glibc serves with a fresh `mmap` past 32 MB). Measured with
/// the products in row blocks (join, product and split against two products): hidden 1024,
/// tanh RNN 23.7-27.3 against 16.3-20.4 ms, LSTM 75-79 against 65-77; hidden 256 (0.5 M
/// elements), LSTM 4.5-4.9 against 4.7-5.3 ms.
const MAX_JOINED_GRAD: usize = 1 << 20;

/// The gradients of a layer direction's inputs ([`LayerInputs`] and the initial state).
pub struct LayerGrads {
    /// `dL/dx`, `[T, B, I]`.
    pub x: Vec<f32>,
    /// `dL/dW_ih`, `[G*H, I]`.
    pub w_ih: Vec<f32>,
    /// `dL/db_ih`, `[G*H]`.
    pub b_ih: Vec<f32>,
    /// `dL/dW_hh`, `[G*H, H]`.
    pub w_hh: Vec<f32>,
    /// `dL/db_hh`, `[G*H]`.
    pub b_hh: Vec<f32>,
    /// `dL/dW_hr` `[R, H]` of an LSTM with a projection; empty otherwise.
    pub w_hr: Vec<f32>,
    /// `dL/dh_0`, `[B, H]`.
    pub h0: Vec<f32>,
    /// `dL/dc_0` (LSTM), `[B, H]`; empty otherwise.
    pub c0: Vec<f32>,
    /// A layer-normalised cell's `dL/dgamma` and `dL/dbeta` of its layer norms in order (the
    /// input product's, the recurrent product's, the LSTM cell's); empty otherwise.
    pub norms: Vec<Vec<f32>>,
}

impl LayerGrads {
    /// When one gradient `d` `[T*B, G*H]` flows into both products (LSTM, RNN: the pre-activation
    /// is `x W_ih^T + b_ih + h W_hh^T + b_hh`): `dW_ih` and `dW_hh` come from one GEMM
    /// `d^T [x | h_prev]` (`[G*H x (I+H)]`, measured 4.4 ms where the two `[G*H x I]` and
    /// `[G*H x H]` products took 6.5 at the reference shape) up to [`MAX_JOINED_GRAD`], from two
    /// beyond, and both biases get the same gradient `bias`, the column sums of `d` (summed by the
    /// BPTT loop).
    pub(super) fn shared(
        inputs: &LayerInputs<'_>,
        (d, bias): (&[f32], Vec<f32>),
        h_prev: &[f32],
        initial: (Vec<f32>, Vec<f32>),
    ) -> Self {
        let gh = inputs.b_ih.len();
        let width = inputs.w_ih.len() / gh + inputs.w_hh.len() / gh;
        Self::shared_with(
            inputs,
            (d, bias),
            h_prev,
            initial,
            gh * width <= MAX_JOINED_GRAD,
        )
    }

    /// [`Self::shared`], the weight gradients from one GEMM if `joined`, else from two.
    pub(super) fn shared_with(
        inputs: &LayerInputs<'_>,
        (d, bias): (&[f32], Vec<f32>),
        h_prev: &[f32],
        (h0, c0): (Vec<f32>, Vec<f32>),
        joined: bool,
    ) -> Self {
        let gh = inputs.b_ih.len();
        let (width, h) = (inputs.w_ih.len() / gh, inputs.w_hh.len() / gh);
        let (w_ih, w_hh) = match inputs.x {
            LayerInput::Features(x) if joined => {
                let dw = weight_grad(d, &join_rows(x, width, h_prev, h), gh);
                split_rows(&dw, width + h, width)
            }
            LayerInput::Features(x) => (weight_grad(d, x, gh), weight_grad(d, h_prev, gh)),
            LayerInput::Tokens(_) => (inputs.input_weight_grad(d), weight_grad(d, h_prev, gh)),
        };
        Self {
            x: inputs.input_grad(d),
            w_ih,
            b_ih: bias.clone(),
            w_hh,
            b_hh: bias,
            h0,
            c0,
            w_hr: Vec::new(),
            norms: Vec::new(),
        }
    }

    /// From `d_x_proj`, the gradient of `x W_ih^T + b_ih`, and `d_proj`, the gradient of
    /// `h W_hh^T + b_hh` (per step, `[T*B, G*H]`), each with its column sums (the bias gradients,
    /// summed by the BPTT loop), and `h_prev` `[T*B, H]` the states the latter was computed from:
    /// `dW_hh = d_proj^T h_prev` in one GEMM.
    pub(super) fn new(
        inputs: &LayerInputs<'_>,
        (d_x_proj, b_ih): (&[f32], Vec<f32>),
        (d_proj, b_hh): (&[f32], Vec<f32>),
        h_prev: &[f32],
        (h0, c0): (Vec<f32>, Vec<f32>),
    ) -> Self {
        let gh = inputs.b_hh.len();
        Self {
            x: inputs.input_grad(d_x_proj),
            w_ih: inputs.input_weight_grad(d_x_proj),
            b_ih,
            w_hh: weight_grad(d_proj, h_prev, gh),
            b_hh,
            h0,
            c0,
            w_hr: Vec::new(),
            norms: Vec::new(),
        }
    }

    /// These gradients with the projection's `w_hr`.
    pub(super) fn with_projection(self, w_hr: Vec<f32>) -> Self {
        Self { w_hr, ..self }
    }

    /// These gradients with the layer norms' `norms`.
    pub(super) fn with_norms(self, norms: Vec<Vec<f32>>) -> Self {
        Self { norms, ..self }
    }
}
