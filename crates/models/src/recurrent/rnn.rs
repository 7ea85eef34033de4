//! The vanilla (Elman) RNN cell.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, activation};

use super::cell_kind::{CellKind, recurrent_input};
use super::fused::{self, Engine, FusedCell, Kernels};
use super::state::CellState;
use super::weights::{Affine, CellWeights};

/// The nonlinearity of a vanilla RNN, PyTorch's `nonlinearity` argument.
#[derive(Config, Debug, PartialEq, Copy)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

/// The vanilla RNN cell of [`Rnn`](super::Rnn) and [`RnnCell`](super::RnnCell):
/// `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)` with `act` tanh or relu.
#[derive(Module, Debug)]
pub struct RnnKind {
    /// The activation `act`.
    #[module(skip)]
    pub nonlinearity: Nonlinearity,
}

impl CellKind for RnnKind {
    fn fused_cell(&self) -> Option<FusedCell> {
        Some(match self.nonlinearity {
            Nonlinearity::Tanh => FusedCell::RnnTanh,
            Nonlinearity::Relu => FusedCell::RnnRelu,
        })
    }

    const GATES: usize = 1;
    const HAS_CELL: bool = false;
    const NAME: &'static str = "RNN";
    const KEEP_GATE: Option<usize> = None;
    type Recurrent = Affine;

    fn prepare(&self, weights: &CellWeights) -> Affine {
        weights.hidden_affine(0..weights.gate_rows())
    }

    fn step(
        &self,
        recurrent: &Affine,
        x_proj: Tensor<2>,
        state: CellState,
        dropped: Option<&Tensor<2>>,
        kernels: Kernels,
    ) -> CellState {
        let pre = x_proj + recurrent.apply(recurrent_input(&state.hidden, dropped));
        let hidden = match self.nonlinearity {
            Nonlinearity::Tanh if kernels.engine(&pre.device()) == Engine::Host => fused::tanh(pre),
            Nonlinearity::Tanh => pre.tanh(),
            Nonlinearity::Relu => activation::relu(pre),
        };
        CellState { hidden, cell: None }
    }
}
