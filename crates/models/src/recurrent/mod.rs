//! Recurrent layers at PyTorch parity: one engine ([`Recurrent`]), three cells.

mod cell;
mod config;
pub mod fused;
mod gru;
mod init;
mod layer;
mod lstm;
mod rnn;
mod state;
mod step;
mod torch;
mod weights;

pub use cell::CellKind;
pub use config::{GruConfig, LstmConfig, RnnConfig};
pub use fused::Pointwise;
pub use gru::{GruKind, GruRecurrent};
pub use init::{GateBias, RecurrentInit};
pub use layer::{LayerWeights, Recurrent};
pub use lstm::LstmKind;
pub use rnn::{Nonlinearity, RnnKind};
pub use state::{CellState, RecurrentState};
pub use step::RecurrentCell;
pub use weights::{Affine, CellWeights};

/// Vanilla RNN stack, PyTorch's `nn.RNN`.
pub type Rnn = Recurrent<RnnKind>;
/// LSTM stack, PyTorch's `nn.LSTM`.
pub type Lstm = Recurrent<LstmKind>;
/// GRU stack, PyTorch's `nn.GRU`.
pub type Gru = Recurrent<GruKind>;
/// Single-step vanilla RNN cell, PyTorch's `nn.RNNCell`.
pub type RnnCell = RecurrentCell<RnnKind>;
/// Single-step LSTM cell, PyTorch's `nn.LSTMCell`.
pub type LstmCell = RecurrentCell<LstmKind>;
/// Single-step GRU cell, PyTorch's `nn.GRUCell`.
pub type GruCell = RecurrentCell<GruKind>;
