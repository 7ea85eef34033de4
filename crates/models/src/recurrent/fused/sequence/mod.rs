//! A whole layer direction as one host computation (the cuDNN / oneDNN design): the input
//! projection `x W_ih^T` of all steps is one GEMM, the time loop runs inside the op with `W_hh`
//! packed once per sequence ([`PackedMatrix`](super::packed::PackedMatrix)), and the backward
//! runs BPTT inside the op too, with `dW_hh` for all steps in one GEMM
//! `dG^T [G*H x T*B] * H_prev [T*B x H]` and `dx`, `dW_ih` in one GEMM each.
//!
//! The rows of a batch are independent sequences, so the time loops split the batch between the
//! threads of the pool: each thread runs every step for its rows, with no synchronisation between
//! steps, reading the shared packed weights.
//!
//! A direction runs forward or backward in time over `x` as it is ([`Direction`]): the reverse
//! direction of a bidirectional layer needs no flipped copy of its input or its output.
//!
//! The input can be token ids instead of features ([`LayerInput::Tokens`], a first layer over an
//! embedding `E` with `W_ih E^T` for `W_ih`): the projection then gathers columns of that
//! `[G*H, V]` matrix, and the backward sums the gate gradients by token instead of the `dx` and
//! `dW_ih` GEMMs.
//!
//! The files: `lstm` and `single_state` (GRU, tanh RNN) hold the cells' time loops and BPTT, `inputs` a layer's inputs
//! and their projection, `norm` the layer norms of a layer-normalised cell, `grads` its gradients, `products` the GEMMs and the forms of the
//! recurrent weights, `parts` how the work splits between threads, `direction` the order of the
//! state buffers, `buffers` the host copies, joins and sums.

mod buffers;
mod direction;
mod grads;
mod inputs;
mod lstm;
mod norm;
mod parts;
mod products;
mod single_state;
#[cfg(test)]
mod tests;

pub(crate) use buffers::{concat_padded, join_rows, split_rows};
pub use direction::Direction;
pub use grads::LayerGrads;
pub use inputs::{LayerInput, LayerInputs, ZoneoutRates};
use lstm::{LstmTrace, lstm_sequence_backward, lstm_sequence_forward};
pub use norm::{CellNorms, NormParams};
pub(crate) use parts::slabs;
pub use parts::{both, forward_in_pool, in_pool};
pub(crate) use products::DIRECT_MAX_ROWS;
use single_state::{
    SingleStateCell, SingleStateTrace, single_state_backward, single_state_forward,
};

/// A cell whose layer directions run as one op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedCell {
    /// LSTM: `G = 4` gates, a state with a cell vector.
    Lstm,
    /// GRU, reset after the recurrent product (PyTorch's form): `G = 3`.
    Gru,
    /// Vanilla RNN with tanh: `G = 1`.
    RnnTanh,
    /// Vanilla RNN with ReLU: `G = 1`.
    RnnRelu,
    /// GRU with the reset gate before the recurrent product (`n = tanh(x_n + W_hn (r h) +
    /// b_hn)`): `G = 3`; the cube engine's only (the host runs it step by step).
    GruResetBefore,
}

/// A layer direction's forward pass, kept for its backward.
#[derive(Clone, Debug)]
pub enum Trace {
    /// Of an LSTM.
    Lstm(LstmTrace),
    /// Of a GRU or tanh RNN.
    SingleState(SingleStateCell, SingleStateTrace),
}

impl FusedCell {
    /// The number of gates `G` (the rows of `W_ih` and `W_hh` are `G*H`).
    pub fn gates(self) -> usize {
        match self {
            FusedCell::Lstm => 4,
            FusedCell::Gru | FusedCell::GruResetBefore => 3,
            FusedCell::RnnTanh | FusedCell::RnnRelu => 1,
        }
    }

    /// Whether the state has a cell vector besides the hidden one (the LSTM's).
    pub fn has_cell_state(self) -> bool {
        self == FusedCell::Lstm
    }

    /// Whether the host engine's sequence op runs this cell.
    pub fn on_host(self) -> bool {
        self != FusedCell::GruResetBefore
    }

    /// Runs a layer direction on `inputs` from `h0` and (LSTM; ignored otherwise) `c0` `[B, H]`.
    pub fn forward(
        self,
        inputs: &LayerInputs<'_>,
        (h0, c0): (&[f32], &[f32]),
        dims: (usize, usize, usize),
        direction: Direction,
    ) -> Trace {
        let single = |cell| {
            let trace = single_state_forward(cell, inputs, h0, dims, direction);
            Trace::SingleState(cell, trace)
        };
        match self {
            FusedCell::Lstm => Trace::Lstm(lstm_sequence_forward(inputs, h0, c0, dims, direction)),
            FusedCell::Gru => single(SingleStateCell::Gru),
            FusedCell::RnnTanh => single(SingleStateCell::RnnTanh),
            FusedCell::RnnRelu => single(SingleStateCell::RnnRelu),
            FusedCell::GruResetBefore => {
                unreachable!("the host has no reset-before GRU op (fused::applies)")
            }
        }
    }
}

impl Trace {
    /// The direction's output: `h_t` in time order `[T, B, R]`, and (LSTM; empty for the other
    /// cells) the final cell state `[B, H]`.
    pub fn output(&self, (steps, batch, r): (usize, usize, usize)) -> [&[f32]; 2] {
        match self {
            Trace::Lstm(trace) => trace.output(steps),
            Trace::SingleState(_, trace) => [trace.output(batch * r), &[]],
        }
    }

    /// BPTT from `[d_hidden, d_cell]`, the gradient of [`Self::output`].
    pub fn backward(
        self,
        inputs: &LayerInputs<'_>,
        [d_hidden, d_cell]: [&[f32]; 2],
        dims: (usize, usize, usize),
    ) -> LayerGrads {
        match self {
            Trace::Lstm(trace) => lstm_sequence_backward(trace, inputs, d_hidden, d_cell, dims),
            Trace::SingleState(cell, trace) => {
                single_state_backward(cell, trace, inputs, d_hidden, dims)
            }
        }
    }
}
