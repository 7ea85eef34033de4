//! The parameters of one layer and direction, in PyTorch's packed layout.

use burn::module::{Module, Param, ParamId};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Tensor};

use super::init::{GateBias, RecurrentInit};

/// Weights of one layer and direction, packed and laid out exactly as PyTorch's:
/// `weight_ih` `[G*H, I]`, `weight_hh` `[G*H, R]`, `bias_ih` and `bias_hh` `[G*H]`, with the `G`
/// gate blocks stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n; RNN one block), and for
/// an LSTM with a projection `weight_hr` `[P, H]`. `R` is the width of the hidden state: `H`, or
/// `P` with a projection.
#[derive(Module, Debug)]
pub struct CellWeights {
    /// Input-to-hidden weights `W_ih`, `[G*H, I]`.
    pub weight_ih: Param<Tensor<2>>,
    /// Hidden-to-hidden weights `W_hh`, `[G*H, R]`.
    pub weight_hh: Param<Tensor<2>>,
    /// Input bias `b_ih`, `[G*H]` (absent when `bias = false`).
    pub bias_ih: Option<Param<Tensor<1>>>,
    /// Hidden bias `b_hh`, `[G*H]` (absent when `bias = false`).
    pub bias_hh: Option<Param<Tensor<1>>>,
    /// Projection `W_hr` `[P, H]` of an LSTM with `proj_size = P > 0` (PyTorch's `weight_hr`).
    pub weight_hr: Option<Param<Tensor<2>>>,
    /// The layer norms of a layer-normalised cell (`layer_norm = true`).
    pub layer_norm: Option<CellNorm>,
}

/// The layer norms of a layer-normalised LSTM or GRU (Ba, Kiros & Hinton 2016, as haste's
/// `LayerNormLSTM`): each normalises its input over the last axis and applies its own gain
/// `gamma` (starting at 1) and bias `beta` (starting at 0).
///
/// ```text
/// x_proj = LN_ih(W_ih x_t) + b_ih         h_proj = LN_hh(W_hh h_{t-1}) + b_hh      ([G*H] each)
/// LSTM:  c_t as the plain cell,  h_t = sigmoid(o) * tanh(LN_c(c_t))                 ([H])
/// ```
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use sequent_models::recurrent::{GruConfig, LstmConfig};
///
/// let device = Device::flex();
/// let lstm = LstmConfig::new(8, 16).with_layer_norm(true).init(&device);
/// let norms = lstm.layers[0].forward.layer_norm.as_ref().unwrap();
/// assert_eq!(norms.ih.gamma.dims(), [64]); // over the 4 gates' pre-activations
/// assert_eq!(norms.c.as_ref().unwrap().gamma.dims(), [16]);
/// let (out, _) = lstm.forward(Tensor::zeros([2, 5, 8], &device), None);
/// assert_eq!(out.dims(), [2, 5, 16]);
/// // The GRU takes it with the reset gate after its product (PyTorch's form) only.
/// assert!(GruConfig::new(8, 16).with_reset_after(false).with_layer_norm(true).try_init(&device).is_err());
/// ```
#[derive(Module, Debug)]
pub struct CellNorm {
    /// Layer norm of the input product `W_ih x_t`, `[G*H]`.
    pub ih: LayerNorm,
    /// Layer norm of the recurrent product `W_hh h_{t-1}`, `[G*H]`.
    pub hh: LayerNorm,
    /// Layer norm of the LSTM's cell state before its output `tanh`, `[H]`.
    pub c: Option<LayerNorm>,
}

/// The `eps` of every layer norm of a [`CellNorm`] (PyTorch's and Burn's default), which the
/// fused sequence op uses too.
pub(crate) const LAYER_NORM_EPSILON: f64 = 1e-5;

/// What [`CellWeights::new`] needs to know about the layer.
#[derive(Clone, Debug)]
pub(crate) struct WeightSpec {
    pub gates: usize,
    pub input_size: usize,
    pub hidden_size: usize,
    /// Width `P` of the LSTM's projection, 0 for none.
    pub proj_size: usize,
    /// Whether the cell is layer-normalised ([`CellNorm`]).
    pub layer_norm: bool,
    /// Whether the cell has a cell state `c` (LSTM), which a layer-normalised cell normalises.
    pub cell_state: bool,
    pub bias: bool,
    pub init: RecurrentInit,
    pub gate_bias: GateBias,
    /// Index of the gate block that keeps the old state (LSTM f, GRU z), for `gate_bias`.
    pub keep_gate: Option<usize>,
}

impl CellWeights {
    /// Fresh weights: PyTorch's `U(-1/sqrt(H), 1/sqrt(H))` everywhere, then the recurrent and
    /// gate-bias initialisers of `spec` on top.
    pub(crate) fn new(spec: &WeightSpec, device: &Device) -> Self {
        let gh = spec.gates * spec.hidden_size;
        let weight_hh =
            spec.init
                .recurrent_weight(spec.gates, spec.hidden_size, spec.state_width(), device);
        let (bias_ih, bias_hh) = if spec.bias {
            let (ih, hh) =
                spec.gate_bias
                    .biases(spec.gates, spec.hidden_size, spec.keep_gate, device);
            (Some(param(ih)), Some(param(hh)))
        } else {
            (None, None)
        };
        Self {
            weight_ih: param(super::init::pytorch_uniform(
                [gh, spec.input_size],
                spec.hidden_size,
                device,
            )),
            weight_hh: param(weight_hh),
            bias_ih,
            bias_hh,
            layer_norm: spec.layer_norm.then(|| {
                let norm = |width| {
                    LayerNormConfig::new(width)
                        .with_epsilon(LAYER_NORM_EPSILON)
                        .init(device)
                };
                CellNorm {
                    ih: norm(gh),
                    hh: norm(gh),
                    c: spec.cell_state.then(|| norm(spec.hidden_size)),
                }
            }),
            weight_hr: (spec.proj_size > 0).then(|| {
                param(super::init::pytorch_uniform(
                    [spec.proj_size, spec.hidden_size],
                    spec.hidden_size,
                    device,
                ))
            }),
        }
    }

    /// The input projection `x W_ih^T + b_ih` (`LN_ih(x W_ih^T) + b_ih` if layer-normalised) as
    /// an affine map.
    pub fn input_affine(&self) -> Affine {
        Affine {
            norm: self.layer_norm.as_ref().map(|n| n.ih.clone()),
            ..Affine::new(self.weight_ih.val(), self.bias_ih.as_ref().map(Param::val))
        }
    }

    /// The recurrent projection `h W_hh^T + b_hh` restricted to gate rows `rows` of `W_hh`
    /// (`LN_hh(h W_hh^T) + b_hh` if layer-normalised, which takes every row).
    pub fn hidden_affine(&self, rows: std::ops::Range<usize>) -> Affine {
        let len = rows.end - rows.start;
        let norm = self.layer_norm.as_ref().map(|n| {
            assert_eq!(len, self.gate_rows(), "a layer norm takes every gate row");
            n.hh.clone()
        });
        Affine {
            norm,
            ..Affine::new(
                self.weight_hh.val().narrow(0, rows.start, len),
                self.bias_hh
                    .as_ref()
                    .map(|b| b.val().narrow(0, rows.start, len)),
            )
        }
    }

    /// Number of stacked rows `G*H` of the weight matrices.
    pub fn gate_rows(&self) -> usize {
        self.weight_hh.dims()[0]
    }

    /// Width `R` of the hidden state `h`: `P` with a projection, else `H`.
    pub fn state_width(&self) -> usize {
        self.weight_hh.dims()[1]
    }

    /// These weights with `weight_hh` replaced by `weight_hh` (a value computed from this layer's
    /// own, such as weight drop's masked one, whose gradient flows back to it).
    pub(crate) fn with_weight_hh(&self, weight_hh: Tensor<2>) -> Self {
        Self {
            weight_hh: Param::initialized(ParamId::new(), weight_hh),
            ..self.clone()
        }
    }

    /// The projection `h = m W_hr^T` of an LSTM with `proj_size > 0`.
    pub fn projection(&self) -> Option<Affine> {
        self.weight_hr.as_ref().map(|w| Affine::new(w.val(), None))
    }
}

impl WeightSpec {
    /// Width `R` of the hidden state: `P` with a projection, else `H`.
    pub fn state_width(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }
}

/// A trainable parameter from an initial value; `detach` makes values computed by several ops
/// (orthogonal blocks, gate biases) a leaf of the autodiff graph.
fn param<const D: usize>(value: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(value.detach())
}

/// An affine map `y = x W^T + b` (or `y = LN(x W^T) + b` with a layer norm) with `W^T`
/// transposed once, ready to be applied at every step.
#[derive(Clone, Debug)]
pub struct Affine {
    weight_t: Tensor<2>,
    bias: Option<Tensor<2>>,
    norm: Option<LayerNorm>,
}

impl Affine {
    /// From a weight `[out, in]` (PyTorch layout) and an optional bias `[out]`.
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight_t: weight.transpose(),
            bias: bias.map(|b| b.unsqueeze_dim(0)),
            norm: None,
        }
    }

    /// `x W^T + b` (`LN(x W^T) + b`) for `x` `[N, in]`, giving `[N, out]`.
    pub fn apply(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight_t.clone());
        let y = match &self.norm {
            Some(norm) => norm.forward(y),
            None => y,
        };
        match &self.bias {
            Some(b) => y + b.clone(),
            None => y,
        }
    }
}
