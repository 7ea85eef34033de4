//! The whole-sequence op on the GPU backends: a layer (one direction, or both at once) as one
//! input-projection GEMM and one recurrence kernel ([`super::recurrence`]); under autodiff its
//! backward is one BPTT kernel, then `dW_hh` and `db_hh` over all steps as one batched GEMM and
//! one sum, while `dx`, `dW_ih` and `db_ih` come from the projection's own backward (a
//! layer-normalised cell's input layer norm, tensor ops between the GEMM and the kernel, with
//! its own too).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice, Tensor, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::ops::permute;
use burn_cubecl::tensor::CubeTensor;

use super::norm::norm_blocks;
use super::recurrence::{
    GRU, GRU_BEFORE, LSTM, NORM_STATS, RNN_RELU, RNN_TANH, ZONE_EXPECTED, ZONE_MASKS, ZONE_OFF,
    gates, recurrence_backward_kernel, recurrence_kernel, regions, trace_blocks,
};
use crate::recurrent::fused::ops::{InitialState, Projection, SequenceInput, SequenceWeights};
use crate::recurrent::fused::sequence::{Direction, FusedCell};
use crate::recurrent::weights::LAYER_NORM_EPSILON;

/// The units of a cube: up to this many `(row, unit)` items of the cube's rows.
pub(super) const CUBE_UNITS: usize = 256;

/// A layer's recurrence on the GPU backends, over its input projection.
///
/// Arguments: `x_proj` `[D, T, B, G*H]` (`x_t W_ih^T + b_ih`, or `LN_ih(x_t W_ih^T) + b_ih`),
/// `w_hh` `[D, G*H, H]`, `b_hh` `[D, G*H]`, `h0` and `c0` `[D, B, H]` (`c0` is read by the LSTM
/// only), the forward direction first, `lengths` `[B]` (each row's steps, as floats), `mask`
/// `[D, B, H]`, recurrent dropout's on `h_{t-1}` in the recurrent product (read only if
/// [`Recurrence::masked`]), `zone`, zoneout's masks (each direction's of `h` `[T, B, R]`, then
/// the LSTM's of `c` `[T, B, H]`, flat one after the other) or its probability `[1]`
/// ([`Recurrence::zoning`]), a projected LSTM's `w_hr` `[D, P, H]` (`[1]`, not read, otherwise:
/// [`Recurrence::projected`]) and a layer-normalised cell's `norm` `[D, 2 N*H]` (the layer
/// norms' gains and biases, see [`super::recurrence`]; `[1, 1]`, not read, otherwise:
/// [`Recurrence::normalised`]); [`Recurrence`] says which cell runs, and in which order of time
/// a single direction runs.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait CubeSequenceOps: Backend {
    /// The layer's output `[T + 1 + E, B, D*R]`: `h_t`, then each row's final `h`, then the
    /// extra regions (the LSTM's final `c` first; see [`super::recurrence`]).
    #[fusion(meta = |x, _w, _b, h0, _c0, _len, _mask, _zone, _w_hr, _norm, run| output_spec(x, h0, *run))]
    #[allow(clippy::too_many_arguments)]
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> FloatTensor<Self>;
    /// The output, the trace `[D, T, B, K*H]` and `h_{t-1}` `[D, T, B, H]` (see
    /// [`super::recurrence`]) for [`Self::recurrence_backward`].
    #[fusion(meta = |x, _w, _b, h0, _c0, _len, _mask, _zone, _w_hr, _norm, run| traced_specs(x, h0, *run))]
    #[allow(clippy::too_many_arguments)]
    fn recurrence_traced(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// BPTT from `grad` (of the output): the gradients of `x_proj`, of the recurrent products
    /// `h W_hh^T` (the GRU's and a layer-normalised cell's; `[1]` for the other cells, whose two
    /// are `x_proj`'s), of `h0`, of `c0` (`[1]` but for the LSTM), of each step's `h_t` (a
    /// projected LSTM's, whose `dW_hr` it gives; `[1]` otherwise) and each row's sums of the
    /// layer norms' gradients (a layer-normalised cell's, `[D, B, 2 N*H]`; `[1]` otherwise).
    #[fusion(meta = |trace, h_prev, _w, _c0, _len, _mask, _zone, _w_hr, _norm, _grad, run| backward_specs(trace, h_prev, *run))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn recurrence_backward(
        trace: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        run: Recurrence,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// What a recurrence op runs: the cell, whether the only direction runs backwards in time,
/// whether recurrent dropout masks `h_{t-1}`, zoneout, and the LSTM's projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// The cell.
    pub cell: FusedCell,
    /// With one direction (`D = 1`): whether it is the reverse one.
    pub reverse_first: bool,
    /// Whether the op reads its `mask` (recurrent dropout in training).
    pub masked: bool,
    /// Zoneout, and what the op reads of its `zone`.
    pub zoning: Zoning,
    /// Whether the LSTM projects `h_t = W_hr (o_t tanh(c_t))` (`h` is then `P` wide).
    pub projected: bool,
    /// Whether the cell is layer-normalised (the op reads its `norm`).
    pub normalised: bool,
}

/// Zoneout in a recurrence op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zoning {
    /// None (`zone` is not read).
    Off,
    /// In training: `zone` holds the masks.
    Masks,
    /// In evaluation: `zone` holds the probability, the masks' expectation.
    Expected,
}

impl Zoning {
    /// The kernels' code of the zoning.
    fn code(self) -> u32 {
        match self {
            Zoning::Off => ZONE_OFF,
            Zoning::Masks => ZONE_MASKS,
            Zoning::Expected => ZONE_EXPECTED,
        }
    }
}

/// The kernels' code of `cell`.
pub(super) fn code(cell: FusedCell) -> u32 {
    match cell {
        FusedCell::Lstm => LSTM,
        FusedCell::Gru => GRU,
        FusedCell::RnnTanh => RNN_TANH,
        FusedCell::RnnRelu => RNN_RELU,
        FusedCell::GruResetBefore => GRU_BEFORE,
    }
}

/// `[D, T, B]`, the cell's `H` and the width `R` of `h` from `x_proj` `[D, T, B, G*H]` and `h0`
/// `[D, B, R]`.
fn dims(x_proj: &Shape, h0: &Shape, cell: FusedCell) -> ([usize; 3], usize, usize) {
    let [d, t, b] = [x_proj[0], x_proj[1], x_proj[2]];
    ([d, t, b], x_proj[3] / cell.gates(), h0[2])
}

/// The number of `H`-wide blocks a step keeps in the trace: a projected LSTM's `m_t` besides,
/// and a layer-normalised cell's standardised values.
fn blocks(run: Recurrence) -> usize {
    let norms = if run.normalised {
        norm_blocks(code(run.cell))
    } else {
        0
    };
    trace_blocks(code(run.cell)) + usize::from(run.projected) + norms
}

/// The values a step keeps in the trace besides its blocks: a layer-normalised cell's `r`s.
fn stats(run: Recurrence) -> usize {
    if run.normalised { NORM_STATS } else { 0 }
}

/// The cell's units `H` from the trace's shape.
fn trace_units(trace: &Shape, run: Recurrence) -> usize {
    (trace[3] - stats(run)) / blocks(run)
}

/// The output's shape: `[T + 1 + E, B, D*R]`, the `E` slabs holding the extra region's rows
/// `[B, D*H]` (a projected LSTM's two of them).
fn output_shape(x_proj: &Shape, h0: &Shape, run: Recurrence) -> Shape {
    let ([d, t, b], h, r) = dims(x_proj, h0, run.cell);
    let regions = regions(code(run.cell), run.projected, run.normalised);
    Shape::new([t + 1 + (regions * h).div_ceil(r), b, d * r])
}

/// The trace's and `h_prev`'s shapes.
fn trace_shapes(x_proj: &Shape, h0: &Shape, run: Recurrence) -> [Shape; 2] {
    let ([d, t, b], h, r) = dims(x_proj, h0, run.cell);
    [
        Shape::new([d, t, b, blocks(run) * h + stats(run)]),
        Shape::new([d, t, b, r]),
    ]
}

/// The gradients' shapes: `x_proj`'s, the recurrent pre-activations', `h0`'s, `c0`'s, the
/// projection's outputs' and the layer norms' sums.
fn grad_shapes(trace: &Shape, h_prev: &Shape, run: Recurrence) -> [Shape; 6] {
    let [d, t, b, r] = [trace[0], trace[1], trace[2], h_prev[3]];
    let h = trace_units(trace, run);
    let gates = Shape::new([d, t, b, gates(code(run.cell)) * h]);
    let none = Shape::new([1]);
    [
        gates.clone(),
        if run.cell == FusedCell::Gru || run.normalised {
            gates
        } else {
            none.clone()
        },
        Shape::new([d, b, r]),
        if run.cell.has_cell_state() {
            Shape::new([d, b, h])
        } else {
            none.clone()
        },
        if run.projected {
            h_prev.clone()
        } else {
            none.clone()
        },
        if run.normalised {
            Shape::new([d, b, 2 * norm_blocks(code(run.cell)) * h])
        } else {
            none
        },
    ]
}

fn output_spec(x_proj: &TensorSpec, h0: &TensorSpec, run: Recurrence) -> TensorSpec {
    TensorSpec::new(output_shape(&x_proj.shape, &h0.shape, run), x_proj.dtype)
}

fn traced_specs(
    x_proj: &TensorSpec,
    h0: &TensorSpec,
    run: Recurrence,
) -> (TensorSpec, TensorSpec, TensorSpec) {
    let [trace, h_prev] = trace_shapes(&x_proj.shape, &h0.shape, run);
    let spec = |shape| TensorSpec::new(shape, x_proj.dtype);
    (output_spec(x_proj, h0, run), spec(trace), spec(h_prev))
}

fn backward_specs(
    trace: &TensorSpec,
    h_prev: &TensorSpec,
    run: Recurrence,
) -> (
    TensorSpec,
    TensorSpec,
    TensorSpec,
    TensorSpec,
    TensorSpec,
    TensorSpec,
) {
    let [a, b, c, d, e, f] = grad_shapes(&trace.shape, &h_prev.shape, run)
        .map(|shape| TensorSpec::new(shape, trace.dtype));
    (a, b, c, d, e, f)
}

/// The launch grid of `batch` rows of `dirs` directions of `h` units: rows per cube, the cube
/// count and its dimension. A cube of several rows has a unit for each of its items, and one
/// with more items than units has one row, so each unit's items are of one row (which the
/// layer norms' row sums, `super::norm`, build on).
pub(super) fn grid(batch: usize, dirs: usize, h: usize) -> (usize, CubeCount, CubeDim) {
    let rows = (CUBE_UNITS / h).clamp(1, batch);
    let units = (rows * h).min(CUBE_UNITS).next_multiple_of(32) as u32;
    let count = CubeCount::Static(batch.div_ceil(rows) as u32, dirs as u32, 1);
    (rows, count, CubeDim::new_1d(units))
}

/// A fresh `f32` tensor of `shape` on `like`'s device.
pub(super) fn empty(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device::<f32>(like.client.clone(), like.device.clone(), shape)
}

/// The forward kernel, with the trace (`keep`) or without.
fn forward(
    [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm]: [CubeTensor; 10],
    run: Recurrence,
    keep: bool,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let Recurrence {
        cell,
        reverse_first,
        masked,
        zoning,
        projected,
        normalised,
    } = run;
    let x_proj = into_contiguous(x_proj);
    // `W_hh` transposed to `[D, R, G*H]` and `W_hr` to `[D, H, P]`: the units of a cube read a
    // row of each together.
    let w_t = into_contiguous(permute(w_hh, &[0, 2, 1]));
    let w_hr = if projected {
        into_contiguous(permute(w_hr, &[0, 2, 1]))
    } else {
        w_hr
    };
    let [b_hh, h0, c0, lengths, mask, zone, norm] =
        [b_hh, h0, c0, lengths, mask, zone, norm].map(into_contiguous);
    let (xs, hs) = (x_proj.meta.shape().clone(), h0.meta.shape().clone());
    let out = empty(&x_proj, output_shape(&xs, &hs, run));
    let [trace, h_prev] = if keep {
        trace_shapes(&xs, &hs, run).map(|s| empty(&x_proj, s))
    } else {
        [(); 2].map(|_| empty(&x_proj, Shape::new([1])))
    };
    let ([dirs, _, batch], h, _) = dims(&xs, &hs, cell);
    let (rows, count, dim) = grid(batch, dirs, h);
    recurrence_kernel::launch::<f32>(
        &out.client,
        count,
        dim,
        x_proj.into_tensor_arg(),
        w_t.into_tensor_arg(),
        b_hh.into_tensor_arg(),
        h0.into_tensor_arg(),
        c0.into_tensor_arg(),
        lengths.into_tensor_arg(),
        mask.into_tensor_arg(),
        zone.into_tensor_arg(),
        w_hr.into_tensor_arg(),
        norm.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        trace.clone().into_tensor_arg(),
        h_prev.clone().into_tensor_arg(),
        u32::from(reverse_first),
        code(cell),
        rows,
        keep,
        masked,
        zoning.code(),
        projected,
        normalised,
    );
    (out, trace, h_prev)
}

impl CubeSequenceOps for CubeBackend {
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> FloatTensor<Self> {
        forward(
            [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm],
            run,
            false,
        )
        .0
    }

    fn recurrence_traced(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        forward(
            [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm],
            run,
            true,
        )
    }

    fn recurrence_backward(
        trace: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        run: Recurrence,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let [
            trace,
            h_prev,
            w_hh,
            c0,
            lengths,
            mask,
            zone,
            w_hr,
            norm,
            grad,
        ] = [
            trace, h_prev, w_hh, c0, lengths, mask, zone, w_hr, norm, grad,
        ]
        .map(into_contiguous);
        let shapes = grad_shapes(trace.meta.shape(), h_prev.meta.shape(), run);
        let [d_x, d_h, d_h0, d_c0, d_hr, d_norm] = shapes.map(|s| empty(&trace, s));
        let ts = trace.meta.shape().clone();
        let (rows, count, dim) = grid(ts[2], ts[0], trace_units(&ts, run));
        let client = trace.client.clone();
        recurrence_backward_kernel::launch::<f32>(
            &client,
            count,
            dim,
            trace.into_tensor_arg(),
            h_prev.into_tensor_arg(),
            w_hh.into_tensor_arg(),
            c0.into_tensor_arg(),
            lengths.into_tensor_arg(),
            mask.into_tensor_arg(),
            zone.into_tensor_arg(),
            w_hr.into_tensor_arg(),
            norm.into_tensor_arg(),
            grad.into_tensor_arg(),
            d_x.clone().into_tensor_arg(),
            d_h.clone().into_tensor_arg(),
            d_h0.clone().into_tensor_arg(),
            d_c0.clone().into_tensor_arg(),
            d_hr.clone().into_tensor_arg(),
            d_norm.clone().into_tensor_arg(),
            u32::from(run.reverse_first),
            code(run.cell),
            rows,
            run.masked,
            run.zoning.code(),
            run.projected,
            run.normalised,
        );
        (d_x, d_h, d_h0, d_c0, d_hr, d_norm)
    }
}

/// The backward of [`CubeSequenceOps::recurrence`] under autodiff. Parents: `x_proj`, `w_hh`,
/// `b_hh`, `h0`, `c0` (the LSTM's only), `w_hr` (a projected LSTM's only), `norm` (a
/// layer-normalised cell's only).
#[derive(Debug)]
struct RecurrenceBackward(Recurrence);

impl<B: Backend + CubeSequenceOps> Backward<B, 7> for RecurrenceBackward {
    /// The trace, `h_prev`, `W_hh`, `c0`, the lengths, the mask, zoneout's `zone`, `W_hr` and
    /// the layer norms' `norm`.
    type State = [FloatTensor<B>; 9];

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [n_x, n_w, n_b, n_h0, n_c0, n_hr, n_norm] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let [trace, h_prev, w_hh, c0, lengths, mask, zone, w_hr, norm] = ops.state;
        let (run, cell) = (self.0, self.0.cell);
        let (d_x, d_h, d_h0, d_c0, d_hr, d_norm) = B::recurrence_backward(
            trace.clone(),
            h_prev.clone(),
            w_hh,
            c0,
            lengths,
            mask.clone(),
            zone,
            w_hr,
            norm,
            grad,
            run,
        );
        let shape = d_x.shape();
        let (d, rows, gh, h) = (shape[0], shape[1] * shape[2], shape[3], h_prev.shape()[3]);
        let width = trace.shape()[3];
        let block = |t: FloatTensor<B>, from: usize, to: usize| {
            let all = Slice::full();
            let part = Slice::new(from as isize, Some(to as isize), 1);
            B::float_slice(t, &[all, all, part])
        };
        // `dW_hr = sum_t dh_t^T m_t` `[D, P, H]`, `m_t` the trace's last block.
        if let (Some(node), true) = (n_hr, run.projected) {
            let hc = gh / 4;
            let m = B::float_reshape(trace.clone(), Shape::new([d, rows, width]));
            let d_hr = B::float_reshape(d_hr, Shape::new([d, rows, h]));
            let d_w = B::float_matmul(B::float_swap_dims(d_hr, 1, 2), block(m, 5 * hc, 6 * hc));
            grads.register::<B>(node.id, d_w);
        }
        // The recurrent products' gradients, `[D, T*B, G*H]` (a layer norm's input's).
        let d_rec = if cell == FusedCell::Gru || run.normalised {
            d_h
        } else {
            d_x.clone()
        };
        let d_rec = B::float_reshape(d_rec, Shape::new([d, rows, gh]));
        if let Some(node) = n_w {
            // The recurrent product's input: `h_{t-1}`, times the mask with recurrent dropout.
            let h_prev = if run.masked {
                let [t, b] = [shape[1], shape[2]];
                let mask = B::float_reshape(mask, Shape::new([d, 1, b, h]));
                B::float_mul(h_prev, B::float_expand(mask, Shape::new([d, t, b, h])))
            } else {
                h_prev
            };
            let h_prev = B::float_reshape(h_prev, Shape::new([d, rows, h]));
            // `dW = dG^T H_prev` `[D, G*H, R]`, one batched GEMM over all steps.
            let product = |dg: FloatTensor<B>, inputs: FloatTensor<B>| {
                B::float_matmul(B::float_swap_dims(dg, 1, 2), inputs)
            };
            let d_w = if cell == FusedCell::GruResetBefore {
                // The `n` block's input is `r h_{t-1}`, kept in the trace's last block.
                let rh = B::float_reshape(trace, Shape::new([d, rows, 5 * h]));
                let rz = product(block(d_rec.clone(), 0, 2 * h), h_prev);
                let n = product(block(d_rec.clone(), 2 * h, 3 * h), block(rh, 4 * h, 5 * h));
                B::float_cat(vec![rz, n], 1)
            } else {
                product(d_rec.clone(), h_prev)
            };
            grads.register::<B>(node.id, d_w);
        }
        // The layer norms' gradients `[D, 2 G*H (+ 2 H)]`: the sums of each row's.
        let d_norm = run.normalised.then(|| {
            let sum = B::float_sum_dim(d_norm, 1);
            let nw = sum.shape()[2];
            B::float_reshape(sum, Shape::new([d, 1, nw]))
        });
        if let Some(node) = n_b {
            let sum = match &d_norm {
                // `b_hh`'s gradient is `beta_hh`'s.
                Some(d_norm) => block(d_norm.clone(), gh, 2 * gh),
                None => B::float_sum_dim(d_rec, 1),
            };
            grads.register::<B>(node.id, B::float_reshape(sum, Shape::new([d, gh])));
        }
        if let (Some(node), Some(d_norm)) = (n_norm, d_norm) {
            let nw = d_norm.shape()[2];
            grads.register::<B>(node.id, B::float_reshape(d_norm, Shape::new([d, nw])));
        }
        if let Some(node) = n_x {
            grads.register::<B>(node.id, d_x);
        }
        if let Some(node) = n_h0 {
            grads.register::<B>(node.id, d_h0);
        }
        if let (Some(node), true) = (n_c0, cell.has_cell_state()) {
            grads.register::<B>(node.id, d_c0);
        }
    }
}

impl<B: Backend + CubeSequenceOps, C: CheckpointStrategy> CubeSequenceOps for Autodiff<B, C> {
    fn recurrence(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> FloatTensor<Self> {
        let nodes = [&x_proj, &w_hh, &b_hh, &h0, &c0, &w_hr, &norm].map(|t| t.node());
        let [x, w, b, h0, c0, len, m, z, w_hr, n] =
            [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm]
                .map(|t| t.into_primitive());
        match RecurrenceBackward(run)
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, trace, h_prev) = B::recurrence_traced(
                    x,
                    w.clone(),
                    b,
                    h0,
                    c0.clone(),
                    len.clone(),
                    m.clone(),
                    z.clone(),
                    w_hr.clone(),
                    n.clone(),
                    run,
                );
                prep.finish([trace, h_prev, w, c0, len, m, z, w_hr, n], out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::recurrence(x, w, b, h0, c0, len, m, z, w_hr, n, run))
            }
        }
    }

    /// The inner backend's traced forward (not differentiated).
    fn recurrence_traced(
        x_proj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        run: Recurrence,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, w, b, h0, c0, len, m, z, w_hr, n] =
            [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm]
                .map(|t| t.into_primitive());
        let (out, trace, h_prev) = B::recurrence_traced(x, w, b, h0, c0, len, m, z, w_hr, n, run);
        (
            Self::from_inner(out),
            Self::from_inner(trace),
            Self::from_inner(h_prev),
        )
    }

    /// The backward kernel on the inner backend (its results are not differentiated again).
    fn recurrence_backward(
        trace: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        lengths: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        zone: FloatTensor<Self>,
        w_hr: FloatTensor<Self>,
        norm: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        run: Recurrence,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let [t, p, w, c, len, m, z, w_hr, n, g] = [
            trace, h_prev, w_hh, c0, lengths, mask, zone, w_hr, norm, grad,
        ]
        .map(|t| t.into_primitive());
        let (a, b, c, d, e, f) = B::recurrence_backward(t, p, w, c, len, m, z, w_hr, n, g, run);
        (
            Self::from_inner(a),
            Self::from_inner(b),
            Self::from_inner(c),
            Self::from_inner(d),
            Self::from_inner(e),
            Self::from_inner(f),
        )
    }
}

/// `[D, ..]`: the directions' tensors stacked (one direction: a new leading axis).
fn stacked<const D: usize, const E: usize>(parts: Vec<Tensor<D>>) -> Tensor<E> {
    match <[Tensor<D>; 1]>::try_from(parts) {
        // One direction: a view with a new axis, not a copy.
        Ok([one]) => one.unsqueeze_dim(0),
        Err(parts) => Tensor::stack(parts, 0),
    }
}

/// The layer norm over the last axis of `y` `[D, N, W]`, with each direction's gain and bias
/// `[D, W]`.
fn layer_norm(y: Tensor<3>, gamma: Tensor<2>, beta: Tensor<2>) -> Tensor<3> {
    let (var, mean) = y.clone().var_mean_bias(2);
    let hat = (y - mean) / var.add_scalar(LAYER_NORM_EPSILON).sqrt();
    hat * gamma.unsqueeze_dim(1) + beta.unsqueeze_dim(1)
}

/// Zoneout as [`sequence`] takes it.
pub(crate) enum Zoneout {
    /// None.
    Off,
    /// In training: each direction's masks `d_t`, of `h` `[T, B, R]` and then (LSTM) of `c`
    /// `[T, B, H]`, the forward direction first.
    Masks(Vec<Tensor<3>>),
    /// In evaluation: the probability `p`.
    Expected(f64),
}

/// A layer from the sequence op's arguments
/// ([`crate::recurrent::fused::FusedCellOps::sequence`]) and the rows' `lengths` (all `T` if
/// none), with recurrent dropout's `mask` (`[B, H]`, or `[D, B, H]` for both directions) if
/// any and zoneout, on the GPU backends: the input projection of both directions as one batched
/// GEMM (or, over token ids, a gather of `W_ih`'s columns), then
/// [`CubeSequenceOps::recurrence`], whose output it returns.
pub(crate) fn sequence(
    cell: FusedCell,
    input: SequenceInput<Dispatch>,
    weights: SequenceWeights<Dispatch>,
    state: InitialState<Dispatch>,
    (lengths, mask, zoneout): (Option<&[usize]>, Option<FloatTensor<Dispatch>>, Zoneout),
) -> Tensor<3> {
    let (directions, reverse_first) = match weights {
        SequenceWeights::One(w, direction) => (vec![w], direction == Direction::Reverse),
        SequenceWeights::Both(f, r) => (vec![f, r], false),
    };
    let dirs = directions.len();
    let mut parts: [Vec<Tensor<1>>; 2] = [Vec::new(), Vec::new()];
    let mut matrices: [Vec<Tensor<2>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    // A layer-normalised cell's: `gamma_ih`, `beta_ih`, and the kernels' `norm`.
    let mut norms: [Vec<Tensor<1>>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for w in directions {
        matrices[0].push(Tensor::from_dispatch(w.w_ih));
        matrices[1].push(Tensor::from_dispatch(w.w_hh));
        parts[0].push(Tensor::from_dispatch(w.b_ih));
        parts[1].push(Tensor::from_dispatch(w.b_hh));
        if let Projection::On(w_hr) = w.projection {
            matrices[2].push(Tensor::from_dispatch(w_hr));
        }
        let mut n = w
            .norms
            .into_tensors()
            .into_iter()
            .map(Tensor::from_dispatch);
        if let (Some(gamma), Some(beta)) = (n.next(), n.next()) {
            norms[0].push(gamma);
            norms[1].push(beta);
            // `gamma_hh`, `beta_hh` (and `gamma_c`, `beta_c`) one after the other.
            norms[2].push(Tensor::cat(n.collect(), 0));
        }
    }
    let [w_ih, w_hh, w_hr] = matrices;
    let projected = !w_hr.is_empty();
    let normalised = !norms[2].is_empty();
    let [w_ih, w_hh]: [Tensor<3>; 2] = [w_ih, w_hh].map(stacked);
    let [b_ih, b_hh]: [Tensor<2>; 2] = parts.map(stacked);
    let gh = w_ih.dims()[1];
    // `[D, T*B, G*H]`: the input projection (without `b_ih`) of every step.
    let (steps, batch, x_proj) = match input {
        SequenceInput::Features(x) => {
            let x = Tensor::<3>::from_dispatch(x);
            let [steps, batch, width] = x.dims();
            let x = x.reshape([1, steps * batch, width]);
            (steps, batch, x.matmul(w_ih.swap_dims(1, 2)))
        }
        SequenceInput::Tokens(ids) => {
            let ids = Tensor::<2, burn::tensor::Int>::from_dispatch(ids);
            let [steps, batch] = ids.dims();
            let columns = w_ih.swap_dims(1, 2).select(1, ids.reshape([steps * batch]));
            (steps, batch, columns)
        }
    };
    let [gamma_ih, beta_ih, norm] = norms;
    let x_proj = if normalised {
        layer_norm(x_proj, stacked(gamma_ih), stacked(beta_ih))
    } else {
        x_proj
    };
    let x_proj = (x_proj + b_ih.unsqueeze_dim::<3>(1)).reshape([dirs, steps, batch, gh]);
    let (h0, c0) = match state {
        InitialState::Hidden(h0) => (h0, None),
        InitialState::HiddenCell(h0, c0) => (h0, Some(c0)),
    };
    // `[B, H]` (one direction) or `[D, B, H]`, as `[D, B, H]`.
    let as_dirs = |t: FloatTensor<Dispatch>| match t.shape().num_dims() {
        2 => Tensor::<2>::from_dispatch(t).unsqueeze_dim::<3>(0),
        _ => Tensor::<3>::from_dispatch(t),
    };
    let h0 = as_dirs(h0);
    let c0 = c0.map(as_dirs).unwrap_or_else(|| h0.clone());
    let lengths: Vec<f32> = match lengths {
        Some(lengths) => lengths.iter().map(|&l| l as f32).collect(),
        None => vec![steps as f32; batch],
    };
    let lengths = Tensor::<1>::from_data(TensorData::new(lengths, [batch]), &h0.device());
    let masked = mask.is_some();
    // Without recurrent dropout the kernels read no mask: a placeholder of one value.
    let mask = mask.map_or_else(|| Tensor::<3>::zeros([1, 1, 1], &h0.device()), as_dirs);
    // The masks one after the other, or `p`, or (not read) a placeholder.
    let one = |v: f64| Tensor::<1>::from_data(TensorData::new(vec![v as f32], [1]), &h0.device());
    let (zoning, zone) = match zoneout {
        Zoneout::Off => (Zoning::Off, one(0.0)),
        Zoneout::Masks(masks) => {
            let flat = masks.into_iter().map(|m| m.flatten::<1>(0, 2)).collect();
            (Zoning::Masks, Tensor::cat(flat, 0))
        }
        Zoneout::Expected(p) => (Zoning::Expected, one(p)),
    };
    // A projected LSTM's `W_hr` `[D, P, H]`, or (not read) a placeholder.
    let w_hr = if projected {
        stacked::<2, 3>(w_hr)
    } else {
        Tensor::zeros([1, 1, 1], &h0.device())
    };
    // A layer-normalised cell's `norm` `[D, 2 G*H (+ 2 H)]`, or (not read) a placeholder.
    let norm = if normalised {
        stacked::<1, 2>(norm)
    } else {
        Tensor::zeros([1, 1], &h0.device())
    };
    let [x_proj, w_hh, b_hh, h0, c0, lengths, mask, zone, w_hr, norm] = [
        x_proj.into_dispatch(),
        w_hh.into_dispatch(),
        b_hh.into_dispatch(),
        h0.into_dispatch(),
        c0.into_dispatch(),
        lengths.into_dispatch(),
        mask.into_dispatch(),
        zone.into_dispatch(),
        w_hr.into_dispatch(),
        norm.into_dispatch(),
    ];
    Tensor::from_dispatch(<Dispatch as CubeSequenceOps>::recurrence(
        x_proj,
        w_hh,
        b_hh,
        h0,
        c0,
        lengths,
        mask,
        zone,
        w_hr,
        norm,
        Recurrence {
            cell,
            reverse_first,
            masked,
            zoning,
            projected,
            normalised,
        },
    ))
}
