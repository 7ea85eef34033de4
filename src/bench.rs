//! The reference training workload (W1): a char-level language model
//! `embedding(V -> H) -> L recurrent layers x H -> linear(H -> V)`, cross-entropy, Adam, timed for
//! sequent's layers and for `burn::nn`'s layers of the same kind on the same device.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};

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
}

/// Which implementation of the recurrent layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `sequent_models::recurrent`.
    Sequent,
    /// `burn::nn::{Rnn, Lstm, Gru}`, stacked by hand (burn::nn has no `num_layers`).
    BurnNn,
}

impl Implementation {
    /// Name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Sequent => "sequent",
            Implementation::BurnNn => "burn-nn",
        }
    }
}

/// The shape of a char-LM training workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
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
}

impl Workload {
    /// The reference workload W1 for `kind`: L = 2, H = 256, B = 32, T = 35, V = 64.
    pub fn w1(kind: Kind) -> Self {
        Self {
            kind,
            hidden: 256,
            layers: 2,
            batch: 32,
            seq: 35,
            vocab: 64,
        }
    }
}

/// A sequence-to-sequence recurrent stack `[B, T, H] -> [B, T, H]`.
pub trait SeqLayer: Module + burn::module::ModuleDisplay {
    /// Runs the stack from the zero state.
    fn run(&self, x: Tensor<3>) -> Tensor<3>;
}

impl<C: CellKind> SeqLayer for Recurrent<C> {
    fn run(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward(x, None).0
    }
}

/// `burn::nn` LSTM layers stacked by hand.
#[derive(Module, Debug)]
pub struct BurnLstmStack {
    layers: Vec<burn::nn::Lstm>,
}

/// `burn::nn` GRU layers stacked by hand.
#[derive(Module, Debug)]
pub struct BurnGruStack {
    layers: Vec<burn::nn::Gru>,
}

/// `burn::nn` RNN layers stacked by hand.
#[derive(Module, Debug)]
pub struct BurnRnnStack {
    layers: Vec<burn::nn::Rnn>,
}

impl SeqLayer for BurnLstmStack {
    fn run(&self, x: Tensor<3>) -> Tensor<3> {
        self.layers.iter().fold(x, |x, l| l.forward(x, None).0)
    }
}

impl SeqLayer for BurnGruStack {
    fn run(&self, x: Tensor<3>) -> Tensor<3> {
        self.layers.iter().fold(x, |x, l| l.forward(x, None))
    }
}

impl SeqLayer for BurnRnnStack {
    fn run(&self, x: Tensor<3>) -> Tensor<3> {
        self.layers.iter().fold(x, |x, l| l.forward(x, None).0)
    }
}

/// The char-LM of the workload around any recurrent stack.
#[derive(Module, Debug)]
pub struct CharLm<R: SeqLayer> {
    embedding: Embedding,
    rnn: R,
    head: Linear,
}

impl<R: SeqLayer> CharLm<R> {
    fn new(rnn: R, w: &Workload, device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(w.vocab, w.hidden).init(device),
            rnn,
            head: LinearConfig::new(w.hidden, w.vocab).init(device),
        }
    }

    /// Mean cross-entropy of predicting `targets` `[B, T]` from `inputs` `[B, T]`.
    fn loss(&self, inputs: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
        let logits = self
            .head
            .forward(self.rnn.run(self.embedding.forward(inputs)));
        let [b, t, v] = logits.dims();
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.reshape([b * t, v]), targets.reshape([b * t]))
    }
}

/// Times `steps` Adam training steps (after 2 warm-up steps) and returns tokens per second.
fn time_training<R: SeqLayer>(
    model: CharLm<R>,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> f64 {
    let mut model = model;
    let mut optim = AdamConfig::new().init();
    let tokens = Tensor::<2, Int>::random(
        [w.batch, w.seq + 1],
        Distribution::Uniform(0.0, w.vocab as f64),
        device,
    );
    let inputs = tokens.clone().narrow(1, 0, w.seq);
    let targets = tokens.narrow(1, 1, w.seq);
    let mut step = |model: CharLm<R>| {
        let loss = model.loss(inputs.clone(), targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1e-3, model, grads);
        let _: f32 = loss.into_scalar(); // wait for the step to finish
        model
    };
    for _ in 0..2 {
        model = step(model);
    }
    let start = Instant::now();
    for _ in 0..steps {
        model = step(model);
    }
    (steps * w.batch * w.seq) as f64 / start.elapsed().as_secs_f64()
}

/// Tokens per second of a training step of workload `w` with implementation `imp` on `device`
/// (which must have autodiff turned on).
pub fn train_tokens_per_s(imp: Implementation, w: &Workload, device: &Device, steps: usize) -> f64 {
    let (h, l) = (w.hidden, w.layers);
    match (imp, w.kind) {
        (Implementation::Sequent, Kind::Lstm) => time_training(
            CharLm::new(
                LstmConfig::new(h, h).with_num_layers(l).init(device),
                w,
                device,
            ),
            w,
            device,
            steps,
        ),
        (Implementation::Sequent, Kind::Gru) => time_training(
            CharLm::new(
                GruConfig::new(h, h).with_num_layers(l).init(device),
                w,
                device,
            ),
            w,
            device,
            steps,
        ),
        (Implementation::Sequent, Kind::Rnn) => time_training(
            CharLm::new(
                RnnConfig::new(h, h).with_num_layers(l).init(device),
                w,
                device,
            ),
            w,
            device,
            steps,
        ),
        (Implementation::BurnNn, Kind::Lstm) => {
            let layers = (0..l)
                .map(|_| burn::nn::LstmConfig::new(h, h, true).init(device))
                .collect();
            time_training(
                CharLm::new(BurnLstmStack { layers }, w, device),
                w,
                device,
                steps,
            )
        }
        (Implementation::BurnNn, Kind::Gru) => {
            let layers = (0..l)
                .map(|_| burn::nn::GruConfig::new(h, h, true).init(device))
                .collect();
            time_training(
                CharLm::new(BurnGruStack { layers }, w, device),
                w,
                device,
                steps,
            )
        }
        (Implementation::BurnNn, Kind::Rnn) => {
            let layers = (0..l)
                .map(|_| burn::nn::RnnConfig::new(h, h, true).init(device))
                .collect();
            time_training(
                CharLm::new(BurnRnnStack { layers }, w, device),
                w,
                device,
                steps,
            )
        }
    }
}

/// Measures the W1 training step for every kind, sequent against `burn::nn` on the device called
/// `device_name`, and returns a Markdown table with the ratio.
pub fn train_table(device_name: &str, steps: usize) -> Result<String, String> {
    let device = crate::device::parse(device_name)?.autodiff();
    let mut table = format!(
        "training step, char-LM 2 x 256, B = 32, T = 35, V = 64, Adam; device {device_name}; {steps} timed steps\n\
         | kind | sequent tok/s | burn::nn tok/s | sequent / burn::nn |\n|---|---|---|---|\n"
    );
    for kind in Kind::ALL {
        let w = Workload::w1(kind);
        let ours = train_tokens_per_s(Implementation::Sequent, &w, &device, steps);
        let theirs = train_tokens_per_s(Implementation::BurnNn, &w, &device, steps);
        table.push_str(&format!(
            "| {} | {ours:.0} | {theirs:.0} | {:.2}x |\n",
            kind.name(),
            ours / theirs
        ));
    }
    Ok(table)
}
