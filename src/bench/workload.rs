//! What a benchmark measures: the cell, the mode, the implementation and the workload's shape.

/// Which recurrent cell a workload uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Vanilla tanh RNN.
    Rnn,
    /// LSTM.
    Lstm,
    /// GRU (`reset_after = true`, as in PyTorch and `burn::nn`).
    Gru,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 3] = [Kind::Lstm, Kind::Gru, Kind::Rnn];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rnn => "rnn",
            Kind::Lstm => "lstm",
            Kind::Gru => "gru",
        }
    }

    /// Gate blocks `G` of the cell (its weights are `[G H, ...]`).
    pub fn gates(self) -> usize {
        match self {
            Kind::Rnn => 1,
            Kind::Lstm => 4,
            Kind::Gru => 3,
        }
    }
}

/// An option beyond PyTorch's that a bench column times on sequent's layers, at the setting
/// given here (`sequent bench --option`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerOption {
    /// `input_dropout = 0.25`.
    InputDropout,
    /// `recurrent_dropout = 0.25`.
    RecurrentDropout,
    /// `weight_drop = 0.5`.
    WeightDrop,
    /// `zoneout = 0.1`.
    Zoneout,
    /// `layer_norm = true` (LSTM and GRU).
    LayerNorm,
    /// `proj_size = H / 2` (LSTM).
    Proj,
}

impl LayerOption {
    /// Every option.
    pub const ALL: [LayerOption; 6] = [
        LayerOption::InputDropout,
        LayerOption::RecurrentDropout,
        LayerOption::WeightDrop,
        LayerOption::Zoneout,
        LayerOption::LayerNorm,
        LayerOption::Proj,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LayerOption::InputDropout => "input-dropout",
            LayerOption::RecurrentDropout => "recurrent-dropout",
            LayerOption::WeightDrop => "weight-drop",
            LayerOption::Zoneout => "zoneout",
            LayerOption::LayerNorm => "layer-norm",
            LayerOption::Proj => "proj",
        }
    }

    /// Whether the option applies to `kind`'s layers.
    pub fn fits(self, kind: Kind) -> bool {
        match self {
            LayerOption::LayerNorm => kind != Kind::Rnn,
            LayerOption::Proj => kind == Kind::Lstm,
            _ => true,
        }
    }
}

impl std::str::FromStr for LayerOption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LayerOption::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = LayerOption::ALL.iter().map(|o| o.name()).collect();
                format!("unknown option `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// Which implementation of the recurrent layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `sequent_models::recurrent`.
    Sequent,
    /// `sequent_models::recurrent` with an option beyond PyTorch's.
    SequentWith(LayerOption),
    /// `burn::nn::{Rnn, Lstm, Gru}`, stacked by hand (burn::nn has no `num_layers`).
    BurnNn,
    /// `sequent_models::recurrent` on the composed tensor ops, step by step
    /// ([`Kernels::Composed`](sequent_models::recurrent::Kernels::Composed)).
    PerStep,
}

impl Implementation {
    /// Name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Sequent => "sequent",
            Implementation::SequentWith(option) => match option {
                LayerOption::InputDropout => "sequent+input-dropout",
                LayerOption::RecurrentDropout => "sequent+recurrent-dropout",
                LayerOption::WeightDrop => "sequent+weight-drop",
                LayerOption::Zoneout => "sequent+zoneout",
                LayerOption::LayerNorm => "sequent+layer-norm",
                LayerOption::Proj => "sequent+proj",
            },
            Implementation::BurnNn => "burn-nn",
            Implementation::PerStep => "sequent-per-step",
        }
    }
}

/// What is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A training step: forward, backward, Adam update (sequent's one-pass
    /// [`FusedAdam`](sequent_train::optim::FusedAdam), for sequent's layers and `burn::nn`'s
    /// alike). Tokens = `B * T`.
    Train,
    /// A forward pass without gradients. Tokens = `B * T`.
    Infer,
    /// Generation with batch 1, one token at a time, the state carried. Tokens = `T`.
    Stream,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Train, Mode::Infer, Mode::Stream];

    /// Lower-case name (as `torch_reference.py` spells it).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Infer => "infer",
            Mode::Stream => "stream",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode `{s}`; expected train, infer or stream"))
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown kind `{s}`; expected lstm, gru or rnn"))
    }
}

/// The shape of a char-LM workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// What is timed.
    pub mode: Mode,
    /// Cell kind.
    pub kind: Kind,
    /// Hidden width `H` (also the embedding width).
    pub hidden: usize,
    /// Number of layers `L`.
    pub layers: usize,
    /// Batch size `B`.
    pub batch: usize,
    /// Sequence length `T`.
    pub seq: usize,
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Bidirectional layers (`D = 2`; training and inference only: generation is causal).
    pub bidirectional: bool,
    /// Whether sequent's model folds the embedding into its first layer where
    /// [`Recurrent::folds_embedding`](sequent_models::recurrent::Recurrent::folds_embedding)
    /// holds (`LanguageModel` does; `sequent bench --no-fold` times sequent's layers over the
    /// embedded sequence instead, as PyTorch and `burn::nn` compute it).
    pub fold_embedding: bool,
}

impl Workload {
    /// The reference workload W1 for `kind`: training, L = 2, H = 256, B = 32, T = 35, V = 64.
    pub fn w1(kind: Kind) -> Self {
        Self {
            mode: Mode::Train,
            kind,
            hidden: 256,
            layers: 2,
            batch: 32,
            seq: 35,
            vocab: 64,
            bidirectional: false,
            fold_embedding: true,
        }
    }

    /// Directions `D` of each layer.
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// The cell's name, `bi`-prefixed for bidirectional layers (`bilstm`).
    pub fn kind_name(&self) -> String {
        let prefix = if self.bidirectional { "bi" } else { "" };
        format!("{prefix}{}", self.kind.name())
    }

    /// Floating-point operations of one training token (forward and backward, multiply-adds
    /// counted as two): per layer and direction the `[G H x (I + H)]` products of the forward,
    /// and twice that in the backward (`dx`, `dh` and the weight gradients), `6 G H (I + H)`,
    /// with `I = H` (the embedding width) for the first layer and `I = D H` above it; plus the
    /// head's `6 D H V`. LSTM `G = 4`, GRU 3, RNN 1 (unidirectional: `12 G H^2` a layer).
    /// With the embedding `folded` into the first layer its input products are instead the
    /// `[G H x H] x [H x V]` product `W_ih E^T` and its two backward products once a step:
    /// `6 G H H V / (T B)` a token.
    pub fn train_flops_per_token(&self, folded: bool) -> f64 {
        let (g, h, v) = (
            self.kind.gates() as f64,
            self.hidden as f64,
            self.vocab as f64,
        );
        let d = self.directions() as f64;
        let layer = |input: f64| d * 6.0 * g * h * (input + h);
        let first = if folded {
            layer(0.0) + 6.0 * g * h * h * v / (self.seq * self.batch) as f64
        } else {
            layer(h)
        };
        first + (self.layers - 1) as f64 * layer(d * h) + 6.0 * d * h * v
    }

    /// The GEMM shapes `(m, k, n)` of a training step of this workload: the input projection
    /// `[T B x H] x [H x G H]` and a weight gradient `[G H x T B] x [T B x H]`.
    pub fn gemm_shapes(&self) -> [(usize, usize, usize); 2] {
        let (gates, rows, h) = (self.kind.gates(), self.seq * self.batch, self.hidden);
        [(rows, h, gates * h), (gates * h, rows, h)]
    }
}

/// The workloads of a benchmark run: every combination of the given modes, kinds, widths and
/// lengths, with `layers` (bidirectional or not), `batch` and vocabulary 64.
pub fn workloads(
    modes: &[Mode],
    kinds: &[Kind],
    hidden: &[usize],
    seq: &[usize],
    (layers, bidirectional): (usize, bool),
    batch: usize,
) -> Vec<Workload> {
    let mut all = Vec::new();
    for &mode in modes {
        for &kind in kinds {
            for &h in hidden {
                for &t in seq {
                    all.push(Workload {
                        mode,
                        kind,
                        hidden: h,
                        layers,
                        batch,
                        seq: t,
                        vocab: 64,
                        bidirectional,
                        fold_embedding: true,
                    });
                }
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_flops_count_the_gate_products_three_times() {
        let mut w = Workload::w1(Kind::Lstm);
        w.hidden = 1024;
        // 2 layers x 3 passes x 2 FLOPs x [4H x 2H] per token, plus the head's 6 H V.
        let want = 2.0 * 3.0 * 2.0 * (4.0 * 1024.0) * 2048.0 + 6.0 * 1024.0 * 64.0;
        assert_eq!(w.train_flops_per_token(false), want);
        w.kind = Kind::Rnn;
        let (h, v, tokens) = (1024.0, 64.0, 1120.0);
        assert_eq!(
            w.train_flops_per_token(false),
            2.0 * 12.0 * h * h + 6.0 * h * v
        );
        // Folded: the first layer's input products are `[H x H] x [H x V]` three times a step.
        assert_eq!(
            w.train_flops_per_token(true),
            6.0 * h * h + 12.0 * h * h + 6.0 * h * h * v / tokens + 6.0 * h * v
        );
        assert_eq!(w.gemm_shapes(), [(1120, 1024, 1024), (1024, 1120, 1024)]);
        // Bidirectional: two directions a layer, the second layer reading 2H; the head 2H wide.
        w.bidirectional = true;
        let h = 1024.0;
        let want = 2.0 * 6.0 * h * (h + h) + 2.0 * 6.0 * h * (2.0 * h + h) + 6.0 * 2.0 * h * 64.0;
        assert_eq!(w.train_flops_per_token(false), want);
    }
}
