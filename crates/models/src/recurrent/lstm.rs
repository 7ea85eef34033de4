//! The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

use burn::module::Module;
use burn::tensor::{Tensor, activation::sigmoid};

use super::cell::CellKind;
use super::fused::{self, FusedCell, Pointwise};
use super::state::CellState;
use super::weights::{Affine, CellWeights};

/// LSTM, PyTorch's equations and gate order (i, f, g, o):
///
/// ```text
/// [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
/// c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
/// h_t = sigmoid(o) * tanh(c_t)
/// ```
#[derive(Module, Debug, Default)]
pub struct LstmKind;

impl CellKind for LstmKind {
    fn fused_cell(&self) -> Option<FusedCell> {
        Some(FusedCell::Lstm)
    }

    const GATES: usize = 4;
    const HAS_CELL: bool = true;
    const NAME: &'static str = "LSTM";
    const KEEP_GATE: Option<usize> = Some(1);
    type Recurrent = Affine;

    fn prepare(&self, weights: &CellWeights) -> Affine {
        weights.hidden_affine(0..weights.gate_rows())
    }

    fn step(
        &self,
        recurrent: &Affine,
        x_proj: Tensor<2>,
        state: CellState,
        pointwise: Pointwise,
    ) -> CellState {
        let c_prev = state.cell.expect("the engine gives an LSTM a cell state");
        let gates = x_proj + recurrent.apply(state.hidden);
        if pointwise.gated_step_fused_on(&gates.device()) {
            let (hidden, cell) = fused::lstm(gates, c_prev);
            return CellState {
                hidden,
                cell: Some(cell),
            };
        }
        let [i, f, g, o]: [Tensor<2>; 4] = gates.chunk(4, 1).try_into().expect("4 gate blocks");
        let cell = sigmoid(f) * c_prev + sigmoid(i) * g.tanh();
        let hidden = sigmoid(o) * cell.clone().tanh();
        CellState {
            hidden,
            cell: Some(cell),
        }
    }
}
