//! Fused cell ops for the CPU backends.
//!
//! A composed LSTM step runs each gate activation as its own tensor op with its own backward node,
//! and Burn's CPU backends compute `sigmoid` and `tanh` with scalar libm calls (5-14 ns an element).
//! The fused step ops take the gate pre-activations and the previous state and return the new state
//! in one pass over vectorised activations ([`math`]), with one hand-written backward node
//! (`Autodiff<Flex | NdArray>`). The whole-sequence ops run a layer direction's time loop (and its
//! BPTT) inside one op, with `W_hh` packed once for a small GEMM kernel of their own and the batch
//! split between the cores (or, for batches of one or two, the weights read in place by a
//! dot-product kernel whose weight rows are split between the cores). They apply on Flex and NdArray devices; every other device (wgpu,
//! cuda) keeps the composed tensor ops, which are also the reference the fused path is tested
//! against ([`Pointwise::Composed`]).

mod direct;
#[cfg(test)]
mod gradcheck;
mod kernels;
pub mod math;
mod ops;
mod packed;
mod sequence;
mod team;

use burn::backend::{Dispatch, DispatchTensor};
use burn::module::Param;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::state::CellState;
use super::weights::CellWeights;

pub use ops::FusedCellOps;

/// How a cell computes the pointwise part of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pointwise {
    /// Fused ops where the device supports them (Flex, NdArray), composed ops elsewhere.
    #[default]
    Fused,
    /// Always the composed tensor ops (the reference path).
    Composed,
}

impl Pointwise {
    /// Whether a step on `device` uses the fused ops.
    pub fn fused_on(self, device: &Device) -> bool {
        self == Pointwise::Fused && available(device)
    }
}

/// Whether the fused ops are implemented for `device`'s backend (Flex or NdArray, with or without
/// autodiff).
pub fn available(device: &Device) -> bool {
    #[allow(unused_imports)]
    use burn::backend::DispatchDevice;
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

/// Fused LSTM pointwise step: returns `(h, c)` from the gates `[B, 4H]` and `c_prev` `[B, H]`.
pub(crate) fn lstm(gates: Tensor<2>, c_prev: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [b, h] = c_prev.dims();
    let out = Tensor::<3>::from_dispatch(<Dispatch as FusedCellOps>::lstm_pointwise(
        gates.into_dispatch(),
        c_prev.into_dispatch(),
    ));
    (
        out.clone().narrow(0, 0, 1).reshape([b, h]),
        out.narrow(0, 1, 1).reshape([b, h]),
    )
}

/// Fused GRU (reset-after) pointwise step: `h'` from `x_proj`, `h_proj` `[B, 3H]`, `h_prev`.
pub(crate) fn gru(x_proj: Tensor<2>, h_proj: Tensor<2>, h_prev: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedCellOps>::gru_pointwise(
        x_proj.into_dispatch(),
        h_proj.into_dispatch(),
        h_prev.into_dispatch(),
    ))
}

/// Fused `tanh`.
pub(crate) fn tanh(x: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedCellOps>::tanh_pointwise(
        x.into_dispatch(),
    ))
}

/// A layer direction's input and weights, as a whole-sequence op takes them: `x` `[T, B, I]` in
/// time order, `W_ih` `[G*H, I]`, `b_ih`, `b_hh` `[G*H]` (zeros for a layer without biases),
/// `W_hh` `[G*H, H]`, and whether the direction runs backwards in time.
pub(crate) struct SequenceInputs {
    x: Tensor<3>,
    w_ih: Tensor<2>,
    b_ih: Tensor<1>,
    w_hh: Tensor<2>,
    b_hh: Tensor<1>,
    reverse: bool,
}

impl SequenceInputs {
    /// `(T, B)`, the time of the final state, and the five tensors in the ops' argument order.
    fn into_parts(self) -> ((usize, usize), usize, [DispatchTensor; 5]) {
        let [steps, batch, _] = self.x.dims();
        let last = if self.reverse { 0 } else { steps - 1 };
        let parts = [
            self.x.into_dispatch(),
            self.w_ih.into_dispatch(),
            self.b_ih.into_dispatch(),
            self.w_hh.into_dispatch(),
            self.b_hh.into_dispatch(),
        ];
        ((steps, batch), last, parts)
    }
}

/// A whole fused LSTM layer direction from `h0`, `c0` `[B, H]`; returns the outputs `h_t`
/// `[T, B, H]` (time order) and the final `(h, c)`.
pub(crate) fn lstm_sequence(
    inputs: SequenceInputs,
    h0: Tensor<2>,
    c0: Tensor<2>,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    let (h, reverse) = (h0.dims()[1], inputs.reverse);
    let ((steps, batch), last, [x, w_ih, b_ih, w_hh, b_hh]) = inputs.into_parts();
    let out = Tensor::<3>::from_dispatch(<Dispatch as FusedCellOps>::lstm_sequence(
        x,
        w_ih,
        b_ih,
        w_hh,
        b_hh,
        h0.into_dispatch(),
        c0.into_dispatch(),
        reverse,
    ));
    let hidden = out.clone().narrow(0, 0, steps);
    let last = hidden.clone().narrow(0, last, 1).reshape([batch, h]);
    let cell = out.narrow(0, steps, 1).reshape([batch, h]);
    (hidden, last, cell)
}

/// A whole fused GRU (reset-after) or tanh-RNN layer direction from `h0` `[B, H]`; returns the
/// outputs `h_t` `[T, B, H]` (time order) and the final `h`.
pub(crate) fn gated_sequence(
    gru: bool,
    inputs: SequenceInputs,
    h0: Tensor<2>,
) -> (Tensor<3>, Tensor<2>) {
    let (h, reverse) = (h0.dims()[1], inputs.reverse);
    let ((_, batch), last, [x, w_ih, b_ih, w_hh, b_hh]) = inputs.into_parts();
    let h0 = h0.into_dispatch();
    let out = Tensor::<3>::from_dispatch(if gru {
        <Dispatch as FusedCellOps>::gru_sequence(x, w_ih, b_ih, w_hh, b_hh, h0, reverse)
    } else {
        <Dispatch as FusedCellOps>::rnn_tanh_sequence(x, w_ih, b_ih, w_hh, b_hh, h0, reverse)
    });
    let last = out.clone().narrow(0, last, 1).reshape([batch, h]);
    (out, last)
}

/// Runs a whole-sequence op for one layer direction over the layer's input `x` `[T, B, I]`, if
/// it applies: on a fused-capable device, for more than one step or for a batch small enough
/// for the op's products to read the weights in place (one step of a larger batch would pack
/// `W_hh` for a single product). The reverse direction's op runs backwards in time over `x` as it
/// is (no flipped copies).
pub(crate) fn run_sequence(
    weights: &CellWeights,
    x: &Tensor<3>,
    reverse: bool,
    pointwise: Pointwise,
    op: impl FnOnce(SequenceInputs) -> (Tensor<3>, CellState),
) -> Option<(Tensor<3>, CellState)> {
    let device = x.device();
    let [steps, batch, _] = x.dims();
    if (steps < 2 && batch > sequence::DIRECT_MAX_ROWS) || !pointwise.fused_on(&device) {
        return None;
    }
    let bias = |b: &Option<Param<Tensor<1>>>| match b {
        Some(b) => b.val(),
        None => Tensor::zeros([weights.gate_rows()], &device),
    };
    let inputs = SequenceInputs {
        x: x.clone(),
        w_ih: weights.weight_ih.val(),
        b_ih: bias(&weights.bias_ih),
        w_hh: weights.weight_hh.val(),
        b_hh: bias(&weights.bias_hh),
        reverse,
    };
    Some(op(inputs))
}
