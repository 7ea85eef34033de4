//! Recurrent layers at PyTorch parity: one engine ([`Recurrent`]), three cells.

mod cell_kind;
mod config;
pub(crate) mod fused;
mod gru;
mod init;
mod lstm;
mod regularise;
mod rnn;
mod single_step;
mod stack;
mod state;
mod stepper;
mod torch;
mod torch_zip;
mod weights;

pub use cell_kind::CellKind;
pub use config::{GruConfig, LstmConfig, RnnConfig};
pub use fused::{Engine, Kernels, on_host};
pub use gru::{GruKind, GruRecurrent};
pub use init::{GateBias, RecurrentInit};
pub use lstm::LstmKind;
pub use lstm::LstmRecurrent;
pub use regularise::Regularisation;
pub use rnn::{Nonlinearity, RnnKind};
pub use single_step::RecurrentCell;
pub use stack::{LayerWeights, Recurrent};
pub use state::{CellState, RecurrentState};
pub use stepper::Stepper;
pub use weights::{Affine, CellNorm, CellWeights};

/// Vanilla (Elman) RNN stack, PyTorch's `nn.RNN`. Each layer and direction computes, for
/// `t = 1..T` (the reverse direction of a bidirectional layer for `t = T..1`):
///
/// ```text
/// h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)        act = tanh (default) or relu
/// ```
///
/// `x_t` is the layer's input (the previous layer's output, after dropout), `W_ih` `[H, I]`,
/// `W_hh` `[H, H]` as PyTorch's `weight_ih_l{k}`, `weight_hh_l{k}`. A layer direction runs as
/// one op (`FusedCell::RnnTanh`, `FusedCell::RnnRelu`): on the CPU backends in
/// `recurrent/fused/sequence/single_state.rs`, its step in `fused/kernels.rs`, on the GPU
/// backends in `recurrent/fused/cube/recurrence.rs`; `docs/architecture.md` follows the call.
pub type Rnn = Recurrent<RnnKind>;
/// LSTM stack, PyTorch's `nn.LSTM` (Hochreiter & Schmidhuber 1997, with the forget gate of Gers
/// et al. 2000). Each layer and direction computes, in PyTorch's gate order (i, f, g, o):
///
/// ```text
/// [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh     (W_ih [4H, I], W_hh [4H, H])
/// c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
/// h_t = sigmoid(o) * tanh(c_t)
/// h_t = W_hr (sigmoid(o) * tanh(c_t))                     with proj_size = P > 0 (Sak et al. 2014)
/// ```
///
/// With a projection (`W_hr` `[P, H]`, PyTorch's `weight_hr_l{k}`) `h`, the outputs and `W_hh`'s
/// columns are `P` wide and `c` stays `H` wide, as in PyTorch. With `layer_norm` the cell is
/// layer-normalised ([`CellNorm`]).
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use sequent_models::recurrent::LstmConfig;
///
/// let device = Device::flex();
/// let lstm = LstmConfig::new(8, 16).with_proj_size(4).with_num_layers(2).init(&device);
/// let (out, state) = lstm.forward(Tensor::zeros([3, 5, 8], &device), None);
/// assert_eq!(out.dims(), [3, 5, 4]); // [B, T, P]
/// assert_eq!(state.hidden.dims(), [2, 3, 4]); // h_n [L, B, P]
/// assert_eq!(state.cell.unwrap().dims(), [2, 3, 16]); // c_n [L, B, H]
/// ```
///
/// On the CPU backends a layer direction (or both directions of a bidirectional layer) runs as one
/// op (`recurrent/fused/sequence/lstm.rs`, the step in `fused/kernels.rs`), on wgpu and cuda its
/// time loop as one CubeCL kernel (`fused/cube/recurrence.rs`); `docs/architecture.md` follows
/// the call.
pub type Lstm = Recurrent<LstmKind>;
/// GRU stack, PyTorch's `nn.GRU` (Cho et al. 2014). Each layer and direction computes, in
/// PyTorch's gate order (r, z, n):
///
/// ```text
/// r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
/// z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
/// n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))   reset_after = true (PyTorch, cuDNN)
/// n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)   reset_after = false (Cho et al. v3, d2l)
/// h_t = (1 - z) * n + z * h_{t-1}
/// ```
///
/// With `reset_after` on the CPU backends a layer direction runs as one op
/// (`recurrent/fused/sequence/single_state.rs`, the step in `fused/kernels.rs`); on wgpu and cuda
/// its time loop runs as one CubeCL kernel in either form (`fused/cube/recurrence.rs`);
/// `docs/architecture.md` follows the call. With `layer_norm` the cell is layer-normalised
/// ([`CellNorm`]).
pub type Gru = Recurrent<GruKind>;
/// Single-step vanilla RNN cell, PyTorch's `nn.RNNCell`: one step of [`Rnn`]'s equations.
pub type RnnCell = RecurrentCell<RnnKind>;
/// Single-step LSTM cell, PyTorch's `nn.LSTMCell`: one step of [`Lstm`]'s equations.
pub type LstmCell = RecurrentCell<LstmKind>;
/// Single-step GRU cell, PyTorch's `nn.GRUCell`: one step of [`Gru`]'s equations.
pub type GruCell = RecurrentCell<GruKind>;
