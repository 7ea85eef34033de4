//! The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

use burn::module::Module;
use burn::tensor::{Tensor, activation::sigmoid};

use super::cell_kind::{CellKind, recurrent_input};
use super::fused::{self, Engine, FusedCell, Kernels};
use super::state::CellState;
use super::weights::{Affine, CellWeights};

/// The LSTM cell of [`Lstm`](super::Lstm) and [`LstmCell`](super::LstmCell), whose docs give its
/// equations.
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
    /// The recurrent product and the projection `W_hr` (with `proj_size > 0`).
    type Recurrent = (Affine, Option<Affine>);

    fn prepare(&self, weights: &CellWeights) -> Self::Recurrent {
        (
            weights.hidden_affine(0..weights.gate_rows()),
            weights.projection(),
        )
    }

    fn step(
        &self,
        (recurrent, projection): &Self::Recurrent,
        x_proj: Tensor<2>,
        state: CellState,
        dropped: Option<&Tensor<2>>,
        kernels: Kernels,
    ) -> CellState {
        let c_prev = state.cell.expect("the engine gives an LSTM a cell state");
        let gates = x_proj + recurrent.apply(recurrent_input(&state.hidden, dropped));
        let (hidden, cell) = if kernels.engine(&gates.device()) != Engine::Composed {
            fused::lstm(gates, c_prev)
        } else {
            let [i, f, g, o]: [Tensor<2>; 4] = gates.chunk(4, 1).try_into().expect("4 gate blocks");
            let cell = sigmoid(f) * c_prev + sigmoid(i) * g.tanh();
            (sigmoid(o) * cell.clone().tanh(), cell)
        };
        CellState {
            hidden: match projection {
                Some(p) => p.apply(hidden),
                None => hidden,
            },
            cell: Some(cell),
        }
    }
}
