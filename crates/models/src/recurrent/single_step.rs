//! Single-step cells for generation: `RnnCell`, `LstmCell`, `GruCell`.

use burn::module::Module;
use burn::tensor::Tensor;

use super::cell_kind::CellKind;
use super::fused::Kernels;
use super::state::CellState;
use super::weights::CellWeights;
use crate::error::{Result, SequentError};

/// One recurrent cell applied one time step at a time (PyTorch's `nn.RNNCell` / `LSTMCell` /
/// `GRUCell`): `s_t = cell(W_ih x_t + b_ih, s_{t-1})` with the maths of `C`.
#[derive(Module, Debug)]
pub struct RecurrentCell<C: CellKind> {
    /// The weights, named and laid out as PyTorch's cells name them.
    pub weights: CellWeights,
    /// The cell maths.
    #[module(skip)]
    pub cell: C,
    /// The fused kernels or the composed tensor ops (see [`Kernels`]).
    #[module(skip)]
    pub kernels: Kernels,
    /// Width `H` of the hidden state.
    pub hidden_size: usize,
}

impl<C: CellKind> RecurrentCell<C> {
    pub(crate) fn new(weights: CellWeights, cell: C, kernels: Kernels, hidden_size: usize) -> Self {
        Self {
            weights,
            cell,
            kernels,
            hidden_size,
        }
    }

    /// Width `I` of the input.
    pub fn input_size(&self) -> usize {
        self.weights.weight_ih.dims()[1]
    }

    /// The zero state for a batch of `batch`.
    pub fn zero_state(&self, batch: usize, device: &burn::tensor::Device) -> CellState {
        let zeros = |width| Tensor::<2>::zeros([batch, width], device);
        CellState {
            hidden: zeros(self.weights.state_width()),
            cell: C::HAS_CELL.then(|| zeros(self.hidden_size)),
        }
    }

    /// One step: `x_t` `[B, I]`, `state` `(h, c)`, `h` `[B, R]` (`R` the LSTM's projection width
    /// `P`, else `H`) and `c` `[B, H]` (zeros if `None`).
    ///
    /// # Panics
    /// With the message of the error [`Self::try_step`] would return.
    pub fn step(&self, x_t: Tensor<2>, state: Option<CellState>) -> CellState {
        self.try_step(x_t, state).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The checked step.
    pub fn try_step(&self, x_t: Tensor<2>, state: Option<CellState>) -> Result<CellState> {
        let [batch, width] = x_t.dims();
        if width != self.input_size() {
            return Err(SequentError::InputWidth {
                expected: self.input_size(),
                got: vec![batch, width],
            });
        }
        if batch == 0 {
            return Err(SequentError::EmptyInput(vec![batch, width]));
        }
        let state = match state {
            None => self.zero_state(batch, &x_t.device()),
            Some(s) => {
                let widths = [self.weights.state_width(), self.hidden_size];
                let parts = [("hidden", Some(&s.hidden)), ("cell", s.cell.as_ref())];
                for ((which, t), width) in parts.into_iter().zip(widths) {
                    let expected = vec![batch, width];
                    if let Some(t) = t.filter(|t| t.dims().to_vec() != expected) {
                        return Err(SequentError::StateShape {
                            which,
                            expected,
                            got: t.dims().to_vec(),
                        });
                    }
                }
                if s.cell.is_some() != C::HAS_CELL {
                    return Err(SequentError::StateKind {
                        cell: C::NAME,
                        needs_cell: C::HAS_CELL,
                    });
                }
                s
            }
        };
        let x_proj = self.weights.input_affine().apply(x_t);
        Ok(self.cell.step(
            &self.cell.prepare(&self.weights),
            x_proj,
            state,
            None,
            self.kernels,
        ))
    }
}
