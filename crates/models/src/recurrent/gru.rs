//! The GRU cell (Cho et al. 2014), in both placements of the reset gate.

use burn::module::Module;
use burn::tensor::{Tensor, activation::sigmoid};

use super::cell_kind::{CellKind, recurrent_input};
use super::fused::{self, Engine, FusedCell, Kernels};
use super::state::CellState;
use super::weights::{Affine, CellWeights};

/// The GRU cell of [`Gru`](super::Gru) and [`GruCell`](super::GruCell), whose docs give its
/// equations in both placements of the reset gate.
#[derive(Module, Debug)]
pub struct GruKind {
    /// Where the reset gate acts: after (`true`) or before (`false`) the recurrent product.
    pub reset_after: bool,
}

/// The recurrent weights of a GRU step.
#[derive(Clone, Debug)]
pub enum GruRecurrent {
    /// `reset_after = true`: one GEMM for all three blocks.
    After(Box<Affine>),
    /// `reset_after = false`: the r and z blocks, then the n block applied to `r * h`.
    Before {
        /// `W_h{r,z}`, `b_h{r,z}`.
        rz: Box<Affine>,
        /// `W_hn`, `b_hn`.
        n: Box<Affine>,
    },
}

impl CellKind for GruKind {
    fn fused_cell(&self) -> Option<FusedCell> {
        Some(match self.reset_after {
            true => FusedCell::Gru,
            false => FusedCell::GruResetBefore,
        })
    }

    fn normalises(&self) -> bool {
        self.reset_after
    }

    const GATES: usize = 3;
    const HAS_CELL: bool = false;
    const NAME: &'static str = "GRU";
    const KEEP_GATE: Option<usize> = Some(1);
    type Recurrent = GruRecurrent;

    fn prepare(&self, weights: &CellWeights) -> GruRecurrent {
        let h = weights.gate_rows() / 3;
        if self.reset_after {
            GruRecurrent::After(Box::new(weights.hidden_affine(0..3 * h)))
        } else {
            GruRecurrent::Before {
                rz: Box::new(weights.hidden_affine(0..2 * h)),
                n: Box::new(weights.hidden_affine(2 * h..3 * h)),
            }
        }
    }

    fn step(
        &self,
        recurrent: &GruRecurrent,
        x_proj: Tensor<2>,
        state: CellState,
        dropped: Option<&Tensor<2>>,
        kernels: Kernels,
    ) -> CellState {
        let h_in = recurrent_input(&state.hidden, dropped);
        let h_prev = state.hidden;
        if let GruRecurrent::After(all) = recurrent
            && kernels.engine(&h_prev.device()) != Engine::Composed
        {
            let hidden = fused::gru(x_proj, all.apply(h_in), h_prev);
            return CellState { hidden, cell: None };
        }
        let h = h_prev.dims()[1];
        let x_rz = x_proj.clone().narrow(1, 0, 2 * h);
        let x_n = x_proj.narrow(1, 2 * h, h);
        let (rz, n_pre) = match recurrent {
            GruRecurrent::After(all) => {
                let hp = all.apply(h_in);
                let rz = sigmoid(x_rz + hp.clone().narrow(1, 0, 2 * h));
                let r = rz.clone().narrow(1, 0, h);
                (rz, x_n + r * hp.narrow(1, 2 * h, h))
            }
            GruRecurrent::Before { rz, n } => {
                let rz = sigmoid(x_rz + rz.apply(h_in.clone()));
                let r = rz.clone().narrow(1, 0, h);
                (rz, x_n + n.apply(r * h_in))
            }
        };
        let z = rz.narrow(1, h, h);
        let n = n_pre.tanh();
        // (1 - z) * n + z * h, written with one multiply fewer.
        let hidden = n.clone() + z * (h_prev - n);
        CellState { hidden, cell: None }
    }
}
