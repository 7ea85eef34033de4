//! The fused ops on Flex and NdArray: the tensors' values on the host, the kernels of
//! [`kernels`] and the sequence op over them (`sequence`), the results back in tensors of the
//! device.

use burn::backend::Backend;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Shape, Slice};

use super::sequence::sequence_host;
use super::{FusedCellOps, InitialState, Regularisers, SequenceInput, SequenceWeights};
use crate::host::{device_tensor, host};
use crate::recurrent::fused::kernels;
use crate::recurrent::fused::sequence::FusedCell;

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

            fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self> {
                <Self as FloatTensorOps<Self>>::float_slice(t, &[Slice::from(0..count)])
            }

            fn sequence(
                cell: FusedCell,
                input: SequenceInput<Self>,
                weights: SequenceWeights<Self>,
                state: InitialState<Self>,
                regularisers: Regularisers<Self>,
            ) -> FloatTensor<Self> {
                sequence_host::<Self>(cell, input, weights, state, regularisers).1
            }
        }
    };
}

#[cfg(feature = "ndarray")]
host_backend!(burn::backend::NdArray);
#[cfg(feature = "flex")]
host_backend!(burn::backend::Flex);
