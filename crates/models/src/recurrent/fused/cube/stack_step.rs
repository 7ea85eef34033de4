//! One time step of a whole unidirectional stack in one kernel launch (generation: a token at a
//! time), where the per-layer path launches the input projection, its bias and the recurrence
//! of every layer.
//!
//! As in the whole-sequence kernels ([`super::recurrence`]), the rows of the batch are
//! independent, so each cube owns `rows` rows and runs every layer for them, its units taking the
//! `(row, unit)` items in turn; a layer's new `h` goes to the output before a `sync_storage`,
//! and the next layer reads it there as its input. The weights are packed once for all steps
//! ([`PackedStack`], what PyTorch's `flatten_parameters` does for cuDNN): each layer's
//! `[W_ih | W_hh]` transposed to `[I_l + H, G*H]`, so that the units read a gate's row of it
//! together, the layers one after the other.

use burn::backend::Dispatch;
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use super::recurrence::{GRU, GRU_BEFORE, LSTM, RNN_TANH, gates};
use super::sequence::{code, empty, grid};
use super::sigmoid;
use crate::recurrent::fused::ops::DirectionWeights;
use crate::recurrent::fused::sequence::FusedCell;

/// The stack step on the GPU backends.
///
/// Arguments: `x` `[B, I]` (the first layer's input), `weights` (packed, see the module docs),
/// `biases` `[L, 2, G*H]` (each layer's `b_ih`, then `b_hh`), `h0` and `c0` `[L, B, H]` (`c0`
/// read by the LSTM only).
#[backend_extension(Cube, Fusion)]
pub trait CubeStackOps: Backend {
    /// The last layer's new `h` `[B, H]` (a copy of its slab of the next output, which a slice
    /// would copy again to read), every layer's new `h` `[L, B, H]` and (LSTM) `c` `[L, B, H]`
    /// (the reset-before GRU: its `r h_{t-1}`; `[1]` for the other cells).
    #[fusion(meta = |_x, _w, _b, h0, _c0, cell| step_specs(h0, *cell))]
    fn stack_step(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        cell: FusedCell,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The shapes of the step's three outputs.
fn step_shapes(h0: &Shape, cell: FusedCell) -> [Shape; 3] {
    let cells = if matches!(cell, FusedCell::Lstm | FusedCell::GruResetBefore) {
        h0.clone()
    } else {
        Shape::new([1])
    };
    [Shape::new([h0[1], h0[2]]), h0.clone(), cells]
}

fn step_specs(h0: &TensorSpec, cell: FusedCell) -> (TensorSpec, TensorSpec, TensorSpec) {
    let [top, h, c] = step_shapes(&h0.shape, cell).map(|s| TensorSpec::new(s, h0.dtype));
    (top, h, c)
}

/// `acc[g] += sum_k src[from + k] W[k, g H + u]` for `g < gates`, over the `n` rows of a layer's
/// packed `W` (`[.., G*H]`) from `at = ` the first row's offset plus `u` (plus the first gate's
/// column).
#[cube]
#[allow(clippy::too_many_arguments)]
fn products<F: Float>(
    src: &mut Tensor<F>,
    from: usize,
    n: usize,
    weights: &Tensor<F>,
    at: usize,
    gh: usize,
    hid: usize,
    acc: &mut Array<F>,
    #[comptime] gates: usize,
) {
    for k in 0..n {
        let v = src[from + k];
        let w = at + k * gh;
        #[unroll]
        for g in 0..gates {
            acc[g] += v * weights[w + g * hid];
        }
    }
}

/// The input side's products (see [`products`]) of layer `l` for row `row`: over `x`'s row for
/// the first layer, over the new `h` of the layer below for the others.
#[cube]
#[allow(clippy::too_many_arguments)]
fn input_products<F: Float>(
    x: &mut Tensor<F>,
    h: &mut Tensor<F>,
    weights: &Tensor<F>,
    l: usize,
    row: usize,
    at: usize,
    gh: usize,
    acc: &mut Array<F>,
    #[comptime] gates: usize,
) {
    let batch = h.shape(1);
    let hid = h.shape(2);
    if l == 0 {
        let width = x.shape(1);
        products::<F>(x, row * width, width, weights, at, gh, hid, acc, gates);
    } else {
        let below = ((l - 1) * batch + row) * hid;
        products::<F>(h, below, hid, weights, at, gh, hid, acc, gates);
    }
}

/// Every layer's step for the cube's rows (see the module docs): `h` `[L, B, H]` and `c` (the
/// LSTM's new cells, the reset-before GRU's `r h_{t-1}` between its two phases), and the last
/// layer's `h` again in `top` `[B, H]`. `x` and `h0`
/// are only read; they are `&mut` as the outputs are, for [`products`] to read all three.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn stack_step_kernel<F: Float>(
    x: &mut Tensor<F>,
    weights: &Tensor<F>,
    biases: &Tensor<F>,
    h0: &mut Tensor<F>,
    c0: &Tensor<F>,
    top: &mut Tensor<F>,
    h: &mut Tensor<F>,
    c: &mut Tensor<F>,
    #[comptime] cell: u32,
    #[comptime] rows: usize,
) {
    let layers = h0.shape(0);
    let batch = h0.shape(1);
    let hid = h0.shape(2);
    let width = x.shape(1);
    let gh = comptime![gates(cell)] * hid;
    // The gates whose products the first pass takes (the reset-before GRU's `n` waits for `r h`).
    let first = comptime![if cell == GRU_BEFORE { 2 } else { gates(cell) }];
    let row0 = CUBE_POS_X as usize * rows;
    let items = rows * hid;
    let stride = CUBE_DIM_X as usize;
    let one = F::new(1.0);
    for l in 0..layers {
        let inputs = if l == 0 { width } else { hid };
        let w_in = if l == 0 {
            0usize
        } else {
            (width + hid) * gh + (l - 1) * 2 * hid * gh
        };
        let w_rec = w_in + inputs * gh;
        let b = l * 2 * gh;
        let mut i = UNIT_POS_X as usize;
        while i < items {
            let row = row0 + i / hid;
            if row < batch {
                let u = i % hid;
                let s = (l * batch + row) * hid;
                // The input side `q` and the recurrent side `p` of each gate's pre-activation.
                let mut q = Array::<F>::new(4usize);
                let mut p = Array::<F>::new(4usize);
                #[unroll]
                for g in 0..first {
                    q[g] = biases[b + g * hid + u];
                    p[g] = biases[b + gh + g * hid + u];
                }
                input_products::<F>(x, h, weights, l, row, w_in + u, gh, &mut q, first);
                products::<F>(h0, s, hid, weights, w_rec + u, gh, hid, &mut p, first);
                let hp = h0[s + u];
                if comptime![cell == LSTM] {
                    let ig = sigmoid::<F>(q[0] + p[0]);
                    let fg = sigmoid::<F>(q[1] + p[1]);
                    let gg = F::tanh(q[2] + p[2]);
                    let og = sigmoid::<F>(q[3] + p[3]);
                    let cell_t = fg * c0[s + u] + ig * gg;
                    c[s + u] = cell_t;
                    h[s + u] = og * F::tanh(cell_t);
                } else if comptime![cell == GRU] {
                    let r = sigmoid::<F>(q[0] + p[0]);
                    let z = sigmoid::<F>(q[1] + p[1]);
                    let n = F::tanh(q[2] + r * p[2]);
                    h[s + u] = (one - z) * n + z * hp;
                } else if comptime![cell == GRU_BEFORE] {
                    // `z` waits in `h` and `r h` in `c` for the second pass.
                    h[s + u] = sigmoid::<F>(q[1] + p[1]);
                    c[s + u] = sigmoid::<F>(q[0] + p[0]) * hp;
                } else {
                    let pre = q[0] + p[0];
                    h[s + u] = if comptime![cell == RNN_TANH] {
                        F::tanh(pre)
                    } else {
                        F::max(pre, F::new(0.0))
                    };
                }
            }
            i += stride;
        }
        sync_storage();
        if comptime![cell == GRU_BEFORE] {
            // `n = tanh(x_n + b_in + W_hn (r h) + b_hn)`, `h' = (1 - z) n + z h`.
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / hid;
                if row < batch {
                    let u = i % hid;
                    let s = (l * batch + row) * hid;
                    let mut q = Array::<F>::new(1usize);
                    let mut p = Array::<F>::new(1usize);
                    q[0] = biases[b + 2 * hid + u];
                    p[0] = biases[b + gh + 2 * hid + u];
                    let at = 2 * hid + u;
                    input_products::<F>(x, h, weights, l, row, w_in + at, gh, &mut q, 1usize);
                    products::<F>(c, s, hid, weights, w_rec + at, gh, hid, &mut p, 1usize);
                    let n = F::tanh(q[0] + p[0]);
                    let z = h[s + u];
                    h[s + u] = (one - z) * n + z * h0[s + u];
                }
                i += stride;
            }
            sync_storage();
        }
    }
    // The last layer's `h` again (each unit its own items, written by itself).
    let last = (layers - 1) * batch * hid;
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let at = row0 * hid + i;
        if at < batch * hid {
            top[at] = h[last + at];
        }
        i += stride;
    }
}

impl CubeStackOps for CubeBackend {
    fn stack_step(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        biases: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        cell: FusedCell,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [x, weights, biases, h0, c0] = [x, weights, biases, h0, c0].map(into_contiguous);
        let shape = h0.meta.shape().clone();
        let [top, h, c]: [CubeTensor; 3] = step_shapes(&shape, cell).map(|s| empty(&h0, s));
        let (rows, count, dim) = grid(shape[1], 1, shape[2]);
        stack_step_kernel::launch::<f32>(
            &h0.client.clone(),
            count,
            dim,
            x.into_tensor_arg(),
            weights.into_tensor_arg(),
            biases.into_tensor_arg(),
            h0.into_tensor_arg(),
            c0.into_tensor_arg(),
            top.clone().into_tensor_arg(),
            h.clone().into_tensor_arg(),
            c.clone().into_tensor_arg(),
            code(cell),
            rows,
        );
        (top, h, c)
    }
}

/// A unidirectional stack's weights packed for [`CubeStackOps::stack_step`] (see the module
/// docs), with its cell.
#[derive(Clone, Debug)]
pub(crate) struct PackedStack {
    cell: FusedCell,
    weights: burn::tensor::Tensor<1>,
    biases: burn::tensor::Tensor<3>,
}

impl PackedStack {
    /// Packs the layers' weights (first layer first).
    pub(crate) fn new(cell: FusedCell, layers: Vec<DirectionWeights<Dispatch>>) -> Self {
        let (weights, biases): (Vec<burn::tensor::Tensor<1>>, Vec<burn::tensor::Tensor<2>>) =
            layers
                .into_iter()
                .map(|w| {
                    let [w_ih, w_hh] =
                        [w.w_ih, w.w_hh].map(burn::tensor::Tensor::<2>::from_dispatch);
                    let packed = burn::tensor::Tensor::cat(vec![w_ih, w_hh], 1).transpose();
                    let [b_ih, b_hh] =
                        [w.b_ih, w.b_hh].map(burn::tensor::Tensor::<1>::from_dispatch);
                    (
                        packed.flatten(0, 1),
                        burn::tensor::Tensor::stack(vec![b_ih, b_hh], 0),
                    )
                })
                .unzip();
        Self {
            cell,
            weights: burn::tensor::Tensor::cat(weights, 0),
            biases: burn::tensor::Tensor::stack(biases, 0),
        }
    }

    /// One step of every layer from `x` `[B, I]` and the state `h0`, `c0` `[L, B, H]` (`c0` the
    /// LSTM's): the last layer's output `[B, H]`, the new `h` and (LSTM) `c`, `[L, B, H]`.
    pub(crate) fn step(
        &self,
        x: burn::tensor::Tensor<2>,
        h0: burn::tensor::Tensor<3>,
        c0: Option<burn::tensor::Tensor<3>>,
    ) -> (
        burn::tensor::Tensor<2>,
        burn::tensor::Tensor<3>,
        Option<burn::tensor::Tensor<3>>,
    ) {
        use burn::tensor::Tensor as Values;
        let c0 = c0.unwrap_or_else(|| h0.clone());
        let (top, h, c) = <Dispatch as CubeStackOps>::stack_step(
            x.into_dispatch(),
            self.weights.clone().into_dispatch(),
            self.biases.clone().into_dispatch(),
            h0.into_dispatch(),
            c0.into_dispatch(),
            self.cell,
        );
        let c = (self.cell == FusedCell::Lstm).then(|| Values::from_dispatch(c));
        (Values::from_dispatch(top), Values::from_dispatch(h), c)
    }
}
