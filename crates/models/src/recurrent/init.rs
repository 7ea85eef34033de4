//! Initialisers for recurrent weights and gate biases.

use burn::config::Config;
use burn::nn::Initializer;
use burn::tensor::{Device, Distribution, Tensor};

/// How the recurrent weights `W_hh` are initialised (input weights and biases always start from
/// PyTorch's `U(-1/sqrt(H), 1/sqrt(H))`).
#[derive(Config, Debug, PartialEq)]
pub enum RecurrentInit {
    /// PyTorch's default: `W_hh ~ U(-1/sqrt(H), 1/sqrt(H))`.
    PyTorch,
    /// Each `[H, H]` gate block of `W_hh` is a random orthogonal matrix (Saxe et al. 2014), as in
    /// Keras' `recurrent_initializer="orthogonal"`; keeps `||h W^T||` = `||h||` at the start.
    /// (With an LSTM projection the `[H, P]` blocks have orthonormal columns.)
    Orthogonal,
}

/// How the gate biases are initialised.
#[derive(Config, Debug, PartialEq)]
pub enum GateBias {
    /// PyTorch's default: every bias `~ U(-1/sqrt(H), 1/sqrt(H))`.
    Uniform,
    /// The gate that keeps the old state (LSTM forget gate `f`, GRU update gate `z`) gets total
    /// bias `value` (`b_ih = value`, `b_hh = 0` on that block), the other gates stay uniform
    /// (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0 for the LSTM forget gate).
    Keep {
        /// The bias of the keep gate.
        value: f64,
    },
    /// Chrono initialisation (Tallec & Ollivier 2018): keep-gate bias `b ~ log(U(1, T_max - 1))`
    /// so that the gate's time constants spread over `[1, T_max]`; for an LSTM the input gate gets
    /// `-b`. Other biases are zero.
    Chrono {
        /// The longest dependency the model should start out able to hold, `T_max >= 3`.
        max_len: f64,
    },
}

/// PyTorch's `U(-1/sqrt(H), 1/sqrt(H))` draw.
pub(crate) fn pytorch_uniform<const D: usize>(
    shape: [usize; D],
    hidden: usize,
    device: &Device,
) -> Tensor<D> {
    let k = 1.0 / (hidden as f64).sqrt();
    Tensor::random(shape, Distribution::Uniform(-k, k), device)
}

impl RecurrentInit {
    /// `W_hh`, `[gates * H, R]` (`R = H`, or the LSTM's projection width `P`).
    pub(crate) fn recurrent_weight(
        &self,
        gates: usize,
        hidden: usize,
        width: usize,
        device: &Device,
    ) -> Tensor<2> {
        match self {
            Self::PyTorch => pytorch_uniform([gates * hidden, width], hidden, device),
            Self::Orthogonal => {
                let blocks = (0..gates)
                    .map(|_| {
                        Initializer::Orthogonal { gain: 1.0 }
                            .init::<2, _>([hidden, width], device)
                            .val()
                    })
                    .collect();
                Tensor::cat(blocks, 0)
            }
        }
    }
}

impl GateBias {
    /// `(b_ih, b_hh)`, each `[gates * H]`. `keep_gate` is the block index of the gate that keeps
    /// the old state; `None` (vanilla RNN) allows only [`GateBias::Uniform`].
    pub(crate) fn biases(
        &self,
        gates: usize,
        hidden: usize,
        keep_gate: Option<usize>,
        device: &Device,
    ) -> (Tensor<1>, Tensor<1>) {
        let uniform = || pytorch_uniform([gates * hidden], hidden, device);
        let block = |b: Tensor<1>, gate: usize, value: Tensor<1>| {
            b.slice_assign(gate * hidden..(gate + 1) * hidden, value)
        };
        match (self, keep_gate) {
            (Self::Uniform, _) => (uniform(), uniform()),
            (Self::Keep { value }, Some(keep)) => (
                block(uniform(), keep, Tensor::full([hidden], *value, device)),
                block(uniform(), keep, Tensor::zeros([hidden], device)),
            ),
            (Self::Chrono { max_len }, Some(keep)) => {
                assert!(
                    *max_len >= 3.0,
                    "chrono initialisation needs max_len >= 3, got {max_len}"
                );
                let b = Tensor::<1>::random(
                    [hidden],
                    Distribution::Uniform(1.0, max_len - 1.0),
                    device,
                )
                .log();
                let mut ih = block(Tensor::zeros([gates * hidden], device), keep, b.clone());
                if gates == 4 {
                    // LSTM: the input gate (block 0) mirrors the forget gate.
                    ih = block(ih, 0, b.neg());
                }
                (ih, Tensor::zeros([gates * hidden], device))
            }
            (other, None) => {
                panic!("{other:?} gate-bias initialisation needs a gated cell (LSTM or GRU)")
            }
        }
    }
}
