//! `RnnConfig`, `LstmConfig` and `GruConfig`: PyTorch's constructor arguments as Burn configs.

use burn::config::Config;
use burn::tensor::Device;

use super::cell_kind::CellKind;
use super::fused::Kernels;
use super::gru::GruKind;
use super::init::{GateBias, RecurrentInit};
use super::lstm::LstmKind;
use super::regularise::Regularisation;
use super::rnn::{Nonlinearity, RnnKind};
use super::single_step::RecurrentCell;
use super::stack::{Recurrent, StackSpec};
use super::weights::{CellWeights, WeightSpec};

/// Declares a config with the options every recurrent layer shares (PyTorch's `input_size`,
/// `hidden_size`, `num_layers`, `bidirectional`, `dropout`, `bias`, and the regularisers PyTorch
/// leaves out, [`Regularisation`]) plus the cell's own ones.
macro_rules! recurrent_config {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Config, Debug)]
        pub struct $name {
            /// Width `I` of the input features.
            pub input_size: usize,
            /// Width `H` of the hidden state.
            pub hidden_size: usize,
            /// Number of stacked layers `L`.
            #[config(default = 1)]
            pub num_layers: usize,
            /// Run a second, reversed direction per layer and concatenate (`D = 2`).
            #[config(default = false)]
            pub bidirectional: bool,
            /// Dropout probability on the outputs of every layer but the last (training only).
            #[config(default = 0.0)]
            pub dropout: f64,
            /// Whether the layers have biases `b_ih`, `b_hh`.
            #[config(default = true)]
            pub bias: bool,
            /// Initialiser of the recurrent weights `W_hh`.
            #[config(default = "RecurrentInit::PyTorch")]
            pub recurrent_init: RecurrentInit,
            /// sequent's fused kernels where the device has them, or always the composed tensor ops.
            #[config(default = "Kernels::Fused")]
            pub kernels: Kernels,
            /// Variational dropout on each layer's input, one mask a sequence (Keras' `dropout`;
            /// see [`Regularisation`]).
            #[config(default = 0.0)]
            pub input_dropout: f64,
            /// Variational dropout on `h_{t-1}` in the recurrent product, one mask a sequence
            /// (Keras' `recurrent_dropout`).
            #[config(default = 0.0)]
            pub recurrent_dropout: f64,
            /// DropConnect on `W_hh`, one mask a forward call (AWD-LSTM's weight drop).
            #[config(default = 0.0)]
            pub weight_drop: f64,
            /// Zoneout probability of `h` (and an LSTM's `c`) keeping its previous value.
            #[config(default = 0.0)]
            pub zoneout: f64,
            $($(#[$fdoc])* #[config(default = $default)] pub $field: $ty,)*
        }
    };
}

recurrent_config!(
    /// Configuration of a vanilla RNN stack ([`super::Rnn`]), PyTorch's `nn.RNN` arguments.
    RnnConfig {
        /// `tanh` or `relu`.
        nonlinearity: Nonlinearity = "Nonlinearity::Tanh",
    }
);

recurrent_config!(
    /// Configuration of an LSTM stack ([`super::Lstm`]), PyTorch's `nn.LSTM` arguments.
    LstmConfig {
        /// Initialiser of the gate biases (forget-gate bias, chrono).
        gate_bias: GateBias = "GateBias::Uniform",
        /// Width `P` of the projection `h_t = W_hr (o_t * tanh(c_t))` (PyTorch's `proj_size`;
        /// 0 for none, else less than `hidden_size`): `h` and the outputs are `P` wide, `c`
        /// stays `H` wide.

        proj_size: usize = 0,
        /// Layer-normalised cell ([`CellNorm`](super::CellNorm)).
        layer_norm: bool = false,
    }
);

recurrent_config!(
    /// Configuration of a GRU stack ([`super::Gru`]), PyTorch's `nn.GRU` arguments.
    GruConfig {
        /// Reset gate after the recurrent product (`true`, PyTorch) or before it (`false`, d2l).
        reset_after: bool = true,
        /// Initialiser of the gate biases (update-gate bias, chrono).
        gate_bias: GateBias = "GateBias::Uniform",
        /// Layer-normalised cell ([`CellNorm`](super::CellNorm); needs `reset_after`).
        layer_norm: bool = false,
    }
);

/// Builds the layer from the shared spec of a config, once for all three cells; `parts` gives
/// the cell's own settings from the config `$c`: its kind, gate-bias initialiser, projection
/// width and layer norm.
macro_rules! impl_init {
    ($config:ident, $cell:ty, |$c:ident| $parts:expr) => {
        impl $config {
            fn parts(&self) -> ($cell, GateBias, usize, bool) {
                let $c = self;
                $parts
            }

            fn spec(&self) -> StackSpec {
                let (_, gate_bias, proj_size, layer_norm) = self.parts();
                StackSpec {
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    num_layers: self.num_layers,
                    bidirectional: self.bidirectional,
                    dropout: self.dropout,
                    kernels: self.kernels,
                    regularise: Regularisation {
                        input_dropout: self.input_dropout,
                        recurrent_dropout: self.recurrent_dropout,
                        weight_drop: self.weight_drop,
                        zoneout: self.zoneout,
                    },
                    weights: WeightSpec {
                        gates: <$cell>::GATES,
                        input_size: self.input_size,
                        hidden_size: self.hidden_size,
                        proj_size,
                        layer_norm,
                        cell_state: <$cell>::HAS_CELL,
                        bias: self.bias,
                        init: self.recurrent_init.clone(),
                        gate_bias,
                        keep_gate: <$cell>::KEEP_GATE,
                    },
                }
            }

            fn kind(&self) -> $cell {
                self.parts().0
            }

            /// Builds the layer stack on `device`.
            ///
            /// # Panics
            /// With the message of the error [`Self::try_init`] would return.
            pub fn init(&self, device: &Device) -> Recurrent<$cell> {
                self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
            }

            /// [`Self::init`], or a typed error if a size is 0, a probability (`dropout` and the
            /// [`Regularisation`] ones) is outside `[0, 1)`, an LSTM's `proj_size` is not below
            /// `hidden_size` or a GRU with `layer_norm` has its reset gate before the product.
            pub fn try_init(&self, device: &Device) -> crate::Result<Recurrent<$cell>> {
                Recurrent::from_spec(self.spec(), self.kind(), device)
            }

            /// Builds a single-step cell (layer 0, forward direction of this config) on `device`.
            pub fn init_cell(&self, device: &Device) -> RecurrentCell<$cell> {
                let spec = self.spec();
                RecurrentCell::new(
                    CellWeights::new(&spec.weights, device),
                    self.kind(),
                    spec.kernels,
                    spec.hidden_size,
                )
            }
        }
    };
}

impl_init!(RnnConfig, RnnKind, |c| (
    RnnKind {
        nonlinearity: c.nonlinearity
    },
    GateBias::Uniform,
    0,
    false
));
impl_init!(LstmConfig, LstmKind, |c| (
    LstmKind,
    c.gate_bias.clone(),
    c.proj_size,
    c.layer_norm
));
impl_init!(GruConfig, GruKind, |c| (
    GruKind {
        reset_after: c.reset_after
    },
    c.gate_bias.clone(),
    0,
    c.layer_norm
));
