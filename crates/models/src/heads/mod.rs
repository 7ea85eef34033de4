//! Task heads: what users plug data into. A language model (tokens in, next-token logits out) and
//! a sequence model with a readout (sequence classification, sequence-to-one and
//! sequence-to-sequence regression).

mod language;
mod readout;

pub use language::{LanguageModel, LanguageModelConfig};
pub use readout::{Readout, SequenceForecaster, SequenceModel};

use burn::tensor::Tensor;

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
