//! The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::{Tensor, activation::sigmoid};

use super::cell_kind::{CellKind, recurrent_input};
use super::fused::{self, Engine, FusedCell, Kernels};
use super::state::CellState;
use super::weights::{Affine, CellWeights};

/// The LSTM cell of [`Lstm`](super::Lstm) and [`LstmCell`](super::LstmCell), whose docs give its
/// equations.
#[derive(Module, Debug, Default)]
pub struct LstmKind;

/// The recurrent weights of an LSTM step.
#[derive(Clone, Debug)]
pub struct LstmRecurrent {
    /// `h_{t-1} W_hh^T + b_hh` (layer-normalised in a layer-normalised cell).
    pub product: Affine,
    /// The projection `W_hr` (with `proj_size > 0`).
    pub projection: Option<Affine>,
    /// The layer norm of `c_t` before the output `tanh` (in a layer-normalised cell).
    pub cell_norm: Option<LayerNorm>,
}

impl CellKind for LstmKind {
    fn fused_cell(&self) -> Option<FusedCell> {
        Some(FusedCell::Lstm)
    }

    const GATES: usize = 4;
    const HAS_CELL: bool = true;
    const NAME: &'static str = "LSTM";
    const KEEP_GATE: Option<usize> = Some(1);
    type Recurrent = LstmRecurrent;

    fn prepare(&self, weights: &CellWeights) -> LstmRecurrent {
        LstmRecurrent {
            product: weights.hidden_affine(0..weights.gate_rows()),
            projection: weights.projection(),
            cell_norm: weights.layer_norm.as_ref().and_then(|n| n.c.clone()),
        }
    }

    fn step(
        &self,
        recurrent: &LstmRecurrent,
        x_proj: Tensor<2>,
        state: CellState,
        dropped: Option<&Tensor<2>>,
        kernels: Kernels,
    ) -> CellState {
        let c_prev = state.cell.expect("the engine gives an LSTM a cell state");
        let h_in = recurrent_input(&state.hidden, dropped);
        let gates = x_proj + recurrent.product.apply(h_in);
        let fused = kernels.engine(&gates.device()) != Engine::Composed;
        let (hidden, cell) = match &recurrent.cell_norm {
            None if fused => fused::lstm(gates, c_prev),
            norm => {
                let [i, f, g, o]: [Tensor<2>; 4] =
                    gates.chunk(4, 1).try_into().expect("4 gate blocks");
                let cell = sigmoid(f) * c_prev + sigmoid(i) * g.tanh();
                let shown = match norm {
                    Some(norm) => norm.forward(cell.clone()),
                    None => cell.clone(),
                };
                (sigmoid(o) * shown.tanh(), cell)
            }
        };
        CellState {
            hidden: match &recurrent.projection {
                Some(p) => p.apply(hidden),
                None => hidden,
            },
            cell: Some(cell),
        }
    }
}
