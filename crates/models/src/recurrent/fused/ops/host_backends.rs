//! The fused ops on Flex and NdArray: the tensors' values on the host, the kernels of
//! [`kernels`] and the sequence ops over them, the results back in tensors of the device.

use burn::backend::Backend;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{Shape, Slice};

use super::{FusedCellOps, GRU, RNN_TANH};
use crate::recurrent::fused::host::{device_tensor, host, host_indices};
use crate::recurrent::fused::kernels;
use crate::recurrent::fused::layer_ops::{OpInput, bidirectional_host, sequence_host};
use crate::recurrent::fused::sequence::{Direction, FusedCell};

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
pub(super) fn cross_entropy_host<B: Backend>(
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
