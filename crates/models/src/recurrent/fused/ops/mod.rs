//! The fused ops as a Burn backend extension: implemented for Flex and NdArray (host kernels) and
//! for their `Autodiff` wrappers (hand-written backward). Other backends never see these ops:
//! [`super::available`] keeps them on the composed tensor-op path. The trait and the arguments of
//! its sequence op are here; the host implementations are in `host_backends` (the step ops) and
//! `sequence` (the sequence op), the backward nodes in `autodiff`.

// burn-ndarray is deprecated in Burn 0.22 but still a backend sequent supports.
#![allow(deprecated)]

mod autodiff;
mod host_backends;
mod sequence;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, ExtensionType, TensorMetadata, backend_extension};

use super::sequence::{Direction, FusedCell};

/// A layer's input as the sequence op takes it.
#[derive(ExtensionType)]
pub enum SequenceInput<B: Backend> {
    /// Features `[T, B, I]` in time order (a parent of the op under autodiff).
    Features(FloatTensor<B>),
    /// Token ids `[T, B]` in time order, each the one-hot vector `e_v` of a vocabulary of `V`:
    /// token `v`'s input projection is column `v` of `W_ih` `[G*H, V]` (for a first layer over
    /// an embedding `E`, `W_ih E^T`). The tokens get no gradient.
    Tokens(IntTensor<B>),
}

impl<B: Backend> SequenceInput<B> {
    /// Steps `T` and batch rows `B`.
    pub fn steps_and_batch(&self) -> (usize, usize) {
        let shape = match self {
            SequenceInput::Features(x) => x.shape(),
            SequenceInput::Tokens(ids) => ids.shape(),
        };
        (shape[0], shape[1])
    }
}

/// A layer direction's weights: `W_ih` `[G*H, I]`, `b_ih` `[G*H]`, `W_hh` `[G*H, R]`, `b_hh`
/// `[G*H]` (zero biases for a layer without biases), an LSTM's projection `W_hr` `[R, H]` and a
/// layer-normalised cell's layer norms (`R`, the width of `h`: `H`, or `P` with a projection).
#[derive(ExtensionType)]
pub struct DirectionWeights<B: Backend> {
    /// `W_ih`, `[G*H, I]` (`[G*H, V]` over tokens).
    pub w_ih: FloatTensor<B>,
    /// `b_ih`, `[G*H]`.
    pub b_ih: FloatTensor<B>,
    /// `W_hh`, `[G*H, R]`.
    pub w_hh: FloatTensor<B>,
    /// `b_hh`, `[G*H]`.
    pub b_hh: FloatTensor<B>,
    /// An LSTM's projection.
    #[extension_type]
    pub projection: Projection<B>,
    /// The layer norms of a layer-normalised cell.
    #[extension_type]
    pub norms: LayerNorms<B>,
}

/// An LSTM's projection `h_t = W_hr (o_t * tanh(c_t))` (PyTorch's `proj_size`).
#[derive(ExtensionType)]
pub enum Projection<B: Backend> {
    /// None: `h_t` is `o_t * tanh(c_t)`.
    Off,
    /// `W_hr`, `[P, H]`.
    On(FloatTensor<B>),
}

/// A layer norm's gain `gamma` and bias `beta`, `[W]` each.
#[derive(ExtensionType)]
pub struct NormWeights<B: Backend> {
    /// `gamma`, `[W]`.
    pub gamma: FloatTensor<B>,
    /// `beta`, `[W]`.
    pub beta: FloatTensor<B>,
}

/// The layer norms of a layer direction ([`CellNorm`](crate::recurrent::CellNorm)).
#[derive(ExtensionType)]
pub enum LayerNorms<B: Backend> {
    /// A plain cell.
    Off,
    /// A layer-normalised GRU's: of the input product, then of the recurrent product (`[G*H]`).
    Products(
        #[extension_type] NormWeights<B>,
        #[extension_type] NormWeights<B>,
    ),
    /// A layer-normalised LSTM's: those two, then the cell state's (`[H]`).
    ProductsCell(
        #[extension_type] NormWeights<B>,
        #[extension_type] NormWeights<B>,
        #[extension_type] NormWeights<B>,
    ),
}

impl<B: Backend> LayerNorms<B> {
    /// The gains and biases in order: `gamma_ih, beta_ih, gamma_hh, beta_hh` (and `gamma_c,
    /// beta_c`); none for `Off`.
    pub fn into_tensors(self) -> Vec<FloatTensor<B>> {
        let pairs = match self {
            LayerNorms::Off => vec![],
            LayerNorms::Products(ih, hh) => vec![ih, hh],
            LayerNorms::ProductsCell(ih, hh, c) => vec![ih, hh, c],
        };
        pairs.into_iter().flat_map(|n| [n.gamma, n.beta]).collect()
    }

    /// From the gains and biases in the order of [`Self::into_tensors`].
    pub fn from_tensors(tensors: Vec<FloatTensor<B>>) -> Self {
        let mut it = tensors.into_iter();
        let mut pair = || {
            let gamma = it.next()?;
            Some(NormWeights {
                gamma,
                beta: it.next().expect("a beta for each gamma"),
            })
        };
        match (pair(), pair(), pair()) {
            (None, ..) => LayerNorms::Off,
            (Some(ih), Some(hh), None) => LayerNorms::Products(ih, hh),
            (Some(ih), Some(hh), Some(c)) => LayerNorms::ProductsCell(ih, hh, c),
            (Some(_), None, _) => panic!("a layer norm of the recurrent product for the input's"),
        }
    }
}

/// The directions of a layer that one sequence op runs, with their weights.
#[derive(ExtensionType)]
pub enum SequenceWeights<B: Backend> {
    /// One direction, visiting time in its [`Direction`] (the reverse one from `t = T-1` down to
    /// 0, over the input as it is).
    One(#[extension_type] DirectionWeights<B>, Direction),
    /// Both directions of a bidirectional layer at the same time: the forward direction's
    /// weights, then the reverse one's.
    Both(
        #[extension_type] DirectionWeights<B>,
        #[extension_type] DirectionWeights<B>,
    ),
}

/// A layer's initial state: `h0` and, for the LSTM, `c0`, each `[B, H]` for one direction or
/// `[2, B, H]` for both (the forward direction first).
#[derive(ExtensionType)]
pub enum InitialState<B: Backend> {
    /// `h0` (GRU, tanh RNN).
    Hidden(FloatTensor<B>),
    /// `h0` and `c0` (LSTM).
    HiddenCell(FloatTensor<B>, FloatTensor<B>),
}

/// Recurrent dropout's mask on `h_{t-1}` in the recurrent product (see
/// [`LayerInputs::recurrent_mask`](super::sequence::LayerInputs::recurrent_mask)): `[B, H]` for
/// one direction, `[2, B, H]` for both (the forward direction's first). It is no parent of the op.
#[derive(ExtensionType)]
pub enum RecurrentMask<B: Backend> {
    /// No recurrent dropout.
    Off,
    /// The mask, entries 0 or `1 / (1 - p)`.
    On(FloatTensor<B>),
}

/// Zoneout's `d_t` in a sequence op (see
/// [`ZoneoutRates`](super::sequence::ZoneoutRates)). It is no parent of the op.
#[derive(Debug)]
pub enum ZoneoutMasks {
    /// No zoneout.
    Off,
    /// Evaluation: `d_t = p` for every unit and step (zoneout's expectation).
    Expectation(f64),
    /// Training: for each direction (the forward one first) the 0/1 masks of `h` `[T, B, R]` and
    /// then (LSTM) of `c` `[T, B, H]`, in time order, on the host (the host engine's op alone
    /// takes them).
    Masks(Vec<Vec<f32>>),
}

/// The regularisers inside the recurrence that a sequence op applies.
#[derive(ExtensionType)]
pub struct Regularisers<B: Backend> {
    /// Recurrent dropout's mask.
    #[extension_type]
    pub recurrent: RecurrentMask<B>,
    /// Zoneout's `d_t`.
    pub zoneout: ZoneoutMasks,
}

/// Fused pointwise parts of the recurrent cells and the whole-sequence op.
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
    /// A whole layer of `cell`, one direction or both at once, over `input` from `state`, as one
    /// op (its BPTT inside one backward node) -> `[T, B, D*R]`, `D` the number of directions: per
    /// time, the forward direction's `h_t` and then the reverse one's (the next layer's input as
    /// it is). With a cell state (LSTM) `K` more slabs follow, `[T + K, B, D*R]`: the final cell
    /// states `[B, D*H]` side by side, then zeros (`K = ceil(H / R)`, 1 but with a projection). With a recurrent mask each step's recurrent product reads
    /// `h_{t-1}` times it; with zoneout each step's state moves only `1 - d_t` of the way to
    /// the cell's update.
    fn sequence(
        cell: FusedCell,
        #[extension_type] input: SequenceInput<Self>,
        #[extension_type] weights: SequenceWeights<Self>,
        #[extension_type] state: InitialState<Self>,
        #[extension_type] regularisers: Regularisers<Self>,
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
