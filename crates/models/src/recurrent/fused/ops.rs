//! The fused pointwise ops as a Burn backend extension: implemented for Flex and NdArray (host
//! kernels) and for their `Autodiff` wrappers (hand-written backward). Other backends never see
//! these ops: [`super::available`] keeps them on the composed tensor-op path.

// burn-ndarray is deprecated in Burn 0.22 but still a backend sequent supports.
#![allow(deprecated)]

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Slice};

use super::host::{device_tensor, host, host_indices};
use super::kernels;
use super::layer_ops::{
    OpInput, bidirectional_autodiff, bidirectional_host, sequence_autodiff, sequence_host,
};
use super::sequence::{Direction, FusedCell, SequenceCell, concat_padded};

const GRU: FusedCell = FusedCell::Gated(SequenceCell::Gru);
const RNN_TANH: FusedCell = FusedCell::Gated(SequenceCell::RnnTanh);

/// Fused pointwise parts of the recurrent cells, the whole-sequence ops, and the cross-entropy
/// of a model's output.
#[backend_extension(
    Autodiff,
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex")
)]
pub trait FusedCellOps: Backend {
    /// LSTM: `gates` `[B, 4H]`, `c_prev` `[B, H]` -> `[2, B, H]` = `h`, then `c`.
    fn lstm_pointwise(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self>;
    /// GRU (reset after): `x_proj`, `h_proj` `[B, 3H]`, `h_prev` `[B, H]` -> `h'` `[B, H]`.
    fn gru_pointwise(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Elementwise `tanh` (the vanilla RNN's nonlinearity).
    fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The first `count` slabs `[count, ..]` of `t` `[S, ..]`: Burn's slice (on Flex a view, no
    /// copy). Under autodiff its backward pads the gradient with `S - count` zero slabs in one
    /// pass, where Burn's slice backward zeroes a tensor of the full size and then copies the
    /// gradient into it (for an LSTM op's outputs, three passes over `[T + 1, B, H]` a layer on the
    /// calling thread).
    fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self>;
    /// Mean cross-entropy of `logits` `[N, V]` against the classes `targets` `[N]` -> `[1]`:
    /// `(1/N) sum_n (ln sum_j e^{x_nj} - x_{n t_n})`.
    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
    /// A whole LSTM layer direction: `x` `[T, B, I]` (time order), `w_ih` `[4H, I]`, `b_ih`
    /// `[4H]`, `w_hh` `[4H, H]`, `b_hh` `[4H]`, `h0`, `c0` `[B, H]` -> `[T + 1, B, H]`: the
    /// outputs `h_t` in time order, then the final cell state. With `reverse` the recurrence runs
    /// from `t = T-1` down to 0 (its final state is the one after `t = 0`).
    #[allow(clippy::too_many_arguments)]
    fn lstm_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// A whole GRU (reset-after) layer direction: `x` `[T, B, I]`, `w_ih` `[3H, I]`, `b_ih`
    /// `[3H]`, `w_hh` `[3H, H]`, `b_hh` `[3H]`, `h0` `[B, H]` -> the outputs `h_t` `[T, B, H]`
    /// in time order (`reverse` as for [`Self::lstm_sequence`]).
    fn gru_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// A whole tanh-RNN layer direction: `x` `[T, B, I]`, `w_ih` `[H, I]`, `b_ih` `[H]`, `w_hh`
    /// `[H, H]`, `b_hh` `[H]`, `h0` `[B, H]` -> the outputs `h_t` `[T, B, H]` in time order
    /// (`reverse` as for [`Self::lstm_sequence`]).
    fn rnn_tanh_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// [`Self::lstm_sequence`] over token ids `tokens` `[T, B]` (time order), each the one-hot
    /// vector `e_v` of a vocabulary of `V`: `w_ih` is `[4H, V]` and token `v`'s input projection
    /// is its column `v` (a first layer over an embedding `E` takes `W_ih E^T`). The tokens get
    /// no gradient. Panics on a token outside `0..V`.
    #[allow(clippy::too_many_arguments)]
    fn lstm_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// [`Self::gru_sequence`] over token ids, as [`Self::lstm_token_sequence`] (`w_ih` `[3H, V]`).
    fn gru_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// [`Self::rnn_tanh_sequence`] over token ids, as [`Self::lstm_token_sequence`] (`w_ih`
    /// `[H, V]`).
    fn rnn_tanh_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// Both directions of a bidirectional LSTM layer at once: `x` `[T, B, I]`, the forward
    /// direction's weights (`f_*`) and the reverse direction's (`r_*`) as for
    /// [`Self::lstm_sequence`], `h0`, `c0` `[2, B, H]` (forward direction first) ->
    /// `[T + 1, B, 2H]`: per time, the forward direction's `h_t` and then the reverse one's (the
    /// next layer's input), then the final cell states `[c_f | c_r]`.
    #[allow(clippy::too_many_arguments)]
    fn lstm_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Both directions of a bidirectional GRU (reset-after) layer at once, as
    /// [`Self::lstm_bidirectional`] without a cell state: -> `[T, B, 2H]`.
    #[allow(clippy::too_many_arguments)]
    fn gru_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Both directions of a bidirectional tanh-RNN layer at once, as
    /// [`Self::gru_bidirectional`].
    #[allow(clippy::too_many_arguments)]
    fn rnn_tanh_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

fn lstm_host<B: Backend>(gates: FloatTensor<B>, c_prev: FloatTensor<B>) -> FloatTensor<B> {
    let (g, _) = host::<B>(gates);
    let like = c_prev.clone();
    let (c, shape) = host::<B>(c_prev);
    let (b, h) = (shape[0], shape[1]);
    let mut out = vec![0f32; 2 * b * h];
    let (h_out, c_out) = out.split_at_mut(b * h);
    kernels::lstm_forward(&g, &c, h, h_out, c_out);
    device_tensor::<B>(out, Shape::new([2, b, h]), &like)
}

fn gru_host<B: Backend>(
    x: FloatTensor<B>,
    hp: FloatTensor<B>,
    prev: FloatTensor<B>,
) -> FloatTensor<B> {
    let (x, _) = host::<B>(x);
    let (hp, _) = host::<B>(hp);
    let like = prev.clone();
    let (p, shape) = host::<B>(prev);
    let mut out = vec![0f32; p.len()];
    kernels::gru_forward(&x, &hp, &p, shape[1], &mut out);
    device_tensor::<B>(out, shape, &like)
}

fn tanh_host<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let like = x.clone();
    let (v, shape) = host::<B>(x);
    let mut out = vec![0f32; v.len()];
    kernels::tanh_forward(&v, &mut out);
    device_tensor::<B>(out, shape, &like)
}

/// The softmax of `logits` `[N, V]` (row-major, on the host) and the mean cross-entropy against
/// `targets` `[N]`, as a `[1]` tensor like `logits`.
fn cross_entropy_host<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> (FloatTensor<B>, Vec<f32>, Vec<usize>) {
    let like = logits.clone();
    let (x, shape) = host::<B>(logits);
    let (n, v) = (shape[0], shape[1]);
    let (targets, _) = host_indices::<B>(targets, v, "cross-entropy target");
    assert_eq!(targets.len(), n, "one target a row of logits");
    let (mut probs, mut losses) = (vec![0f32; n * v], vec![0f32; n]);
    kernels::softmax_cross_entropy(&x, &targets, &mut probs, &mut losses);
    let mean = losses.iter().map(|l| *l as f64).sum::<f64>() / n.max(1) as f64;
    let loss = device_tensor::<B>(vec![mean as f32], Shape::new([1]), &like);
    (loss, probs, targets)
}

macro_rules! host_backend {
    ($backend:ty) => {
        impl FusedCellOps for $backend {
            fn lstm_pointwise(
                gates: FloatTensor<Self>,
                c_prev: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                lstm_host::<Self>(gates, c_prev)
            }

            fn gru_pointwise(
                x_proj: FloatTensor<Self>,
                h_proj: FloatTensor<Self>,
                h_prev: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                gru_host::<Self>(x_proj, h_proj, h_prev)
            }

            fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
                tanh_host::<Self>(x)
            }

            fn cross_entropy(
                logits: FloatTensor<Self>,
                targets: IntTensor<Self>,
            ) -> FloatTensor<Self> {
                cross_entropy_host::<Self>(logits, targets).0
            }

            fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self> {
                <Self as FloatTensorOps<Self>>::float_slice(t, &[Slice::from(0..count)])
            }

            fn lstm_sequence(
                x: FloatTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                c0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                sequence_host::<Self>(
                    FusedCell::Lstm,
                    OpInput::Features(x),
                    weights,
                    (h0, Some(c0)),
                    direction,
                )
                .1
            }

            fn gru_sequence(
                x: FloatTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                sequence_host::<Self>(GRU, OpInput::Features(x), weights, (h0, None), direction).1
            }

            fn rnn_tanh_sequence(
                x: FloatTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                sequence_host::<Self>(
                    RNN_TANH,
                    OpInput::Features(x),
                    weights,
                    (h0, None),
                    direction,
                )
                .1
            }

            fn lstm_token_sequence(
                tokens: IntTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                c0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                let (x, state) = (OpInput::Tokens(tokens), (h0, Some(c0)));
                sequence_host::<Self>(FusedCell::Lstm, x, weights, state, direction).1
            }

            fn gru_token_sequence(
                tokens: IntTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                sequence_host::<Self>(GRU, OpInput::Tokens(tokens), weights, (h0, None), direction)
                    .1
            }

            fn rnn_tanh_token_sequence(
                tokens: IntTensor<Self>,
                w_ih: FloatTensor<Self>,
                b_ih: FloatTensor<Self>,
                w_hh: FloatTensor<Self>,
                b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                reverse: bool,
            ) -> FloatTensor<Self> {
                let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
                let x = OpInput::Tokens(tokens);
                sequence_host::<Self>(RNN_TANH, x, weights, (h0, None), direction).1
            }

            fn lstm_bidirectional(
                x: FloatTensor<Self>,
                f_w_ih: FloatTensor<Self>,
                f_b_ih: FloatTensor<Self>,
                f_w_hh: FloatTensor<Self>,
                f_b_hh: FloatTensor<Self>,
                r_w_ih: FloatTensor<Self>,
                r_b_ih: FloatTensor<Self>,
                r_w_hh: FloatTensor<Self>,
                r_b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
                c0: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                let weights = [
                    [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
                    [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
                ];
                bidirectional_host::<Self>(FusedCell::Lstm, x, weights, (h0, Some(c0))).1
            }

            fn gru_bidirectional(
                x: FloatTensor<Self>,
                f_w_ih: FloatTensor<Self>,
                f_b_ih: FloatTensor<Self>,
                f_w_hh: FloatTensor<Self>,
                f_b_hh: FloatTensor<Self>,
                r_w_ih: FloatTensor<Self>,
                r_b_ih: FloatTensor<Self>,
                r_w_hh: FloatTensor<Self>,
                r_b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                let weights = [
                    [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
                    [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
                ];
                bidirectional_host::<Self>(GRU, x, weights, (h0, None)).1
            }

            fn rnn_tanh_bidirectional(
                x: FloatTensor<Self>,
                f_w_ih: FloatTensor<Self>,
                f_b_ih: FloatTensor<Self>,
                f_w_hh: FloatTensor<Self>,
                f_b_hh: FloatTensor<Self>,
                r_w_ih: FloatTensor<Self>,
                r_b_ih: FloatTensor<Self>,
                r_w_hh: FloatTensor<Self>,
                r_b_hh: FloatTensor<Self>,
                h0: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                let weights = [
                    [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
                    [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
                ];
                bidirectional_host::<Self>(RNN_TANH, x, weights, (h0, None)).1
            }
        }
    };
}

#[cfg(feature = "ndarray")]
host_backend!(burn::backend::NdArray);
#[cfg(feature = "flex")]
host_backend!(burn::backend::Flex);

#[derive(Debug)]
struct LstmBackward;

impl<B: Backend> Backward<B, 2> for LstmBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gates, node_c] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (gates, c_prev) = ops.state;
        let like = c_prev.clone();
        let (g, gshape) = host::<B>(gates);
        let (c, cshape) = host::<B>(c_prev);
        let (gr, _) = host::<B>(grad);
        // The output is `[2, B, H]`: `h`, then `c`.
        let (dh, dc_out) = gr.split_at(c.len());
        // The training kernels: the activated gates (and the new cell) again, then the backward
        // in place over them.
        let (mut dg, h) = (g.to_vec(), cshape[1]);
        let (mut h_new, mut c_new, mut dc) = (
            vec![0f32; c.len()],
            vec![0f32; c.len()],
            vec![0f32; c.len()],
        );
        kernels::lstm_forward_keep(&mut dg, &c, h, &mut h_new, &mut c_new);
        kernels::lstm_backward_in_place(&mut dg, &c, &c_new, dh, dc_out, h, &mut dc);
        if let Some(node) = node_gates {
            grads.register::<B>(node.id, device_tensor::<B>(dg, gshape, &like));
        }
        if let Some(node) = node_c {
            grads.register::<B>(node.id, device_tensor::<B>(dc, cshape, &like));
        }
    }
}

#[derive(Debug)]
struct GruBackward;

impl<B: Backend> Backward<B, 3> for GruBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_h, node_prev] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, hp, prev) = ops.state;
        let like = prev.clone();
        let (x, xshape) = host::<B>(x);
        let (hp, _) = host::<B>(hp);
        let (p, pshape) = host::<B>(prev);
        let (g, _) = host::<B>(grad);
        // The training kernels: the activations again, then the backward in place over them.
        let (mut dx, mut dh, h) = (vec![0f32; x.len()], hp.to_vec(), pshape[1]);
        let (mut out, mut dp) = (vec![0f32; p.len()], vec![0f32; p.len()]);
        kernels::gru_forward_keep(&x, &hp, &p, h, &mut out, &mut dx);
        kernels::gru_backward_in_place(&mut dx, &mut dh, &p, &g, h, &mut dp);
        for (node, values, shape) in [
            (node_x, dx, xshape.clone()),
            (node_h, dh, xshape),
            (node_prev, dp, pshape),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, device_tensor::<B>(values, shape, &like));
            }
        }
    }
}

/// The backward of a one-parent op: `dx(state, g)` maps the output's gradient `g` (on the host)
/// to the parent's values and shape, which are registered as its gradient. The output's gradient
/// is consumed either way; `dx` runs only when the parent needs a gradient.
fn one_parent_backward<B: Backend, S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    dx: impl FnOnce(S, &[f32]) -> (Vec<f32>, Shape),
) {
    let [node] = ops.parents;
    let grad = grads.consume::<B>(&ops.node);
    if let Some(node) = node {
        let like = grad.clone();
        let (g, _) = host::<B>(grad);
        let (values, shape) = dx(ops.state, &g);
        grads.register::<B>(node.id, device_tensor::<B>(values, shape, &like));
    }
}

#[derive(Debug)]
struct TanhBackward;

impl<B: Backend> Backward<B, 1> for TanhBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |y, g| {
            let (y, shape) = host::<B>(y);
            let mut dx = vec![0f32; y.len()];
            kernels::tanh_backward(&y, g, &mut dx);
            (dx, shape)
        });
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward {
    /// The softmax of the logits and the targets.
    type State = (Vec<f32>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |(mut d, targets), g| {
            let n = targets.len();
            let v = d.len() / n.max(1);
            // dL/dx_nj = g (p_nj - [j = t_n]) / N
            let scale = g[0] / n as f32;
            for (row, t) in d.chunks_mut(v).zip(targets) {
                row[t] -= 1.0;
                row.iter_mut().for_each(|x| *x *= scale);
            }
            (d, Shape::new([n, v]))
        });
    }
}

#[derive(Debug)]
struct LeadingSlabsBackward;

impl<B: Backend> Backward<B, 1> for LeadingSlabsBackward {
    /// The shape of the sliced tensor.
    type State = Shape;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |full, g| {
            (concat_padded(&[g], full.num_elements()), full)
        });
    }
}

impl<B: Backend + FusedCellOps, C: CheckpointStrategy> FusedCellOps for Autodiff<B, C> {
    fn lstm_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(
            FusedCell::Lstm,
            OpInput::Features(x),
            weights,
            (h0, Some(c0)),
            direction,
        )
    }

    fn gru_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(GRU, OpInput::Features(x), weights, (h0, None), direction)
    }

    fn rnn_tanh_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(
            RNN_TANH,
            OpInput::Features(x),
            weights,
            (h0, None),
            direction,
        )
    }

    fn lstm_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        let (x, state) = (OpInput::Tokens(tokens), (h0, Some(c0)));
        sequence_autodiff::<B, C>(FusedCell::Lstm, x, weights, state, direction)
    }

    fn gru_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(GRU, OpInput::Tokens(tokens), weights, (h0, None), direction)
    }

    fn rnn_tanh_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        let x = OpInput::Tokens(tokens);
        sequence_autodiff::<B, C>(RNN_TANH, x, weights, (h0, None), direction)
    }

    fn lstm_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(FusedCell::Lstm, x, weights, (h0, Some(c0)))
    }

    fn gru_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(GRU, x, weights, (h0, None))
    }

    fn rnn_tanh_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(RNN_TANH, x, weights, (h0, None))
    }

    fn lstm_pointwise(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmBackward
            .prepare::<C>([gates.node(), c_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (g, c) = (gates.into_primitive(), c_prev.into_primitive());
                let out = B::lstm_pointwise(g.clone(), c.clone());
                prep.finish((g, c), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_pointwise(
                gates.into_primitive(),
                c_prev.into_primitive(),
            )),
        }
    }

    fn gru_pointwise(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match GruBackward
            .prepare::<C>([x_proj.node(), h_proj.node(), h_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, h, p) = (
                    x_proj.into_primitive(),
                    h_proj.into_primitive(),
                    h_prev.into_primitive(),
                );
                let out = B::gru_pointwise(x.clone(), h.clone(), p.clone());
                prep.finish((x, h, p), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gru_pointwise(
                x_proj.into_primitive(),
                h_proj.into_primitive(),
                h_prev.into_primitive(),
            )),
        }
    }

    fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match TanhBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::tanh_pointwise(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::tanh_pointwise(x.into_primitive())),
        }
    }

    fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self> {
        let full = t.shape();
        match LeadingSlabsBackward
            .prepare::<C>([t.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(full, B::leading_slabs(t.into_primitive(), count))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::leading_slabs(t.into_primitive(), count)),
        }
    }

    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, probs, targets) =
                    cross_entropy_host::<B>(logits.into_primitive(), targets);
                prep.finish((probs, targets), loss)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cross_entropy(logits.into_primitive(), targets))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Dispatch;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::FusedCellOps;

    /// `leading_slabs` is `narrow(0, 0, count)`, and its gradient is the output's padded with
    /// zero slabs, on both host backends under autodiff.
    #[test]
    fn leading_slabs_slice_and_pad_the_gradient() {
        let devices = [
            #[cfg(feature = "flex")]
            Device::flex().autodiff(),
            #[cfg(feature = "ndarray")]
            Device::ndarray().autodiff(),
        ];
        for device in devices {
            let x = Tensor::<3>::random([5, 3, 4], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let w = Tensor::<3>::random([4, 3, 4], Distribution::Normal(0.0, 1.0), &device);
            let y = Tensor::<3>::from_dispatch(<Dispatch as FusedCellOps>::leading_slabs(
                x.clone().into_dispatch(),
                4,
            ));
            y.clone()
                .into_data()
                .assert_eq(&x.clone().narrow(0, 0, 4).into_data(), true);
            let grads = (y * w.clone()).sum().backward();
            let want = Tensor::cat(vec![w, Tensor::zeros([1, 3, 4], &device)], 0);
            x.grad(&grads)
                .unwrap()
                .into_data()
                .assert_eq(&want.inner().into_data(), true);
        }
    }
}
