//! A recurrent stack run one time step a call, as generation runs it.

use burn::tensor::Tensor;

use super::cell_kind::CellKind;
use super::fused::StackStep;
use super::stack::Recurrent;
use super::state::RecurrentState;
use crate::error::{Result, SequentError};

/// A [`Recurrent`] stack prepared to run one time step a call (generation, streaming): each call
/// gives what [`Recurrent::try_forward`] gives over a sequence of one step (up to the order of
/// floating-point sums), so that a unidirectional stack stepped through a sequence gives its
/// forward pass over the sequence (a bidirectional one's reverse direction sees each call's
/// step alone).
///
/// On the GPU backends (wgpu, cuda) without autodiff, a unidirectional stack with no zoneout,
/// layer norm or projection runs all its layers' step as one
/// kernel launch, over weights packed once when the stepper is made (as PyTorch's
/// `flatten_parameters` packs them for cuDNN), where each layer would launch its input
/// projection, its bias and its recurrence. Elsewhere a call runs [`Recurrent::try_forward`].
/// The packed weights are a copy: a stepper made before the weights change runs the old ones.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use sequent_models::recurrent::LstmConfig;
///
/// let device = Device::flex();
/// let lstm = LstmConfig::new(8, 16).with_num_layers(2).init(&device);
/// let stepper = lstm.stepper();
/// let (out, state) = stepper.step(Tensor::zeros([3, 8], &device), None);
/// let (out, state) = stepper.step(out.narrow(1, 0, 8), Some(state));
/// assert_eq!(out.dims(), [3, 16]); // [B, D*R]
/// assert_eq!(state.hidden.dims(), [2, 3, 16]); // h_n [L, B, H]
/// ```
#[derive(Debug)]
pub struct Stepper<'a, C: CellKind> {
    stack: &'a Recurrent<C>,
    op: Option<StackStep>,
}

impl<C: CellKind> Recurrent<C> {
    /// This stack prepared to run one time step a call ([`Stepper`]).
    pub fn stepper(&self) -> Stepper<'_, C> {
        let device = self.layers[0].forward.weight_ih.device();
        let op = self.fused_cell().filter(|_| self.num_directions() == 1);
        let op = op.and_then(|cell| {
            let layers: Vec<_> = self.layers.iter().map(|l| &l.forward).collect();
            let inside = self.inside(self.training(&device));
            StackStep::new(cell, &layers, (&device, self.kernels), inside)
        });
        Stepper { stack: self, op }
    }
}

impl<C: CellKind> Stepper<'_, C> {
    /// One step: the input `x_t` `[B, I]` from `state` (zeros if `None`; `h` `[L*D, B, R]` and,
    /// for an LSTM, `c` `[L*D, B, H]`, as [`Recurrent::try_forward`] takes and returns it) -> the
    /// last layer's output `[B, D*R]` and the state after the step.
    pub fn try_step(
        &self,
        x_t: Tensor<2>,
        state: Option<RecurrentState>,
    ) -> Result<(Tensor<2>, RecurrentState)> {
        let stack = self.stack;
        let [batch, width] = x_t.dims();
        let Some(op) = &self.op else {
            let (out, state) = stack.try_forward(x_t.unsqueeze_dim(1), state, None)?;
            return Ok((out.reshape([batch, stack.output_size()]), state));
        };
        if width != stack.input_size {
            return Err(SequentError::InputWidth {
                expected: stack.input_size,
                got: vec![batch, width],
            });
        }
        if batch == 0 {
            return Err(SequentError::EmptyInput(vec![batch, width]));
        }
        let layers = stack.num_layers();
        let state = match state {
            Some(state) => {
                stack.check_state(&state, batch)?;
                state
            }
            None => {
                let zeros =
                    || Tensor::<3>::zeros([layers, batch, stack.hidden_size], &x_t.device());
                RecurrentState {
                    hidden: zeros(),
                    cell: C::HAS_CELL.then(zeros),
                }
            }
        };
        let (out, hidden, cell) = op.step(x_t, state.hidden, state.cell);
        Ok((out, RecurrentState { hidden, cell }))
    }

    /// [`Self::try_step`], panicking with the error's message.
    pub fn step(
        &self,
        x_t: Tensor<2>,
        state: Option<RecurrentState>,
    ) -> (Tensor<2>, RecurrentState) {
        self.try_step(x_t, state).unwrap_or_else(|e| panic!("{e}"))
    }
}
