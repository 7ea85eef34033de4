//! The recurrence engine: layers x directions, dropout, lengths, hoisted input GEMM, time loop.

use std::cell::OnceCell;

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Embedding};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::cell_kind::CellKind;
use super::fused::{self, Direction, Kernels};
use super::regularise::{Regularisation, Zoneout, dropout_mask};
use super::state::{CellState, RecurrentState};
use super::weights::{CellWeights, WeightSpec};
use crate::error::{Result, SequentError};
use crate::time_major::embed_steps;

/// A stack of recurrent layers with PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` semantics, generic
/// over the cell ([`super::Rnn`], [`super::Lstm`], [`super::Gru`] are this type).
///
/// For every layer `l` and direction `d` the engine computes
/// `X_proj = X W_ih^T + b_ih` for the whole sequence with one GEMM, then runs
/// `s_t = cell(X_proj[t], s_{t-1})` over time (reversed for `d = 1`), one GEMM per step for all
/// gates, and collects the outputs once with a stack. Layer `l + 1` reads the concatenated outputs
/// of both directions of layer `l`, after dropout (training only, not after the last layer).
/// The [`Regularisation`] options act inside the layers.
#[derive(Module, Debug)]
pub struct Recurrent<C: CellKind> {
    /// The layers, each with its forward and (if bidirectional) reverse weights.
    pub layers: Vec<LayerWeights>,
    /// Dropout on the outputs of every layer but the last (active only in training).
    pub dropout: Dropout,
    /// The cell maths.
    #[module(skip)]
    pub cell: C,
    /// The fused kernels or the composed tensor ops (see [`Kernels`]).
    #[module(skip)]
    pub kernels: Kernels,
    /// Input and recurrent dropout, weight drop and zoneout inside the layers.
    #[module(skip)]
    pub regularise: Regularisation,
    /// Width `I` of the input features.
    pub input_size: usize,
    /// Width `H` of the hidden state.
    pub hidden_size: usize,
}

/// The weights of one layer: forward direction, and reverse direction if bidirectional.
#[derive(Module, Debug)]
pub struct LayerWeights {
    /// Forward-in-time direction (PyTorch's `*_l{k}`).
    pub forward: CellWeights,
    /// Reverse direction (PyTorch's `*_l{k}_reverse`).
    pub reverse: Option<CellWeights>,
}

/// The shape of a recurrent stack, shared by the three configs.
#[derive(Clone, Debug)]
pub(crate) struct StackSpec {
    pub input_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub bidirectional: bool,
    pub dropout: f64,
    pub kernels: Kernels,
    pub regularise: Regularisation,
    pub weights: WeightSpec,
}

impl<C: CellKind> Recurrent<C> {
    pub(crate) fn from_spec(spec: StackSpec, cell: C, device: &Device) -> Result<Self> {
        let invalid = |m: String| Err(SequentError::InvalidConfig(m));
        if spec.input_size == 0 || spec.hidden_size == 0 || spec.num_layers == 0 {
            return invalid(format!(
                "input_size, hidden_size and num_layers must be at least 1, got {}, {} and {}",
                spec.input_size, spec.hidden_size, spec.num_layers
            ));
        }
        if !(0.0..1.0).contains(&spec.dropout) {
            return invalid(format!("dropout must be in [0, 1), got {}", spec.dropout));
        }
        spec.regularise.validate()?;
        if spec.weights.layer_norm && !cell.normalises() {
            return invalid(
                "layer_norm needs the reset gate after the recurrent product (reset_after = true)"
                    .into(),
            );
        }
        if spec.weights.proj_size >= spec.hidden_size {
            return invalid(format!(
                "proj_size must be smaller than hidden_size, got {} and {}",
                spec.weights.proj_size, spec.hidden_size
            ));
        }
        let dirs = if spec.bidirectional { 2 } else { 1 };
        let layers = (0..spec.num_layers)
            .map(|l| {
                let ws = WeightSpec {
                    input_size: if l == 0 {
                        spec.input_size
                    } else {
                        dirs * spec.weights.state_width()
                    },
                    ..spec.weights.clone()
                };
                LayerWeights {
                    forward: CellWeights::new(&ws, device),
                    reverse: spec.bidirectional.then(|| CellWeights::new(&ws, device)),
                }
            })
            .collect();
        Ok(Self {
            layers,
            dropout: DropoutConfig::new(spec.dropout).init(),
            cell,
            kernels: spec.kernels,
            regularise: spec.regularise,
            input_size: spec.input_size,
            hidden_size: spec.hidden_size,
        })
    }

    /// Number of directions `D` (2 if bidirectional).
    pub fn num_directions(&self) -> usize {
        if self.layers[0].reverse.is_some() {
            2
        } else {
            1
        }
    }

    /// Number of stacked layers `L`.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Width `R` of the hidden state `h`: the LSTM's `proj_size` if it has a projection, else
    /// `hidden_size`.
    pub fn state_width(&self) -> usize {
        self.layers[0].forward.state_width()
    }

    /// Width of the output features, `D * R`.
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.state_width()
    }

    /// The whole-sequence op of this stack's cell, if it has one; else the composed path runs.
    pub(super) fn fused_cell(&self) -> Option<fused::FusedCell> {
        self.cell.fused_cell()
    }

    /// What acts inside the recurrence of a forward pass that trains or not.
    pub(super) fn inside(&self, training: bool) -> fused::Inside<'_> {
        fused::Inside {
            regularise: &self.regularise,
            training,
            normalised: self.layers[0].forward.layer_norm.is_some(),
            projected: self.layers[0].forward.weight_hr.is_some(),
        }
    }

    /// Whether a forward pass on `device` trains: an autodiff device, and the stack's dropout
    /// module in training (the condition of [`Dropout`]).
    pub(super) fn training(&self, device: &Device) -> bool {
        self.dropout.training.is_enabled() && device.is_autodiff()
    }

    /// A layer's weights for one forward call: with weight drop in training, `W_hh` of each
    /// direction times a fresh mask (the gradient reaches the kept entries).
    fn drawn(&self, layer: &LayerWeights, training: bool) -> LayerWeights {
        let p = self.regularise.weight_drop;
        if p == 0.0 || !training {
            return layer.clone();
        }
        let drop = |w: &CellWeights| {
            let weight_hh = w.weight_hh.val();
            let mask = dropout_mask(p, weight_hh.dims(), &weight_hh.device(), training);
            w.with_weight_hh(weight_hh * mask.expect("p > 0 in training"))
        };
        LayerWeights {
            forward: drop(&layer.forward),
            reverse: layer.reverse.as_ref().map(drop),
        }
    }

    /// A layer's input `x` `[T, B, I]` times input dropout's mask (one a sequence), in training.
    fn dropped_input(&self, x: Tensor<3>, training: bool) -> Tensor<3> {
        let [_, batch, width] = x.dims();
        let p = self.regularise.input_dropout;
        match dropout_mask(p, [1, batch, width], &x.device(), training) {
            Some(mask) => x * mask,
            None => x,
        }
    }

    /// Runs the stack over `input` `[B, T, I]` from `state` (zeros if `None`).
    ///
    /// Returns the last layer's outputs `[B, T, D*R]` and the final state (PyTorch's `h_n`, `c_n`;
    /// `R` is [`Self::state_width`]).
    ///
    /// # Panics
    /// With the message of the [`SequentError`] that [`Self::try_forward`] would return.
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, RecurrentState) {
        self.try_forward(input, state, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::forward`] over a padded batch of sequences with the given `lengths`
    /// (PyTorch's packed-sequence semantics; see [`Self::try_forward`]).
    ///
    /// # Panics
    /// With the message of the [`SequentError`] that [`Self::try_forward`] would return.
    pub fn forward_lengths(
        &self,
        input: Tensor<3>,
        lengths: &[usize],
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, RecurrentState) {
        self.try_forward(input, state, Some(lengths))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The checked forward pass.
    ///
    /// `input` is `[B, T, I]` (batch first). `state`, if given, is `h` `[L*D, B, R]` (and `c`
    /// `[L*D, B, H]` for an LSTM). With `lengths` (one per sequence, each in `1..=T`) the batch is treated as padded
    /// sequences exactly as PyTorch's `pack_padded_sequence` does: steps `t >= len_b` leave the state
    /// unchanged and output zeros, the final state is each sequence's last valid step, and the
    /// reverse direction starts at each sequence's own last valid step.
    pub fn try_forward(
        &self,
        input: Tensor<3>,
        state: Option<RecurrentState>,
        lengths: Option<&[usize]>,
    ) -> Result<(Tensor<3>, RecurrentState)> {
        let [batch, steps, width] = input.dims();
        if width != self.input_size {
            return Err(SequentError::InputWidth {
                expected: self.input_size,
                got: vec![batch, steps, width],
            });
        }
        if batch == 0 || steps == 0 {
            return Err(SequentError::EmptyInput(vec![batch, steps, width]));
        }
        let device = input.device();
        let masks = lengths
            .map(|l| StepMasks::new(l, batch, steps, &device))
            .transpose()?;
        let initial = self.initial_states(state, batch, &device)?;
        let x = input.swap_dims(0, 1); // time-major [T, B, I]
        let training = self.training(&device);
        let (out, finals) = self.run_layers(x, 0, initial, Vec::new(), masks.as_ref(), training);
        Ok((out.swap_dims(0, 1), Self::stack_states(finals)))
    }

    /// The stack over the embeddings `E[tokens]` of `tokens` `[B, T]`, `E` `[V, I]` the
    /// `embedding`'s weight: the result of `self.try_forward(embedding.forward(tokens), state,
    /// None)`, up to the order of floating-point sums, with the same gradients.
    ///
    /// Where [`Self::folds_embedding`] holds, the first layer never sees the embedded sequence:
    /// its input projection `E[v] W_ih^T` of token `v` is column `v` of `W_ih E^T` `[G*H, V]`
    /// (one `[G*H x I] x [I x V]` product a call instead of the `[T*B x I] x [I x G*H]`
    /// projection), and its backward sums the gate gradients by token into `dW' [G*H, V]`, from
    /// which `dE = dW'^T W_ih` and `dW_ih = dW' E` (instead of the `T*B`-row products for `dx`
    /// and `dW_ih`, and the embedding's scatter).
    ///
    /// Tokens outside `0..V` give [`SequentError::UnknownToken`] (checked on the host).
    pub fn try_forward_embedded(
        &self,
        embedding: &Embedding,
        tokens: Tensor<2, Int>,
        state: Option<RecurrentState>,
    ) -> Result<(Tensor<3>, RecurrentState)> {
        let [batch, steps] = tokens.dims();
        let [vocab, width] = embedding.weight.dims();
        if width != self.input_size {
            return Err(SequentError::InputWidth {
                expected: self.input_size,
                got: vec![batch, steps, width],
            });
        }
        if batch == 0 || steps == 0 {
            return Err(SequentError::EmptyInput(vec![batch, steps]));
        }
        let ids = tokens.to_data().convert::<i64>().try_into_vec::<i64>();
        crate::error::check_tokens(ids.unwrap_or_default(), vocab)?;
        let device = tokens.device();
        let folding = self.folds_embedding(vocab, steps, batch, &device);
        let training = self.training(&device);
        let Some(cell) = self.fused_cell().filter(|_| folding) else {
            return self.try_forward(embed_steps(embedding, tokens), state, None);
        };
        let mut initial = self.initial_states(state, batch, &device)?;
        let rest = initial.split_off(1);
        let first = self.drawn(&self.layers[0], training);
        let weights = &first.forward;
        let folded = weights
            .weight_ih
            .val()
            .matmul(embedding.weight.val().transpose());
        let ids = fused::SequenceInput::Tokens(tokens.swap_dims(0, 1).into_dispatch());
        let op_weights = || {
            let mut weights = fused::op_weights(weights);
            weights.w_ih = folded.into_dispatch();
            fused::SequenceWeights::One(weights, Direction::Forward)
        };
        let (x, last) = fused::run_layer(
            cell,
            ids,
            op_weights,
            &[&initial[0]],
            None,
            self.kernels,
            self.inside(training),
        )
        .expect("folds_embedding checked that the op applies");
        let x = self.after_layer(0, x);
        let (out, finals) = self.run_layers(x, 1, rest, last, None, training);
        Ok((out.swap_dims(0, 1), Self::stack_states(finals)))
    }

    /// Whether [`Self::try_forward_embedded`] folds an embedding of `vocab` rows into the first
    /// layer for `steps` steps of `batch` rows on `device`: for a unidirectional stack whose
    /// first layer runs as one fused op there and whose input dropout is off or not training,
    /// when `2 V <= T B` (the fold's products grow with `V`, the work it saves with `T B`).
    pub fn folds_embedding(
        &self,
        vocab: usize,
        steps: usize,
        batch: usize,
        device: &Device,
    ) -> bool {
        let training = self.training(device);
        self.num_directions() == 1
            && !(training && self.regularise.input_dropout > 0.0)
            && self.fused_cell().is_some_and(|cell| {
                fused::applies(cell, (steps, batch), false, device, self.kernels)
            })
            && 2 * vocab <= steps * batch
    }

    /// Layers `first..` over time-major `x` `[T, B, I]` (the input of layer `first`) from their
    /// `initial` states (`[B, H]` a direction); returns the last layer's outputs `[T, B, D*H]`
    /// and every layer's final states, `finals` (of the layers before `first`) first.
    fn run_layers(
        &self,
        mut x: Tensor<3>,
        first: usize,
        initial: Vec<CellState>,
        mut finals: Vec<CellState>,
        masks: Option<&StepMasks>,
        training: bool,
    ) -> (Tensor<3>, Vec<CellState>) {
        let dirs = self.num_directions();
        let mut initial = initial.into_iter();
        for (l, layer) in self.layers.iter().enumerate().skip(first) {
            let starts = initial.by_ref().take(dirs).collect();
            let layer = self.drawn(layer, training);
            let x_in = self.dropped_input(x, training);
            let (out, lasts) = self.run_layer(&layer, &x_in, starts, masks, training);
            finals.extend(lasts);
            x = self.after_layer(l, out);
        }
        (x, finals)
    }

    /// Layer `l`'s outputs as the next layer's input: after dropout, but for the last layer.
    fn after_layer(&self, l: usize, out: Tensor<3>) -> Tensor<3> {
        if l + 1 < self.layers.len() {
            self.dropout.forward(out)
        } else {
            out
        }
    }

    /// One layer over time-major `x` `[T, B, I]` from `starts` (one state per direction): the
    /// outputs `[T, B, D*R]` and the final state of each direction. The two directions of a
    /// bidirectional layer run as one fused op where the cell and device have one.
    fn run_layer(
        &self,
        layer: &LayerWeights,
        x: &Tensor<3>,
        starts: Vec<CellState>,
        masks: Option<&StepMasks>,
        training: bool,
    ) -> (Tensor<3>, Vec<CellState>) {
        if let (Some(reverse), Some(cell), [f, r]) =
            (&layer.reverse, self.fused_cell(), &starts[..])
        {
            let weights = || {
                let [f, r] = [&layer.forward, reverse].map(fused::op_weights);
                fused::SequenceWeights::Both(f, r)
            };
            let x = fused::SequenceInput::Features(x.clone().into_dispatch());
            let lengths = masks.map(StepMasks::lengths);
            let inside = self.inside(training);
            if let Some(done) =
                fused::run_layer(cell, x, weights, &[f, r], lengths, self.kernels, inside)
            {
                return done;
            }
        }
        let directions = std::iter::once((&layer.forward, Direction::Forward))
            .chain(layer.reverse.iter().map(|w| (w, Direction::Reverse)));
        let (mut outputs, lasts): (Vec<_>, Vec<_>) = directions
            .zip(starts)
            .map(|((weights, direction), start)| {
                self.run_direction(weights, x, start, direction, masks, training)
            })
            .unzip();
        let out = if outputs.len() == 1 {
            outputs.remove(0)
        } else {
            Tensor::cat(outputs, 2)
        };
        (out, lasts)
    }

    /// One layer and direction over time-major `x` `[T, B, I]`: outputs `[T, B, R]`, final state.
    fn run_direction(
        &self,
        weights: &CellWeights,
        x: &Tensor<3>,
        mut state: CellState,
        direction: Direction,
        masks: Option<&StepMasks>,
        training: bool,
    ) -> (Tensor<3>, CellState) {
        if let Some(cell) = self.fused_cell() {
            let op_weights = || fused::SequenceWeights::One(fused::op_weights(weights), direction);
            let input = fused::SequenceInput::Features(x.clone().into_dispatch());
            let lengths = masks.map(StepMasks::lengths);
            let states = &[&state];
            if let Some((out, mut lasts)) = fused::run_layer(
                cell,
                input,
                op_weights,
                states,
                lengths,
                self.kernels,
                self.inside(training),
            ) {
                return (out, lasts.remove(0));
            }
        }
        let [steps, batch, width] = x.dims();
        let gh = weights.gate_rows();
        // One GEMM for the input projection of the whole sequence.
        let x_proj = weights
            .input_affine()
            .apply(x.clone().reshape([steps * batch, width]))
            .reshape([steps, batch, gh]);
        let recurrent = self.cell.prepare(weights);
        let device = x.device();
        let p = self.regularise.recurrent_dropout;
        let dropped = dropout_mask(p, state.hidden.dims(), &device, training);
        let zoneout = (self.regularise.zoneout > 0.0)
            .then(|| Zoneout::new(self.regularise.zoneout, steps, &state, training));
        let mut x_steps = split_steps(x_proj);
        let mut outputs: Vec<Option<Tensor<2>>> = vec![None; steps];
        for t in direction.times(steps) {
            let x_t = x_steps[t]
                .take()
                .expect("each step once")
                .reshape([batch, gh]);
            let mut next = self.cell.step(
                &recurrent,
                x_t,
                state.clone(),
                dropped.as_ref(),
                self.kernels,
            );
            if let Some(zoneout) = &zoneout {
                next = zoneout.apply(t, next, &state);
            }
            match masks.and_then(|m| m.at(t)) {
                None => {
                    outputs[t] = Some(next.hidden.clone());
                    state = next;
                }
                Some((keep, skip)) => {
                    outputs[t] = Some(next.hidden.clone() * keep.clone());
                    state = next.blend(state, keep, skip);
                }
            }
        }
        let outputs = outputs
            .into_iter()
            .map(|o| o.expect("every step ran"))
            .collect();
        (Tensor::stack(outputs, 0), state)
    }

    /// Splits a user state (`h` `[L*D, B, R]`, `c` `[L*D, B, H]`) into per-layer-direction cell
    /// states, or makes zeros.
    fn initial_states(
        &self,
        state: Option<RecurrentState>,
        batch: usize,
        device: &Device,
    ) -> Result<Vec<CellState>> {
        let n = self.layers.len() * self.num_directions();
        let widths = [self.state_width(), self.hidden_size];
        let Some(state) = state else {
            let zeros = |w| Tensor::<2>::zeros([batch, w], device);
            return Ok((0..n)
                .map(|_| CellState {
                    hidden: zeros(widths[0]),
                    cell: C::HAS_CELL.then(|| zeros(widths[1])),
                })
                .collect());
        };
        self.check_state(&state, batch)?;
        let split = |t: Tensor<3>, width: usize| {
            t.chunk(n, 0)
                .into_iter()
                .map(move |s| s.reshape([batch, width]))
        };
        let cells: Vec<Option<Tensor<2>>> = match state.cell {
            Some(c) => split(c, widths[1]).map(Some).collect(),
            None => vec![None; n],
        };
        Ok(split(state.hidden, widths[0])
            .zip(cells)
            .map(|(hidden, cell)| CellState { hidden, cell })
            .collect())
    }

    /// Checks that `state` is a state of this stack for a batch of `batch`: `h` `[L*D, B, R]`
    /// and, for an LSTM only, `c` `[L*D, B, H]`.
    pub(super) fn check_state(&self, state: &RecurrentState, batch: usize) -> Result<()> {
        let n = self.layers.len() * self.num_directions();
        let widths = [self.state_width(), self.hidden_size];
        let check = |which: &'static str, width: usize, t: &Tensor<3>| {
            let (expected, got) = (vec![n, batch, width], t.dims().to_vec());
            if got == expected {
                Ok(())
            } else {
                Err(SequentError::StateShape {
                    which,
                    expected,
                    got,
                })
            }
        };
        check("hidden", widths[0], &state.hidden)?;
        match (&state.cell, C::HAS_CELL) {
            (Some(c), true) => check("cell", widths[1], c)?,
            (None, false) => {}
            _ => {
                return Err(SequentError::StateKind {
                    cell: C::NAME,
                    needs_cell: C::HAS_CELL,
                });
            }
        }
        Ok(())
    }

    fn stack_states(finals: Vec<CellState>) -> RecurrentState {
        let cells: Option<Vec<Tensor<2>>> = finals.iter().map(|s| s.cell.clone()).collect();
        RecurrentState {
            hidden: Tensor::stack(finals.into_iter().map(|s| s.hidden).collect(), 0),
            cell: cells.map(|c| Tensor::stack(c, 0)),
        }
    }
}

/// Splits time-major `x` `[T, B, F]` into its `T` steps `[1, B, F]`, in two levels.
///
/// Under composed autodiff the backward of each slice writes a zero tensor of the sliced tensor's
/// full size, so `T` slices of `[T, B, F]` cost `O(T^2 B F)`. Slicing first into about `sqrt(T)`
/// chunks and then each chunk into steps costs `O(2 T^1.5 B F)` instead (3x less at `T = 35`,
/// 9x at `T = 350`), with the same single input GEMM before it.
fn split_steps(x: Tensor<3>) -> Vec<Option<Tensor<3>>> {
    let steps = x.dims()[0];
    let chunk = (steps as f64).sqrt().ceil().max(1.0) as usize;
    x.split(chunk, 0)
        .into_iter()
        .flat_map(|c| c.split(1, 0))
        .map(Some)
        .collect()
}

/// A padded batch's lengths, and its per-step 0/1 masks `[B, 1]` for the steps of the composed
/// path (made when it first asks; `None` at steps where every sequence is valid).
struct StepMasks {
    lengths: Vec<usize>,
    total: usize,
    device: Device,
    steps: OnceCell<Vec<Option<(Tensor<2>, Tensor<2>)>>>,
}

impl StepMasks {
    fn new(lengths: &[usize], batch: usize, steps: usize, device: &Device) -> Result<Self> {
        if lengths.len() != batch {
            return Err(SequentError::LengthsCount {
                batch,
                got: lengths.len(),
            });
        }
        if let Some((index, &length)) = lengths
            .iter()
            .enumerate()
            .find(|(_, l)| **l == 0 || **l > steps)
        {
            return Err(SequentError::Length {
                index,
                length,
                steps,
            });
        }
        Ok(Self {
            lengths: lengths.to_vec(),
            total: steps,
            device: device.clone(),
            steps: OnceCell::new(),
        })
    }

    fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    fn at(&self, t: usize) -> Option<(&Tensor<2>, &Tensor<2>)> {
        let steps = self.steps.get_or_init(|| {
            let (lengths, batch) = (&self.lengths, self.lengths.len());
            (0..self.total)
                .map(|t| {
                    if lengths.iter().all(|&l| t < l) {
                        return None;
                    }
                    let keep: Vec<f32> = lengths
                        .iter()
                        .map(|&l| if t < l { 1.0 } else { 0.0 })
                        .collect();
                    let skip: Vec<f32> = keep.iter().map(|k| 1.0 - k).collect();
                    let tensor = |v: Vec<f32>| {
                        Tensor::<2>::from_data(TensorData::new(v, [batch, 1]), &self.device)
                    };
                    Some((tensor(keep), tensor(skip)))
                })
                .collect()
        });
        steps.get(t).and_then(|m| m.as_ref().map(|(k, s)| (k, s)))
    }
}
