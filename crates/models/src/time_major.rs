//! Batch-first tensors kept in time-major order. The recurrent layers run over `[T, B, ..]` and
//! hand back their batch-first output `[B, T, ..]` as a view of it; what is computed over every
//! step before or after them is computed over the same order, so that neither the values nor
//! their gradients are copied between the two layouts (Flex copies a `[B, T, H]` view of a
//! `[T, B, H]` tensor as `T` tiled transposes: 165 us at the reference shape, on the calling
//! thread's schedule).

use burn::nn::Embedding;
use burn::tensor::{Int, Tensor};

/// `f` applied to every step of `h` `[B, T, D]` as one 2-D map `[T B, D] -> [T B, V]`, taken over
/// the steps in time-major order; the result is `[B, T, V]`. The recurrent layers' batch-first
/// output is a view of their time-major result, so `h.swap_dims(0, 1)` is contiguous and
/// flattens without a copy, and the gradient goes back to the layers time-major, as they take
/// it. (Burn's `Linear` on a 3-D input is a batched product: its weight gradient is `B` products
/// `[D, T] x [T, V]` written to a `[B, D, V]` buffer and summed; measured with the reference LSTM,
/// that and the zeroing and realigning copies of Flex's matmul outputs took about 7% of a training
/// step on the calling thread.)
pub fn every_step(h: Tensor<3>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<3> {
    let [b, t, d] = h.dims();
    let out = f(h.swap_dims(0, 1).reshape([t * b, d]));
    let v = out.dims()[1];
    out.reshape([t, b, v]).swap_dims(0, 1)
}

/// The embeddings `[B, T, E]` of `tokens` `[B, T]`, looked up over the steps in time-major order:
/// a view of a `[T, B, E]` tensor, which the recurrent layers take as it is (and whose gradient
/// they return in that order, so the embedding's backward reads it without a copy).
pub fn embed_steps(embedding: &Embedding, tokens: Tensor<2, Int>) -> Tensor<3> {
    embedding.forward(tokens.swap_dims(0, 1)).swap_dims(0, 1)
}
