//! The one thing that differs between RNN, LSTM and GRU: the maths of a time step.

use burn::module::{Module, ModuleDisplay};
use burn::tensor::Tensor;

use super::fused::{FusedCell, Kernels};
use super::state::CellState;
use super::weights::CellWeights;

/// A recurrent cell's maths, plugged into the shared engine ([`super::Recurrent`],
/// [`super::RecurrentCell`]).
///
/// The kinds are (parameter-free) modules so that models holding a `Recurrent<C>` can derive
/// `Module` generically.
///
/// The engine computes the input projection `x_t W_ih^T + b_ih` for the whole sequence with one
/// GEMM and hands the cell one step of it (`x_proj`, `[B, G*H]`). The cell turns its weights into
/// [`CellKind::Recurrent`] once per sequence (the transposed `W_hh` and `b_hh`) and computes the
/// next state in [`CellKind::step`], with one GEMM for all gates.
pub trait CellKind: Module + ModuleDisplay + Send + Sync + 'static {
    /// Number of `H`-wide gate blocks stacked in `W_ih` / `W_hh` (RNN 1, GRU 3, LSTM 4).
    const GATES: usize;
    /// Whether the state has a cell vector `c` (LSTM).
    const HAS_CELL: bool;
    /// Name used in messages and PyTorch's module name (`RNN`, `LSTM`, `GRU`).
    const NAME: &'static str;
    /// Index of the gate block that keeps the old state (LSTM `f` = 1, GRU `z` = 1), which the
    /// forget-bias and chrono initialisers target; `None` for the vanilla RNN.
    const KEEP_GATE: Option<usize>;

    /// Recurrent weights prepared once per sequence for the time loop.
    type Recurrent: Clone;

    /// Prepares the recurrent weights for the time loop.
    fn prepare(&self, weights: &CellWeights) -> Self::Recurrent;

    /// One time step: `x_proj` is `x_t W_ih^T + b_ih` (`[B, G*H]`), `state` is `(h_{t-1}, c_{t-1})`;
    /// `dropped`, recurrent dropout's mask, multiplies `h_{t-1}` in the recurrent product
    /// (`recurrent_input`); `kernels` picks the fused or the composed activations (the same
    /// maths).
    fn step(
        &self,
        recurrent: &Self::Recurrent,
        x_proj: Tensor<2>,
        state: CellState,
        dropped: Option<&Tensor<2>>,
        kernels: Kernels,
    ) -> CellState;

    /// The whole-sequence op (`FusedCell`) that runs this cell's layers, input projection and
    /// time loop, on devices with the fused ops; `None` (the default) lets the engine project the
    /// inputs and run [`CellKind::step`] per step.
    fn fused_cell(&self) -> Option<FusedCell> {
        None
    }

    /// Whether this cell can be layer-normalised (its recurrent product is one `[G*H]` vector).
    fn normalises(&self) -> bool {
        true
    }
}

/// What the recurrent product multiplies: `h_{t-1}`, times recurrent dropout's mask if there is
/// one.
pub(crate) fn recurrent_input(hidden: &Tensor<2>, dropped: Option<&Tensor<2>>) -> Tensor<2> {
    match dropped {
        Some(mask) => hidden.clone() * mask.clone(),
        None => hidden.clone(),
    }
}
