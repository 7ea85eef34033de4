//! The fused pointwise ops as a Burn backend extension: implemented for Flex and NdArray (host
//! kernels) and for their `Autodiff` wrappers (hand-written backward). Other backends never see
//! these ops: [`super::available`] keeps them on the composed tensor-op path. The trait is
//! here, its implementations for the host backends in `host_backends` and under autodiff in
//! `autodiff`.

// burn-ndarray is deprecated in Burn 0.22 but still a backend sequent supports.
#![allow(deprecated)]

mod autodiff;
mod host_backends;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, backend_extension};

use super::sequence::{FusedCell, SequenceCell};

/// The GRU (reset after) as a sequence op's cell.
const GRU: FusedCell = FusedCell::Gated(SequenceCell::Gru);
/// The tanh RNN as a sequence op's cell.
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
