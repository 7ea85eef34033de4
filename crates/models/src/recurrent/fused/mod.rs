//! Fused cell ops for the CPU backends.
//!
//! A composed LSTM step runs each gate activation as its own tensor op with its own backward node,
//! and Burn's CPU backends compute `sigmoid` and `tanh` with scalar libm calls (5-14 ns an element).
//! The fused step ops take the gate pre-activations and the previous state and return the new state
//! in one pass over vectorised activations ([`math`]), with one hand-written backward node
//! (`Autodiff<Flex | NdArray>`). The whole-sequence ops run a layer direction's time loop (and its
//! BPTT) inside one op, with `W_hh` packed once for a small GEMM kernel of their own and the batch
//! split between the cores (or, for batches of one or two, the weights read in place by a
//! dot-product kernel whose weight rows are split between the cores); the bidirectional ones run
//! both directions of a layer at the same time and write their outputs side by side. They apply
//! on Flex and NdArray devices. On wgpu and cuda the LSTM and GRU steps run as CubeCL kernels
//! (`cube`);
//! everything else there keeps the composed tensor ops, which are also the reference the fused
//! paths are tested against ([`Pointwise::Composed`]).

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
mod direct;
#[cfg(test)]
mod gradcheck;
mod host;
mod kernels;
mod layer_ops;
pub mod math;
mod ops;
mod packed;
mod sequence;
mod team;

use burn::backend::{Dispatch, DispatchTensor};
use burn::module::Param;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::state::CellState;
use super::weights::CellWeights;

pub use ops::FusedCellOps;
pub use sequence::{FusedCell, SequenceCell};

/// How a cell computes the pointwise part of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pointwise {
    /// Fused ops where the device supports them (Flex and NdArray: every fused op; wgpu and
    /// cuda: the LSTM and GRU steps' CubeCL kernels), composed ops elsewhere.
    #[default]
    Fused,
    /// Always the composed tensor ops (the reference path).
    Composed,
}

impl Pointwise {
    /// Whether a step on `device` uses the fused ops (the host ops of Flex and NdArray).
    pub fn fused_on(self, device: &Device) -> bool {
        self == Pointwise::Fused && available(device)
    }

    /// Whether an LSTM or GRU (reset-after) step on `device` uses a fused op: the host op on Flex
    /// and NdArray, the CubeCL kernels on wgpu and cuda.
    pub fn gated_step_fused_on(self, device: &Device) -> bool {
        self.fused_on(device) || (self == Pointwise::Fused && on_cube(device))
    }
}

/// Whether `device` is one of the CubeCL backend's (wgpu, cuda), with or without autodiff.
fn on_cube(device: &Device) -> bool {
    #[allow(unused_imports)]
    use burn::backend::DispatchDevice;
    match device.clone().inner().as_dispatch() {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        DispatchDevice::Cube(_) => true,
        _ => false,
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

/// Fused LSTM pointwise step: returns `(h, c)` from the gates `[B, 4H]` and `c_prev` `[B, H]`
/// (the CubeCL kernels on wgpu and cuda, the host op on Flex and NdArray).
pub(crate) fn lstm(gates: Tensor<2>, c_prev: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [b, h] = c_prev.dims();
    let cube = on_cube(&gates.device());
    let (gates, c_prev) = (gates.into_dispatch(), c_prev.into_dispatch());
    let out = Tensor::<3>::from_dispatch(match cube {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        true => <Dispatch as cube::CubeCellOps>::lstm_step(gates, c_prev),
        _ => <Dispatch as FusedCellOps>::lstm_pointwise(gates, c_prev),
    });
    (
        out.clone().narrow(0, 0, 1).reshape([b, h]),
        out.narrow(0, 1, 1).reshape([b, h]),
    )
}

/// Fused GRU (reset-after) pointwise step: `h'` from `x_proj`, `h_proj` `[B, 3H]`, `h_prev`
/// (the CubeCL kernels on wgpu and cuda, the host op on Flex and NdArray).
pub(crate) fn gru(x_proj: Tensor<2>, h_proj: Tensor<2>, h_prev: Tensor<2>) -> Tensor<2> {
    let cube = on_cube(&h_prev.device());
    let [x, hp, prev] = [x_proj, h_proj, h_prev].map(|t| t.into_dispatch());
    Tensor::from_dispatch(match cube {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        true => <Dispatch as cube::CubeCellOps>::gru_step(x, hp, prev),
        _ => <Dispatch as FusedCellOps>::gru_pointwise(x, hp, prev),
    })
}

/// Fused `tanh`.
pub(crate) fn tanh(x: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedCellOps>::tanh_pointwise(
        x.into_dispatch(),
    ))
}

/// Mean cross-entropy of `logits` `[N, V]` against `targets` `[N]` with the fused op (a device
/// where [`available`] holds).
pub(crate) fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, burn::tensor::Int>) -> Tensor<1> {
    Tensor::from_dispatch(<Dispatch as FusedCellOps>::cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

/// A layer direction's weights as the whole-sequence ops take them: `[W_ih, b_ih, W_hh, b_hh]`,
/// zero biases for a layer without biases.
fn op_weights(weights: &CellWeights) -> [DispatchTensor; 4] {
    let bias = |b: &Option<Param<Tensor<1>>>| match b {
        Some(b) => b.val(),
        None => Tensor::zeros([weights.gate_rows()], &weights.weight_ih.device()),
    };
    [
        weights.weight_ih.val().into_dispatch(),
        bias(&weights.bias_ih).into_dispatch(),
        weights.weight_hh.val().into_dispatch(),
        bias(&weights.bias_hh).into_dispatch(),
    ]
}

/// Whether a whole-sequence op applies to a layer input of `steps` steps of `batch` rows on
/// `device`: on a fused-capable device, for more than one step or for a batch small enough for
/// the op's products to read the weights in place (one step of a larger batch would pack `W_hh`
/// for a single product).
pub(crate) fn applies(steps: usize, batch: usize, device: &Device, pointwise: Pointwise) -> bool {
    (steps > 1 || batch <= sequence::DIRECT_MAX_ROWS) && pointwise.fused_on(device)
}

/// A layer direction's input as [`run_sequence`] takes it.
pub(crate) enum SequenceInput<'a> {
    /// Features `[T, B, I]`, projected by the layer's `W_ih`.
    Features(&'a Tensor<3>),
    /// Token ids `[T, B]` and the `[G*H, V]` matrix whose column `v` is token `v`'s input
    /// projection (`W_ih E^T` for a layer over an embedding `E`), used instead of `W_ih`.
    Tokens(&'a Tensor<2, Int>, &'a Tensor<2>),
}

impl SequenceInput<'_> {
    /// Steps `T` and batch rows `B`.
    fn dims(&self) -> (usize, usize) {
        match self {
            SequenceInput::Features(x) => (x.dims()[0], x.dims()[1]),
            SequenceInput::Tokens(ids, _) => (ids.dims()[0], ids.dims()[1]),
        }
    }
}

/// `[B, H]` slab `t`, columns `d*H .. (d+1)*H`, of an op's output `[S, B, D*H]`.
fn state_at(out: &Tensor<3>, t: usize, d: usize, h: usize) -> Tensor<2> {
    let [_, batch, width] = out.dims();
    let slab = out.clone().narrow(0, t, 1);
    // A slice is an op with a backward node even when it takes everything.
    let slab = if width == h {
        slab
    } else {
        slab.narrow(2, d * h, h)
    };
    slab.reshape([batch, h])
}

/// The outputs `[T, B, D*H]` of an op's output: all of it, or (LSTM) all but its last slab, the
/// final cell states, through [`FusedCellOps::leading_slabs`], whose backward pads the gradient
/// in one pass. (Slicing off nothing would still cost a backward node and a copy.)
fn outputs(cell: FusedCell, out: Tensor<3>, steps: usize) -> Tensor<3> {
    if cell == FusedCell::Lstm {
        Tensor::from_dispatch(<Dispatch as FusedCellOps>::leading_slabs(
            out.into_dispatch(),
            steps,
        ))
    } else {
        out
    }
}

/// Runs one layer direction of `cell` as one op over the layer's input `x` from `state`, if the
/// op applies ([`applies`]); returns the outputs `[T, B, H]` (time order) and the final state.
/// The reverse direction's op runs backwards in time over `x` as it is (no flipped copies).
pub(crate) fn run_sequence(
    cell: FusedCell,
    weights: &CellWeights,
    x: SequenceInput<'_>,
    state: &CellState,
    reverse: bool,
    pointwise: Pointwise,
) -> Option<(Tensor<3>, CellState)> {
    let (steps, batch) = x.dims();
    if !applies(steps, batch, &state.hidden.device(), pointwise) {
        return None;
    }
    let h = state.hidden.dims()[1];
    let [w_ih, b_ih, w_hh, b_hh] = op_weights(weights);
    let h0 = state.hidden.clone().into_dispatch();
    let c0 = || {
        let c0 = state.cell.clone().expect("an LSTM state has a cell");
        c0.into_dispatch()
    };
    type D = Dispatch;
    let out = Tensor::<3>::from_dispatch(match (x, cell) {
        (SequenceInput::Features(x), cell) => {
            let x = x.clone().into_dispatch();
            match cell {
                FusedCell::Lstm => D::lstm_sequence(x, w_ih, b_ih, w_hh, b_hh, h0, c0(), reverse),
                FusedCell::Gated(SequenceCell::Gru) => {
                    D::gru_sequence(x, w_ih, b_ih, w_hh, b_hh, h0, reverse)
                }
                FusedCell::Gated(SequenceCell::RnnTanh) => {
                    D::rnn_tanh_sequence(x, w_ih, b_ih, w_hh, b_hh, h0, reverse)
                }
            }
        }
        (SequenceInput::Tokens(ids, w), cell) => {
            let (ids, w) = (ids.clone().into_dispatch(), w.clone().into_dispatch());
            match cell {
                FusedCell::Lstm => {
                    D::lstm_token_sequence(ids, w, b_ih, w_hh, b_hh, h0, c0(), reverse)
                }
                FusedCell::Gated(SequenceCell::Gru) => {
                    D::gru_token_sequence(ids, w, b_ih, w_hh, b_hh, h0, reverse)
                }
                FusedCell::Gated(SequenceCell::RnnTanh) => {
                    D::rnn_tanh_token_sequence(ids, w, b_ih, w_hh, b_hh, h0, reverse)
                }
            }
        }
    });
    let last = CellState {
        hidden: state_at(&out, if reverse { 0 } else { steps - 1 }, 0, h),
        cell: (cell == FusedCell::Lstm).then(|| state_at(&out, steps, 0, h)),
    };
    Some((outputs(cell, out, steps), last))
}

/// Runs both directions of a bidirectional layer of `cell` as one op over the layer's input `x`
/// `[T, B, I]` from `states` (forward direction first), if the op applies ([`applies`]): the two
/// directions run at the same time and write one output `[T, B, 2H]` (no concatenation, and in
/// the backward no split of its gradient). Returns it and the final states.
pub(crate) fn run_bidirectional(
    cell: FusedCell,
    [forward, reverse]: [&CellWeights; 2],
    x: &Tensor<3>,
    states: [&CellState; 2],
    pointwise: Pointwise,
) -> Option<(Tensor<3>, [CellState; 2])> {
    let [steps, batch, _] = x.dims();
    if !applies(steps, batch, &x.device(), pointwise) {
        return None;
    }
    let h = states[0].hidden.dims()[1];
    let stack = |s: [Tensor<2>; 2]| Tensor::stack::<3>(s.to_vec(), 0).into_dispatch();
    let h0 = stack(states.map(|s| s.hidden.clone()));
    let [a, b, c, d] = op_weights(forward);
    let [e, f, g, k] = op_weights(reverse);
    let x = x.clone().into_dispatch();
    let out = Tensor::<3>::from_dispatch(match cell {
        FusedCell::Lstm => {
            let c0 = stack(states.map(|s| s.cell.clone().expect("an LSTM state has a cell")));
            <Dispatch as FusedCellOps>::lstm_bidirectional(x, a, b, c, d, e, f, g, k, h0, c0)
        }
        FusedCell::Gated(SequenceCell::Gru) => {
            <Dispatch as FusedCellOps>::gru_bidirectional(x, a, b, c, d, e, f, g, k, h0)
        }
        FusedCell::Gated(SequenceCell::RnnTanh) => {
            <Dispatch as FusedCellOps>::rnn_tanh_bidirectional(x, a, b, c, d, e, f, g, k, h0)
        }
    });
    let last = |t: usize, d: usize| CellState {
        hidden: state_at(&out, t, d, h),
        cell: (cell == FusedCell::Lstm).then(|| state_at(&out, steps, d, h)),
    };
    let lasts = [last(steps - 1, 0), last(0, 1)];
    Some((outputs(cell, out, steps), lasts))
}
