//! The fused LSTM and GRU steps as CubeCL kernels (the single-step path: `RecurrentCell::step`
//! and padded batches): the gate activations and the state update in one kernel, and its
//! backward in another, where the composed path runs about a dozen elementwise ops (each its own
//! kernel launch, unless Burn's fusion merges them) with a backward node each. (The tanh RNN's
//! step is one `tanh`, a single kernel already.)

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::{CubeDim, calculate_cube_count_elemwise};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::tensor::CubeTensor;

use super::{gru_backward, lstm_backward, sigmoid};
use crate::host::autodiff::tracked;

/// The LSTM and GRU steps on the GPU backends.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait CubeCellOps: Backend {
    /// LSTM: `gates` `[B, 4H]` (pre-activations `i, f, g, o`), `c_prev` `[B, H]` -> `[2, B, H]`
    /// = `h`, then `c` (as [`super::FusedCellOps::lstm_pointwise`]).
    #[fusion(dtype = c_prev, shape = Shape::new([2, c_prev[0], c_prev[1]]))]
    fn lstm_step(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Its backward: from `gates`, `c_prev` and `grad` `[2, B, H]` (`dL/dh`, `dL/dc`) ->
    /// `dL/dgates` (pre-activations) `[B, 4H]` and `dL/dc_prev` `[B, H]`.
    #[fusion(meta = |gates, c_prev, _grad| (gates.clone(), c_prev.clone()))]
    fn lstm_step_backward(
        gates: FloatTensor<Self>,
        c_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// GRU (reset after): `x_proj`, `h_proj` `[B, 3H]`, `h_prev` `[B, H]` -> `h'` `[B, H]` (as
    /// [`super::FusedCellOps::gru_pointwise`]).
    #[fusion(dtype = h_prev, shape = h_prev)]
    fn gru_step(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Its backward: from the step's inputs and `grad` = `dL/dh'` -> the gradients of `x_proj`,
    /// `h_proj` and `h_prev`.
    #[fusion(meta = |x_proj, h_proj, h_prev, _grad| (x_proj.clone(), h_proj.clone(), h_prev.clone()))]
    fn gru_step_backward(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The activated LSTM gates `s(i), s(f), tanh(g), s(o)` of the unit at `g` of a `[B, 4H]` row.
#[cube]
fn lstm_gates<F: Float>(gates: &Tensor<F>, g: usize, h: usize) -> (F, F, F, F) {
    (
        sigmoid::<F>(gates[g]),
        sigmoid::<F>(gates[g + h]),
        F::tanh(gates[g + 2 * h]),
        sigmoid::<F>(gates[g + 3 * h]),
    )
}

/// The GRU activations `r, z, n` of the unit at `g` of `[B, 3H]` rows `x_proj`, `h_proj`.
#[cube]
fn gru_gates<F: Float>(x_proj: &Tensor<F>, h_proj: &Tensor<F>, g: usize, h: usize) -> (F, F, F) {
    let r = sigmoid::<F>(x_proj[g] + h_proj[g]);
    let z = sigmoid::<F>(x_proj[g + h] + h_proj[g + h]);
    let n = F::tanh(x_proj[g + 2 * h] + r * h_proj[g + 2 * h]);
    (r, z, n)
}

/// One thread per `(row, unit)`: `c = s(f) c_prev + s(i) tanh(g)`, `h = s(o) tanh(c)`.
#[cube(launch)]
fn lstm_step_kernel<F: Float>(gates: &Tensor<F>, c_prev: &Tensor<F>, out: &mut Tensor<F>) {
    let bh = c_prev.len();
    if ABSOLUTE_POS >= bh {
        terminate!();
    }
    let h = c_prev.shape(1);
    let (row, unit) = (ABSOLUTE_POS / h, ABSOLUTE_POS % h);
    let g = row * 4 * h + unit;
    let (i, f, gg, o) = lstm_gates::<F>(gates, g, h);
    let c = f * c_prev[ABSOLUTE_POS] + i * gg;
    out[ABSOLUTE_POS] = o * F::tanh(c);
    out[bh + ABSOLUTE_POS] = c;
}

/// One thread per `(row, unit)`: the step's activations again, then `dL/dgates` and
/// `dL/dc_prev` from `dL/dh` and `dL/dc`.
#[cube(launch)]
fn lstm_step_backward_kernel<F: Float>(
    gates: &Tensor<F>,
    c_prev: &Tensor<F>,
    grad: &Tensor<F>,
    d_gates: &mut Tensor<F>,
    d_c_prev: &mut Tensor<F>,
) {
    let bh = c_prev.len();
    if ABSOLUTE_POS >= bh {
        terminate!();
    }
    let h = c_prev.shape(1);
    let (row, unit) = (ABSOLUTE_POS / h, ABSOLUTE_POS % h);
    let g = row * 4 * h + unit;
    let (i, f, gg, o) = lstm_gates::<F>(gates, g, h);
    let cp = c_prev[ABSOLUTE_POS];
    let tc = F::tanh(f * cp + i * gg);
    let (dh, dc_next) = (grad[ABSOLUTE_POS], grad[bh + ABSOLUTE_POS]);
    let (di, df, dg, d_o, dc) = lstm_backward::<F>(dh, dc_next, i, f, gg, o, tc, cp);
    d_gates[g] = di;
    d_gates[g + h] = df;
    d_gates[g + 2 * h] = dg;
    d_gates[g + 3 * h] = d_o;
    d_c_prev[ABSOLUTE_POS] = dc * f;
}

/// One thread per `(row, unit)`: `r = s(x_r + h_r)`, `z = s(x_z + h_z)`,
/// `n = tanh(x_n + r h_n)`, `h' = (1 - z) n + z h_prev`.
#[cube(launch)]
fn gru_step_kernel<F: Float>(
    x_proj: &Tensor<F>,
    h_proj: &Tensor<F>,
    h_prev: &Tensor<F>,
    out: &mut Tensor<F>,
) {
    if ABSOLUTE_POS >= h_prev.len() {
        terminate!();
    }
    let h = h_prev.shape(1);
    let (row, unit) = (ABSOLUTE_POS / h, ABSOLUTE_POS % h);
    let g = row * 3 * h + unit;
    let (_, z, n) = gru_gates::<F>(x_proj, h_proj, g, h);
    out[ABSOLUTE_POS] = (F::new(1.0) - z) * n + z * h_prev[ABSOLUTE_POS];
}

/// One thread per `(row, unit)`: the activations again, then with `a = dL/dh'` the gradients
/// of [`gru_backward`]: of `x_proj` `[dr, dz, dn]`, of `h_proj` `[dr, dz, dn r]`, of `h_prev`
/// `a z`.
#[cube(launch)]
fn gru_step_backward_kernel<F: Float>(
    x_proj: &Tensor<F>,
    h_proj: &Tensor<F>,
    h_prev: &Tensor<F>,
    grad: &Tensor<F>,
    d_x: &mut Tensor<F>,
    d_h: &mut Tensor<F>,
    d_prev: &mut Tensor<F>,
) {
    if ABSOLUTE_POS >= h_prev.len() {
        terminate!();
    }
    let h = h_prev.shape(1);
    let (row, unit) = (ABSOLUTE_POS / h, ABSOLUTE_POS % h);
    let g = row * 3 * h + unit;
    let (r, z, n) = gru_gates::<F>(x_proj, h_proj, g, h);
    let a = grad[ABSOLUTE_POS];
    let (dr, dz, dn) = gru_backward::<F>(a, r, z, n, h_proj[g + 2 * h], h_prev[ABSOLUTE_POS]);
    d_x[g] = dr;
    d_x[g + h] = dz;
    d_x[g + 2 * h] = dn;
    d_h[g] = dr;
    d_h[g + h] = dz;
    d_h[g + 2 * h] = dn * r;
    d_prev[ABSOLUTE_POS] = a * z;
}

/// Contiguous inputs, fresh `f32` outputs of the given shapes, and the launch grid: one thread
/// per element of the `[B, H]` state, `inputs[state]`.
fn prepare(
    inputs: Vec<CubeTensor>,
    state: usize,
    shapes: &[Shape],
) -> (Vec<CubeTensor>, Vec<CubeTensor>, CubeCount, CubeDim) {
    let inputs: Vec<CubeTensor> = inputs.into_iter().map(into_contiguous).collect();
    let state = &inputs[state];
    let outputs = shapes
        .iter()
        .map(|s| empty_device::<f32>(state.client.clone(), state.device.clone(), s.clone()))
        .collect();
    let units = state.meta.shape().num_elements();
    let cube_dim = CubeDim::new(&state.client, units);
    let cube_count = calculate_cube_count_elemwise(&state.client, units, cube_dim);
    (inputs, outputs, cube_count, cube_dim)
}

/// The shape of `t`.
fn shape(t: &CubeTensor) -> Shape {
    t.meta.shape().clone()
}

impl CubeCellOps for CubeBackend {
    fn lstm_step(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        let [b, h] = c_prev.meta.shape().dims();
        let shapes = [Shape::new([2, b, h])];
        let (inputs, outputs, count, dim) = prepare(vec![gates, c_prev], 1, &shapes);
        let [g, c]: [CubeTensor; 2] = inputs.try_into().expect("two inputs");
        let [out]: [CubeTensor; 1] = outputs.try_into().expect("one output");
        lstm_step_kernel::launch::<f32>(
            &out.client,
            count,
            dim,
            g.into_tensor_arg(),
            c.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn lstm_step_backward(
        gates: FloatTensor<Self>,
        c_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let shapes = [shape(&gates), shape(&c_prev)];
        let (inputs, outputs, count, dim) = prepare(vec![gates, c_prev, grad], 1, &shapes);
        let [g, c, gr]: [CubeTensor; 3] = inputs.try_into().expect("three inputs");
        let [dg, dc]: [CubeTensor; 2] = outputs.try_into().expect("two outputs");
        lstm_step_backward_kernel::launch::<f32>(
            &dg.client,
            count,
            dim,
            g.into_tensor_arg(),
            c.into_tensor_arg(),
            gr.into_tensor_arg(),
            dg.clone().into_tensor_arg(),
            dc.clone().into_tensor_arg(),
        );
        (dg, dc)
    }

    fn gru_step(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shapes = [shape(&h_prev)];
        let (inputs, outputs, count, dim) = prepare(vec![x_proj, h_proj, h_prev], 2, &shapes);
        let [x, hp, prev]: [CubeTensor; 3] = inputs.try_into().expect("three inputs");
        let [out]: [CubeTensor; 1] = outputs.try_into().expect("one output");
        gru_step_kernel::launch::<f32>(
            &out.client,
            count,
            dim,
            x.into_tensor_arg(),
            hp.into_tensor_arg(),
            prev.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn gru_step_backward(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shapes = [shape(&x_proj), shape(&h_proj), shape(&h_prev)];
        let inputs = vec![x_proj, h_proj, h_prev, grad];
        let (inputs, outputs, count, dim) = prepare(inputs, 2, &shapes);
        let [x, hp, prev, gr]: [CubeTensor; 4] = inputs.try_into().expect("four inputs");
        let [dx, dh, dp]: [CubeTensor; 3] = outputs.try_into().expect("three outputs");
        gru_step_backward_kernel::launch::<f32>(
            &dx.client,
            count,
            dim,
            x.into_tensor_arg(),
            hp.into_tensor_arg(),
            prev.into_tensor_arg(),
            gr.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            dh.clone().into_tensor_arg(),
            dp.clone().into_tensor_arg(),
        );
        (dx, dh, dp)
    }
}

/// The backward of [`CubeCellOps::lstm_step`] under autodiff: the backward kernel.
#[derive(Debug)]
struct LstmStepBackward;

impl<B: Backend + CubeCellOps> Backward<B, 2> for LstmStepBackward {
    /// The step's inputs, `gates` and `c_prev`.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gates, node_c] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (gates, c_prev) = ops.state;
        let (d_gates, d_c_prev) = B::lstm_step_backward(gates, c_prev, grad);
        for (node, d) in [(node_gates, d_gates), (node_c, d_c_prev)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

/// The backward of [`CubeCellOps::gru_step`] under autodiff: the backward kernel.
#[derive(Debug)]
struct GruStepBackward;

impl<B: Backend + CubeCellOps> Backward<B, 3> for GruStepBackward {
    /// The step's inputs, `x_proj`, `h_proj` and `h_prev`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, hp, prev) = ops.state;
        let (dx, dh, dp) = B::gru_step_backward(x, hp, prev, grad);
        for (node, d) in ops.parents.into_iter().zip([dx, dh, dp]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, d);
            }
        }
    }
}

impl<B: Backend + CubeCellOps, C: CheckpointStrategy> CubeCellOps for Autodiff<B, C> {
    fn lstm_step(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [gates.node(), c_prev.node()];
        let (g, c) = (gates.into_primitive(), c_prev.into_primitive());
        tracked::<B, C, _, 2>(LstmStepBackward, nodes, || {
            let out = B::lstm_step(g.clone(), c.clone());
            ((g, c), out)
        })
    }

    /// The backward kernel on the inner backend (its results are not differentiated again).
    fn lstm_step_backward(
        gates: FloatTensor<Self>,
        c_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (d_gates, d_c_prev) = B::lstm_step_backward(
            gates.into_primitive(),
            c_prev.into_primitive(),
            grad.into_primitive(),
        );
        (Self::from_inner(d_gates), Self::from_inner(d_c_prev))
    }

    fn gru_step(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x_proj.node(), h_proj.node(), h_prev.node()];
        let [x, hp, prev] = [x_proj, h_proj, h_prev].map(|t| t.into_primitive());
        tracked::<B, C, _, 3>(GruStepBackward, nodes, || {
            let out = B::gru_step(x.clone(), hp.clone(), prev.clone());
            ((x, hp, prev), out)
        })
    }

    /// The backward kernel on the inner backend (its results are not differentiated again).
    fn gru_step_backward(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, hp, prev, g] = [x_proj, h_proj, h_prev, grad].map(|t| t.into_primitive());
        let (dx, dh, dp) = B::gru_step_backward(x, hp, prev, g);
        (
            Self::from_inner(dx),
            Self::from_inner(dh),
            Self::from_inner(dp),
        )
    }
}
