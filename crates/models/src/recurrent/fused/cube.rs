//! The fused LSTM step as CubeCL kernels, for the GPU backends (wgpu, cuda): the gate
//! activations and the cell update in one kernel, and its backward in another, where the composed
//! path runs about a dozen elementwise ops (each its own kernel launch, unless Burn's fusion
//! merges them) with a backward node each.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
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

/// The LSTM step on the GPU backends.
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
}

#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-x))
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
    let i = sigmoid::<F>(gates[g]);
    let f = sigmoid::<F>(gates[g + h]);
    let gg = F::tanh(gates[g + 2 * h]);
    let o = sigmoid::<F>(gates[g + 3 * h]);
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
    let i = sigmoid::<F>(gates[g]);
    let f = sigmoid::<F>(gates[g + h]);
    let gg = F::tanh(gates[g + 2 * h]);
    let o = sigmoid::<F>(gates[g + 3 * h]);
    let cp = c_prev[ABSOLUTE_POS];
    let tc = F::tanh(f * cp + i * gg);
    let dh = grad[ABSOLUTE_POS];
    let one = F::new(1.0);
    let dc = grad[bh + ABSOLUTE_POS] + dh * o * (one - tc * tc);
    d_gates[g] = dc * gg * i * (one - i);
    d_gates[g + h] = dc * cp * f * (one - f);
    d_gates[g + 2 * h] = dc * i * (one - gg * gg);
    d_gates[g + 3 * h] = dh * tc * o * (one - o);
    d_c_prev[ABSOLUTE_POS] = dc * f;
}

/// Contiguous inputs, fresh `f32` outputs of the given shapes, and the launch grid: one thread
/// per element of `c_prev` (`inputs[1]`, `[B, H]`).
fn prepare(
    inputs: Vec<CubeTensor>,
    shapes: &[Shape],
) -> (Vec<CubeTensor>, Vec<CubeTensor>, CubeCount, CubeDim) {
    let inputs: Vec<CubeTensor> = inputs.into_iter().map(into_contiguous).collect();
    let c_prev = &inputs[1];
    let outputs = shapes
        .iter()
        .map(|s| empty_device::<f32>(c_prev.client.clone(), c_prev.device.clone(), s.clone()))
        .collect();
    let units = c_prev.meta.shape().num_elements();
    let cube_dim = CubeDim::new(&c_prev.client, units);
    let cube_count = calculate_cube_count_elemwise(&c_prev.client, units, cube_dim);
    (inputs, outputs, cube_count, cube_dim)
}

impl CubeCellOps for CubeBackend {
    fn lstm_step(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        let [b, h] = c_prev.meta.shape().dims();
        let (inputs, outputs, count, dim) = prepare(vec![gates, c_prev], &[Shape::new([2, b, h])]);
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
        let shapes = [gates.meta.shape().clone(), c_prev.meta.shape().clone()];
        let (inputs, outputs, count, dim) = prepare(vec![gates, c_prev, grad], &shapes);
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

impl<B: Backend + CubeCellOps, C: CheckpointStrategy> CubeCellOps for Autodiff<B, C> {
    fn lstm_step(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmStepBackward
            .prepare::<C>([gates.node(), c_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (g, c) = (gates.into_primitive(), c_prev.into_primitive());
                let out = B::lstm_step(g.clone(), c.clone());
                prep.finish((g, c), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_step(
                gates.into_primitive(),
                c_prev.into_primitive(),
            )),
        }
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
}
