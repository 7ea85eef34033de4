//! Recurrent state, shaped like PyTorch's `h_n` / `c_n`.

use burn::tensor::Tensor;

/// The state of a whole recurrent stack: `hidden` is PyTorch's `h_n` and `cell` its `c_n`.
///
/// Both are shaped `[num_layers * directions, batch, hidden]`, index `layer * directions + d`
/// (`d = 0` forward, `d = 1` reverse), exactly as PyTorch stacks them (an LSTM with a projection
/// has `hidden` `proj_size` wide). `cell` is `Some` for an LSTM and `None` for RNN and GRU.
#[derive(Clone, Debug)]
pub struct RecurrentState {
    /// Hidden state `h`, `[L * D, B, H]` (`[L * D, B, P]` with an LSTM projection).
    pub hidden: Tensor<3>,
    /// Cell state `c` (LSTM only), `[L * D, B, H]`.
    pub cell: Option<Tensor<3>>,
}

impl RecurrentState {
    /// A state with a hidden tensor only (RNN, GRU).
    pub fn new(hidden: Tensor<3>) -> Self {
        Self { hidden, cell: None }
    }

    /// An LSTM state `(h, c)`.
    pub fn lstm(hidden: Tensor<3>, cell: Tensor<3>) -> Self {
        Self {
            hidden,
            cell: Some(cell),
        }
    }

    /// The same state cut from the autodiff graph (truncated back-propagation through time).
    pub fn detach(self) -> Self {
        Self {
            hidden: self.hidden.detach(),
            cell: self.cell.map(Tensor::detach),
        }
    }
}

/// The state of one layer and direction inside the time loop: `h` `[B, H]` and, for LSTM, `c`.
#[derive(Clone, Debug)]
pub struct CellState {
    /// Hidden state `h_t`, `[B, H]`.
    pub hidden: Tensor<2>,
    /// Cell state `c_t` (LSTM only), `[B, H]`.
    pub cell: Option<Tensor<2>>,
}

impl CellState {
    /// `m * self + (1 - m) * previous`, with `m` a `[B, 1]` 0/1 mask: rows whose mask is 0 keep the
    /// previous state, which is how padded time steps leave the state untouched. With `m` in {0, 1}
    /// the blend is exact.
    pub(crate) fn blend(self, previous: CellState, keep: &Tensor<2>, skip: &Tensor<2>) -> Self {
        let mix = |new: Tensor<2>, old: Tensor<2>| new * keep.clone() + old * skip.clone();
        Self {
            hidden: mix(self.hidden, previous.hidden),
            cell: match (self.cell, previous.cell) {
                (Some(new), Some(old)) => Some(mix(new, old)),
                _ => None,
            },
        }
    }
}
