//! Fused recurrent ops: a layer direction (or both directions of a bidirectional layer) as one op,
//! forward and backward, on the CPU and the GPU backends.
//!
//! A composed LSTM step runs each gate activation as its own tensor op with its own backward node;
//! a composed layer is a handful of ops per time step. The whole-sequence op runs a layer's time
//! loop (and its BPTT) inside one op. On Flex and NdArray (the host engine) its time loop runs
//! on the host with `W_hh` packed once for a small GEMM kernel of its own and the batch split
//! between the cores (or, for batches of one or two, the weights read in place by a dot-product
//! kernel whose weight rows are split between the cores), with vectorised activations ([`math`]);
//! the bidirectional op runs both directions at the same time and writes their outputs side by
//! side. On wgpu and cuda (the cube engine) it is the input projection as one GEMM and one CubeCL
//! recurrence kernel for all steps and directions, and its backward one BPTT kernel and one GEMM
//! for `dW_hh` (`cube`). The single-step ops (padded batches, `RecurrentCell::step`) are fused
//! too: on the host, and as CubeCL kernels for the LSTM and GRU steps. The composed tensor ops
//! are the reference the fused paths are tested against ([`Kernels::Composed`]).
//! [`Kernels::engine`] decides which runs; `docs/architecture.md` follows one forward and one
//! backward call through these files.

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
mod direct;
mod kernels;
mod ops;
mod packed;
mod sequence;
mod team;

use burn::backend::Dispatch;
use burn::module::Param;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::regularise::{Regularisation, Zoneout, dropout_mask};
use super::state::CellState;
use super::weights::CellWeights;

pub use ops::{
    DirectionWeights, FusedCellOps, InitialState, LayerNorms, Projection, RecurrentMask,
    Regularisers, SequenceInput, SequenceWeights, ZoneoutMasks,
};
pub use sequence::{Direction, FusedCell};

/// Which kernels the recurrent layers (and the losses and optimiser built on them) run: sequent's
/// fused kernels where the device has them, or the composed tensor ops everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kernels {
    /// The fused kernels of the device's [`Engine`], the composed ops where it has none.
    #[default]
    Fused,
    /// Always the composed tensor ops (the reference path).
    Composed,
}

/// The kernels a device runs: the one place that decides between the fused paths and the
/// composed tensor ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Flex and NdArray: every fused op on the host (the whole-sequence op, the step ops, the
    /// cross-entropy, the fused Adam step), with hand-written backward passes.
    Host,
    /// wgpu and cuda: the whole-sequence op and the LSTM and GRU steps as CubeCL kernels
    /// (the backward of the sequence op's weight products through the backend's GEMM).
    Cube,
    /// The composed tensor ops.
    Composed,
}

impl Kernels {
    /// The kernels that run on `device` (with or without autodiff).
    pub fn engine(self, device: &Device) -> Engine {
        #[allow(unused_imports)]
        use burn::backend::DispatchDevice;
        if self == Kernels::Composed {
            return Engine::Composed;
        }
        match device.clone().inner().as_dispatch() {
            #[cfg(feature = "flex")]
            DispatchDevice::Flex(_) => Engine::Host,
            #[cfg(feature = "ndarray")]
            DispatchDevice::NdArray(_) => Engine::Host,
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            DispatchDevice::Cube(_) => Engine::Cube,
            _ => Engine::Composed,
        }
    }
}

/// Whether `device` runs the host kernels ([`Engine::Host`]) when they are asked for.
pub fn on_host(device: &Device) -> bool {
    Kernels::Fused.engine(device) == Engine::Host
}

/// Fused LSTM pointwise step: returns `(h, c)` from the gates `[B, 4H]` and `c_prev` `[B, H]`
/// (the CubeCL kernels on wgpu and cuda, the host op on Flex and NdArray).
pub(crate) fn lstm(gates: Tensor<2>, c_prev: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [b, h] = c_prev.dims();
    let cube = Kernels::Fused.engine(&gates.device()) == Engine::Cube;
    let (gates, c_prev) = (gates.into_dispatch(), c_prev.into_dispatch());
    let out = Tensor::<3>::from_dispatch(match cube {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        true => <Dispatch as cube::CubeCellOps>::lstm_step(gates, c_prev),
        _ => <Dispatch as FusedCellOps>::lstm_pointwise(gates, c_prev),
    });
    (
        out.clone().narrow(0, 0, 1).reshape([b, h]),
        out.narrow(0, 1, 1).reshape([b, h]),
    )
}

/// Fused GRU (reset-after) pointwise step: `h'` from `x_proj`, `h_proj` `[B, 3H]`, `h_prev`
/// (the CubeCL kernels on wgpu and cuda, the host op on Flex and NdArray).
pub(crate) fn gru(x_proj: Tensor<2>, h_proj: Tensor<2>, h_prev: Tensor<2>) -> Tensor<2> {
    let cube = Kernels::Fused.engine(&h_prev.device()) == Engine::Cube;
    let [x, hp, prev] = [x_proj, h_proj, h_prev].map(|t| t.into_dispatch());
    Tensor::from_dispatch(match cube {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        true => <Dispatch as cube::CubeCellOps>::gru_step(x, hp, prev),
        _ => <Dispatch as FusedCellOps>::gru_pointwise(x, hp, prev),
    })
}

/// Fused `tanh`.
pub(crate) fn tanh(x: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedCellOps>::tanh_pointwise(
        x.into_dispatch(),
    ))
}

/// A layer direction's weights as the sequence op takes them (zero biases for a layer without
/// biases), with its projection and layer norms.
pub(crate) fn op_weights(weights: &CellWeights) -> DirectionWeights<Dispatch> {
    let bias = |b: &Option<Param<Tensor<1>>>| match b {
        Some(b) => b.val(),
        None => Tensor::zeros([weights.gate_rows()], &weights.weight_ih.device()),
    };
    let norms = weights.layer_norm.iter().flat_map(|n| {
        let norms = [Some(&n.ih), Some(&n.hh), n.c.as_ref()];
        norms.into_iter().flatten().flat_map(|n| {
            let gamma = n.gamma.val();
            let beta = match &n.beta {
                Some(b) => b.val(),
                None => gamma.zeros_like(),
            };
            [gamma, beta].map(Tensor::into_dispatch)
        })
    });
    DirectionWeights {
        w_ih: weights.weight_ih.val().into_dispatch(),
        b_ih: bias(&weights.bias_ih).into_dispatch(),
        w_hh: weights.weight_hh.val().into_dispatch(),
        b_hh: bias(&weights.bias_hh).into_dispatch(),
        projection: match &weights.weight_hr {
            Some(w) => Projection::On(w.val().into_dispatch()),
            None => Projection::Off,
        },
        norms: LayerNorms::from_tensors(norms.collect()),
    }
}

/// What acts inside a layer's recurrence besides the cell: the regularisers (in training or not),
/// the layer norms of a layer-normalised cell and an LSTM's projection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inside<'a> {
    /// Recurrent dropout and zoneout (and the options outside the op).
    pub regularise: &'a Regularisation,
    /// Whether the forward pass trains.
    pub training: bool,
    /// Whether the cell is layer-normalised.
    pub normalised: bool,
    /// Whether the LSTM has a projection.
    pub projected: bool,
}

/// Whether the whole-sequence op of `cell` applies to a layer input of `steps` steps of `batch`
/// rows on `device`, `padded` (with lengths) or not, whatever acts inside its recurrence: on the
/// cube engine always; on the host engine for its cells' unpadded input of more than one step
/// or of a batch small enough for the op's products to read the weights in place (one step of a
/// larger batch would pack `W_hh` for a single product).
pub(crate) fn applies(
    cell: FusedCell,
    (steps, batch): (usize, usize),
    padded: bool,
    device: &Device,
    kernels: Kernels,
) -> bool {
    match kernels.engine(device) {
        Engine::Host => {
            cell.on_host() && !padded && (steps > 1 || batch <= sequence::DIRECT_MAX_ROWS)
        }
        Engine::Cube => true,
        Engine::Composed => false,
    }
}

/// A unidirectional stack prepared to run one time step of all its layers as one op: on the
/// cube engine, its weights packed once for one kernel launch a step (`cube/stack_step.rs`).
#[derive(Clone, Debug)]
pub(crate) enum StackStep {
    /// The cube engine's.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    Cube(cube::PackedStack),
}

impl StackStep {
    /// The op for a stack of `cell` with the weights `layers` (first layer first) on `device`,
    /// if it applies: on the cube engine, not differentiated (`device` without autodiff), with
    /// no layer norm, projection or zoneout `inside` the recurrence.
    pub(crate) fn new(
        cell: FusedCell,
        layers: &[&CellWeights],
        (device, kernels): (&Device, Kernels),
        inside: Inside<'_>,
    ) -> Option<Self> {
        let applies = kernels.engine(device) == Engine::Cube
            && !device.is_autodiff()
            && !inside.normalised
            && !inside.projected
            && inside.regularise.zoneout == 0.0;
        if !applies {
            return None;
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        return Some(StackStep::Cube(cube::PackedStack::new(
            cell,
            layers.iter().map(|w| op_weights(w)).collect(),
        )));
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        {
            let _ = (cell, layers);
            None
        }
    }

    /// One step of every layer from the first layer's input `x` `[B, I]` and the state `h0`,
    /// `c0` (the LSTM's) `[L, B, H]`: the last layer's output `[B, H]`, the new `h` and (LSTM)
    /// `c`, `[L, B, H]`.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused_variables))]
    pub(crate) fn step(
        &self,
        x: Tensor<2>,
        h0: Tensor<3>,
        c0: Option<Tensor<3>>,
    ) -> (Tensor<2>, Tensor<3>, Option<Tensor<3>>) {
        match *self {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            StackStep::Cube(ref packed) => packed.step(x, h0, c0),
        }
    }
}

/// `[B, H]` slab `t`, columns `d*H .. (d+1)*H`, of an op's output `[S, B, D*H]`.
fn state_at(out: &Tensor<3>, t: usize, d: usize, h: usize) -> Tensor<2> {
    let [_, batch, width] = out.dims();
    let slab = out.clone().narrow(0, t, 1);
    // A slice is an op with a backward node even when it takes everything.
    let slab = if width == h {
        slab
    } else {
        slab.narrow(2, d * h, h)
    };
    slab.reshape([batch, h])
}

/// Direction `d`'s (of `dirs`) final cell state `[B, H]` from an op's output `[S, B, D*R]`,
/// whose slabs from `steps` on hold the final cell states `[B, D*H]` (then zeros or scratch):
/// slab `steps` itself where `H = R` (the host op's from its `T`, the cube op's from `T + 1`).
fn final_cell(out: &Tensor<3>, steps: usize, (d, dirs): (usize, usize), hc: usize) -> Tensor<2> {
    let [slabs, batch, width] = out.dims();
    if hc * dirs == width {
        return state_at(out, steps, d, hc);
    }
    let tail = out.clone().narrow(0, steps, slabs - steps);
    let cells = tail
        .reshape([(slabs - steps) * batch * width])
        .narrow(0, 0, batch * dirs * hc)
        .reshape([batch, dirs * hc]);
    if dirs == 1 {
        cells
    } else {
        cells.narrow(1, d * hc, hc)
    }
}

/// Runs a layer of `cell` (one direction, or both at once) as one op over `input` from `states`
/// (one a direction, the forward direction first) with the `weights` it makes, the rows `lengths`
/// steps long if given (PyTorch's packed sequences), if the op applies ([`applies`]): the host's
/// op or the cube engine's (`cube::sequence`). Returns the outputs `[T, B, D*R]` (time order;
/// for both directions each row the forward direction's values and then the reverse one's: the
/// next layer's input as it is, and in the backward no split of its gradient) and each
/// direction's final state. The reverse direction runs backwards in time over the input as it
/// is (no flipped copies). What acts `inside` the recurrence runs inside the op, the regularisers'
/// masks drawn here a direction at a time in the composed path's order: recurrent dropout's on
/// `h_{t-1}` in the recurrent product, then zoneout's for `h` and (LSTM) `c`.
pub(crate) fn run_layer(
    cell: FusedCell,
    input: SequenceInput<Dispatch>,
    weights: impl FnOnce() -> SequenceWeights<Dispatch>,
    states: &[&CellState],
    lengths: Option<&[usize]>,
    kernels: Kernels,
    inside: Inside<'_>,
) -> Option<(Tensor<3>, Vec<CellState>)> {
    let (steps, batch) = input.steps_and_batch();
    let device = states[0].hidden.device();
    let Inside {
        regularise,
        training,
        ..
    } = inside;
    if !applies(cell, (steps, batch), lengths.is_some(), &device, kernels) {
        return None;
    }
    let weights = weights();
    let h = states[0].hidden.dims()[1];
    let stack = |s: Vec<Tensor<2>>| match <[Tensor<2>; 1]>::try_from(s) {
        Ok([one]) => one.into_dispatch(),
        Err(s) => Tensor::stack::<3>(s, 0).into_dispatch(),
    };
    // Zoneout's masks: values on the host for the host's op, tensors for the cube engine's.
    let host = on_host(&device);
    let (mut masks, mut zoneouts, mut zone_tensors) = (Vec::new(), Vec::new(), Vec::new());
    for s in states {
        let p = regularise.recurrent_dropout_in(training);
        masks.extend(dropout_mask(p, s.hidden.dims(), &device, true));
        if regularise.zoneout > 0.0 && training {
            if host {
                zoneouts.extend(Zoneout::host_masks(regularise.zoneout, steps, s));
            } else {
                zone_tensors.extend(Zoneout::masks(regularise.zoneout, steps, s));
            }
        }
    }
    let recurrent = if masks.is_empty() {
        RecurrentMask::Off
    } else {
        RecurrentMask::On(stack(masks))
    };
    let zoneout = if regularise.zoneout == 0.0 {
        ZoneoutMasks::Off
    } else if training {
        ZoneoutMasks::Masks(zoneouts)
    } else {
        ZoneoutMasks::Expectation(regularise.zoneout)
    };
    let regularisers = Regularisers { recurrent, zoneout };
    let h0 = stack(states.iter().map(|s| s.hidden.clone()).collect());
    let state = if cell.has_cell_state() {
        let cells = states
            .iter()
            .map(|s| s.cell.clone().expect("an LSTM state has a cell"));
        InitialState::HiddenCell(h0, stack(cells.collect()))
    } else {
        InitialState::Hidden(h0)
    };
    // The width `H` of the cell states, `R = h` unless the LSTM has a projection.
    let hc = states[0].cell.as_ref().map_or(0, |c| c.dims()[1]);
    if !host {
        // The cube op's output ends with each row's final `h`, then the final `c` `[B, D*H]`.
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            let mask = match regularisers.recurrent {
                RecurrentMask::On(mask) => Some(mask),
                RecurrentMask::Off => None,
            };
            let zoneout = match regularisers.zoneout {
                ZoneoutMasks::Off => cube::Zoneout::Off,
                ZoneoutMasks::Masks(_) => cube::Zoneout::Masks(zone_tensors),
                ZoneoutMasks::Expectation(p) => cube::Zoneout::Expected(p),
            };
            let inside = (lengths, mask, zoneout);
            let out = cube::sequence(cell, input, weights, state, inside);
            let finals = (0..states.len())
                .map(|d| CellState {
                    hidden: state_at(&out, steps, d, h),
                    cell: cell
                        .has_cell_state()
                        .then(|| final_cell(&out, steps + 1, (d, states.len()), hc)),
                })
                .collect();
            return Some((out.narrow(0, 0, steps), finals));
        }
    }
    let final_state = |out: &Tensor<3>, (d, t): (usize, usize)| CellState {
        hidden: state_at(out, t, d, h),
        cell: cell
            .has_cell_state()
            .then(|| final_cell(out, steps, (d, states.len()), hc)),
    };
    // The time each direction's final state leaves.
    let lasts = match &weights {
        SequenceWeights::One(_, Direction::Forward) => vec![steps - 1],
        SequenceWeights::One(_, Direction::Reverse) => vec![0],
        SequenceWeights::Both(..) => vec![steps - 1, 0],
    };
    let out = Tensor::<3>::from_dispatch(<Dispatch as FusedCellOps>::sequence(
        cell,
        input,
        weights,
        state,
        regularisers,
    ));
    let finals = lasts
        .into_iter()
        .enumerate()
        .map(|dt| final_state(&out, dt))
        .collect();
    // The outputs: all of the op's output, or (LSTM) all but its last slab, the final cell states,
    // through [`FusedCellOps::leading_slabs`], whose backward pads the gradient in one pass.
    // (Slicing off nothing would still cost a backward node and a copy.)
    let outputs = if cell.has_cell_state() {
        Tensor::from_dispatch(<Dispatch as FusedCellOps>::leading_slabs(
            out.into_dispatch(),
            steps,
        ))
    } else {
        out
    };
    Some((outputs, finals))
}
