//! Benchmarks of a char-level language model `embedding(V -> H) -> L recurrent layers x H (one
//! or two directions) -> linear(D H -> V)`: training step (cross-entropy, Adam), batched
//! inference and batch-1 streaming generation, timed for sequent's layers and `burn::nn`'s of the
//! same kind on the same device, and (with `--with-torch`) for PyTorch through
//! `benches/torch_reference.py` in the same run.

use std::time::Instant;

use serde::Serialize;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use sequent_models::loss::sequence_cross_entropy;
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_models::time_major::{embed_steps, every_step};
use sequent_train::optim::FusedAdamConfig;

use crate::memory::RETAINED_MEMORY_ENV;

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
    /// [`Recurrent::folds_embedding`] holds (`LanguageModel` does; `sequent bench --no-fold`
    /// times sequent's layers over the embedded sequence instead, as PyTorch and `burn::nn`
    /// compute it).
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

/// A recurrent stack `[B, T, H] -> [B, T, H]` that can carry its state.
pub trait SeqLayer: Module + burn::module::ModuleDisplay {
    /// The state carried between calls.
    type State;
    /// Runs the stack from `state` (zero if `None`).
    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State);
    /// Runs the stack over `embedding.forward(tokens)` from `state`, folding the embedding into
    /// the first layer where the stack can ([`Self::folds_embedding`]).
    fn run_embedded(
        &self,
        embedding: &Embedding,
        tokens: Tensor<2, Int>,
        state: Option<Self::State>,
    ) -> (Tensor<3>, Self::State) {
        self.run(embedding.forward(tokens), state)
    }
    /// Whether [`Self::run_embedded`] folds an embedding of `vocab` rows over `steps` x `batch`
    /// tokens on `device`.
    fn folds_embedding(&self, _vocab: usize, _steps: usize, _batch: usize, _: &Device) -> bool {
        false
    }
}

impl<C: CellKind> SeqLayer for Recurrent<C> {
    type State = sequent_models::recurrent::RecurrentState;

    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
        self.forward(x, state)
    }

    fn run_embedded(
        &self,
        embedding: &Embedding,
        tokens: Tensor<2, Int>,
        state: Option<Self::State>,
    ) -> (Tensor<3>, Self::State) {
        self.try_forward_embedded(embedding, tokens, state)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn folds_embedding(&self, vocab: usize, steps: usize, batch: usize, device: &Device) -> bool {
        Recurrent::folds_embedding(self, vocab, steps, batch, device)
    }
}

/// A stack of `burn::nn` layers `$layer` (which has no `num_layers`), and, given the state type
/// its `forward(x, state)` returns, its [`SeqLayer`] impl.
macro_rules! burn_nn_stack {
    ($name:ident, $layer:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Module, Debug)]
        pub struct $name {
            layers: Vec<$layer>,
        }
    };
    ($name:ident, $layer:ty, $doc:literal, $state:ty) => {
        burn_nn_stack!($name, $layer, $doc);

        impl SeqLayer for $name {
            type State = Vec<$state>;

            fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
                stacked(&self.layers, x, state, |l, x, s| l.forward(x, s))
            }
        }
    };
}

burn_nn_stack!(
    BurnLstmStack,
    burn::nn::Lstm,
    "`burn::nn` LSTM layers stacked by hand.",
    burn::nn::LstmState<2>
);
burn_nn_stack!(
    BurnGruStack,
    burn::nn::Gru,
    "`burn::nn` GRU layers stacked by hand."
);
burn_nn_stack!(
    BurnRnnStack,
    burn::nn::Rnn,
    "`burn::nn` RNN layers stacked by hand.",
    burn::nn::RnnState<2>
);
burn_nn_stack!(
    BurnBiLstmStack,
    burn::nn::BiLstm,
    "`burn::nn` bidirectional LSTM layers stacked by hand.",
    burn::nn::LstmState<3>
);
burn_nn_stack!(
    BurnBiGruStack,
    burn::nn::BiGru,
    "`burn::nn` bidirectional GRU layers stacked by hand.",
    Tensor<3>
);
burn_nn_stack!(
    BurnBiRnnStack,
    burn::nn::BiRnn,
    "`burn::nn` bidirectional RNN layers stacked by hand.",
    burn::nn::RnnState<3>
);

/// Runs `layers` one after the other, each from its own carried state.
fn stacked<L, S>(
    layers: &[L],
    x: Tensor<3>,
    state: Option<Vec<S>>,
    step: impl Fn(&L, Tensor<3>, Option<S>) -> (Tensor<3>, S),
) -> (Tensor<3>, Vec<S>) {
    let previous: Vec<Option<S>> = match state {
        Some(v) => v.into_iter().map(Some).collect(),
        None => layers.iter().map(|_| None).collect(),
    };
    let mut states = Vec::with_capacity(layers.len());
    let mut x = x;
    for (layer, s) in layers.iter().zip(previous) {
        let (y, s) = step(layer, x, s);
        states.push(s);
        x = y;
    }
    (x, states)
}

impl SeqLayer for BurnGruStack {
    type State = Vec<Tensor<2>>;

    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
        stacked(&self.layers, x, state, |l, x, s| {
            let y = l.forward(x, s);
            let [b, t, h] = y.dims();
            let last = y.clone().narrow(1, t - 1, 1).reshape([b, h]);
            (y, last)
        })
    }
}

/// The char-LM of the workload around any recurrent stack.
#[derive(Module, Debug)]
pub struct CharLm<R: SeqLayer> {
    embedding: Embedding,
    rnn: R,
    head: Linear,
    /// Run the stack with [`SeqLayer::run_embedded`] ([`Workload::fold_embedding`]).
    #[module(skip)]
    fold: bool,
}

impl<R: SeqLayer> CharLm<R> {
    fn new(rnn: R, w: &Workload, device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(w.vocab, w.hidden).init(device),
            rnn,
            head: LinearConfig::new(w.directions() * w.hidden, w.vocab).init(device),
            fold: w.fold_embedding,
        }
    }

    fn logits(&self, inputs: Tensor<2, Int>, state: Option<R::State>) -> (Tensor<3>, R::State) {
        let (h, state) = if self.fold {
            self.rnn.run_embedded(&self.embedding, inputs, state)
        } else {
            self.rnn.run(embed_steps(&self.embedding, inputs), state)
        };
        (every_step(h, |h| self.head.forward(h)), state)
    }

    /// Mean cross-entropy of predicting `targets` `[B, T]` from `inputs` `[B, T]`.
    fn loss(&self, inputs: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
        let (logits, _) = self.logits(inputs, None);
        sequence_cross_entropy(logits, targets)
    }
}

/// Times `steps` steps of the workload (after 2 warm-up steps) and returns tokens per second,
/// and whether the model folded its embedding into the first layer. Training needs an autodiff
/// device; the other modes run without gradients.
fn time_workload<R: SeqLayer>(
    model: CharLm<R>,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> (f64, bool) {
    let batch = if w.mode == Mode::Stream { 1 } else { w.batch };
    // Streaming runs the model one step at a time.
    let call_steps = if w.mode == Mode::Stream { 1 } else { w.seq };
    let folded = model.fold
        && model
            .rnn
            .folds_embedding(w.vocab, call_steps, batch, device);
    let tokens = Tensor::<2, Int>::random(
        [batch, w.seq + 1],
        Distribution::Uniform(0.0, w.vocab as f64),
        device,
    );
    let inputs = tokens.clone().narrow(1, 0, w.seq);
    let targets = tokens.narrow(1, 1, w.seq);
    let mut model = Some(model);
    let mut optim = FusedAdamConfig::new().init();
    let mut step = || match w.mode {
        Mode::Train => {
            let m = model.take().expect("model");
            let loss = m.loss(inputs.clone(), targets.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(1e-3, m, grads));
            let _: f32 = loss.into_scalar(); // wait for the step to finish
        }
        Mode::Infer => {
            let (logits, _) = model.as_ref().expect("model").logits(inputs.clone(), None);
            let _: f32 = logits.sum().into_scalar();
        }
        Mode::Stream => {
            let m = model.as_ref().expect("model");
            let (mut token, mut state) = (inputs.clone().narrow(1, 0, 1), None);
            for _ in 0..w.seq {
                let (logits, s) = m.logits(token, state);
                state = Some(s);
                token = logits.argmax(2).reshape([1, 1]);
            }
            let _: i64 = token.sum().into_scalar();
        }
    };
    for _ in 0..2 {
        step();
    }
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    let rate = (steps * batch * w.seq) as f64 / start.elapsed().as_secs_f64();
    (rate, folded)
}

/// Tokens per second of workload `w` with implementation `imp` on `device` (autodiff is turned
/// on for training and off otherwise), and whether the model folded its embedding into the
/// first layer (sequent's, per [`Workload::fold_embedding`]).
pub fn tokens_per_s(
    imp: Implementation,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> (f64, bool) {
    let device = if w.mode == Mode::Train {
        device.clone().autodiff()
    } else {
        device.clone().without_autodiff()
    };
    let device = &device;
    let (h, l, bi) = (w.hidden, w.layers, w.bidirectional);
    // Layer k's input width (`burn::nn` has no `num_layers`).
    let width = |k: usize| if k > 0 { w.directions() * h } else { h };
    macro_rules! time {
        ($rnn:expr) => {
            time_workload(CharLm::new($rnn, w, device), w, device, steps)
        };
    }
    macro_rules! burn_stack {
        ($stack:ident, $config:ident) => {
            time!($stack {
                layers: (0..l)
                    .map(|k| burn::nn::$config::new(width(k), h, true).init(device))
                    .collect(),
            })
        };
    }
    match (imp, w.kind, bi) {
        (Implementation::Sequent, Kind::Lstm, _) => time!(
            LstmConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::Sequent, Kind::Gru, _) => time!(
            GruConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::Sequent, Kind::Rnn, _) => time!(
            RnnConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::BurnNn, Kind::Lstm, false) => burn_stack!(BurnLstmStack, LstmConfig),
        (Implementation::BurnNn, Kind::Gru, false) => burn_stack!(BurnGruStack, GruConfig),
        (Implementation::BurnNn, Kind::Rnn, false) => burn_stack!(BurnRnnStack, RnnConfig),
        (Implementation::BurnNn, Kind::Lstm, true) => burn_stack!(BurnBiLstmStack, BiLstmConfig),
        (Implementation::BurnNn, Kind::Gru, true) => burn_stack!(BurnBiGruStack, BiGruConfig),
        (Implementation::BurnNn, Kind::Rnn, true) => burn_stack!(BurnBiRnnStack, BiRnnConfig),
    }
}

/// One measurement, shaped like a line of `benches/torch_reference.py`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// `sequent`, `burn-nn` or `torch-VERSION`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// `train`, `infer` or `stream`.
    pub mode: String,
    /// `rnn`, `lstm` or `gru`.
    pub kind: String,
    /// Hidden width.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Batch size (1 for streaming).
    pub batch: usize,
    /// Sequence length.
    pub seq: usize,
    /// Bidirectional layers.
    pub bidirectional: bool,
    /// Throughput (with several rounds, the median of [`Self::runs`]).
    pub tokens_per_s: f64,
    /// Each round's throughput, in order (`--repeat`; left out of the JSON for a single round).
    #[serde(skip_serializing_if = "one_round")]
    pub runs: Vec<f64>,
    /// Whether the model folded its embedding into the first layer
    /// ([`Workload::fold_embedding`]).
    pub embedding_folded: bool,
}

/// Whether `runs` holds a single round (then left out of the JSON, which has the figure already).
fn one_round(runs: &[f64]) -> bool {
    runs.len() <= 1
}

/// The median of `v` (not empty): the middle value, or the mean of the two middle ones.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One measurement per implementation from `rounds` (each a round's measurements, the
/// implementations in the same order): the median throughput, each round's in `runs`.
fn combine(rounds: Vec<Vec<Measurement>>) -> Vec<Measurement> {
    let mut combined = rounds[0].clone();
    for (i, m) in combined.iter_mut().enumerate() {
        m.runs = rounds.iter().map(|r| r[i].tokens_per_s).collect();
        m.tokens_per_s = median(&m.runs);
    }
    combined
}

impl Measurement {
    fn new(implementation: &str, w: &Workload, tokens_per_s: f64) -> Self {
        Self {
            implementation: implementation.to_string(),
            mode: w.mode.name().into(),
            kind: w.kind.name().into(),
            hidden: w.hidden,
            layers: w.layers,
            batch: if w.mode == Mode::Stream { 1 } else { w.batch },
            seq: w.seq,
            bidirectional: w.bidirectional,
            tokens_per_s: (tokens_per_s * 10.0).round() / 10.0,
            runs: Vec::new(),
            embedding_folded: false,
        }
    }
}

/// Whether `python3 -c "import torch"` works here.
pub fn torch_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The path of `benches/torch_reference.py`.
fn torch_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_reference.py")
}

/// The command that runs `benches/torch_reference.py` on workload `w` for `steps` steps, with
/// the allocator settings of [`crate::memory::retain_freed_memory`] as environment variables
/// (PyTorch's tensors come from the same `malloc`), so that both sides allocate alike.
fn torch_command(w: &Workload, steps: usize) -> std::process::Command {
    let mut command = std::process::Command::new("python3");
    command
        .arg(torch_script())
        .args(["--mode", w.mode.name(), "--kind", w.kind.name()])
        .args([
            "--hidden",
            &w.hidden.to_string(),
            "--layers",
            &w.layers.to_string(),
        ])
        .args(["--batch", &w.batch.to_string(), "--seq", &w.seq.to_string()])
        .args([
            "--vocab",
            &w.vocab.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .args(w.bidirectional.then_some("--bidirectional"))
        .envs(RETAINED_MEMORY_ENV.map(|(name, value)| (name, value.to_string())));
    command
}

/// Runs `benches/torch_reference.py` on workload `w` (same steps, `torch_command`) and parses
/// its JSON line.
pub fn torch_measurement(w: &Workload, steps: usize) -> Result<Measurement, String> {
    let script = torch_script();
    let out = torch_command(w, steps)
        .output()
        .map_err(|e| format!("cannot run python3 {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("unexpected output from {}: {e}", script.display()))?;
    let tokens = v["tokens_per_s"]
        .as_f64()
        .ok_or("no tokens_per_s in torch's output")?;
    let name = v["impl"].as_str().unwrap_or("torch").to_string();
    Ok(Measurement::new(&name, w, tokens))
}

/// `c = a b` for row-major `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`, through the `gemm` crate
/// on every thread of the pool: by its own threading, or (`blocks`) as one block of rows a
/// thread, each a single-threaded call (as sequent's sequence ops run their products).
fn gemm_into(c: &mut [f32], a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize), blocks: bool) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let run = |c: &mut [f32], a: &[f32], threads| {
        let rows = c.len() / n;
        // SAFETY: `a`, `b` and `c` hold the row-major rows x k, k x n and rows x n matrices the
        // strides describe (checked above, and `a`'s and `c`'s blocks are taken alike), and `c`
        // does not alias them.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                threads,
            );
        }
    };
    if blocks {
        use rayon::prelude::*;
        let per = m.div_ceil(rayon::current_num_threads()).max(1);
        c.par_chunks_mut(per * n)
            .zip(a.par_chunks(per * k))
            .for_each(|(c, a)| run(c, a, gemm::Parallelism::None));
    } else {
        run(c, a, gemm::Parallelism::Rayon(0));
    }
}

/// GFLOP/s of an f32 GEMM `[m x k] x [k x n]` through the `gemm` crate on every thread of the
/// pool (the machine's GEMM rate at that shape): the best of `reps` runs after one warm-up, each
/// threaded both ways: by the `gemm` crate's own threading, and one block of rows a thread.
pub fn gemm_gflops((m, k, n): (usize, usize, usize), reps: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut c = vec![0f32; m * n];
    let mut best = f64::INFINITY;
    for rep in 0..=reps {
        for blocks in [false, true] {
            let start = Instant::now();
            gemm_into(&mut c, &a, &b, (m, k, n), blocks);
            if rep > 0 {
                best = best.min(start.elapsed().as_secs_f64());
            }
        }
    }
    2.0 * (m * k * n) as f64 / best / 1e9
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

/// Measures every workload with sequent and `burn::nn` on `device` (and PyTorch when
/// `with_torch`), in `repeat` rounds (each round measures every implementation once, side by
/// side, so that a slow patch of the machine hits all of them), calling `report` with each
/// workload's measurements (medians over the rounds) as soon as they exist.
pub fn run(
    workloads: &[Workload],
    device: &Device,
    (steps, repeat): (usize, usize),
    with_torch: bool,
    mut report: impl FnMut(&Workload, &[Measurement]),
) -> Result<(), String> {
    for w in workloads {
        let rounds = (0..repeat.max(1))
            .map(|_| round(w, device, steps, with_torch))
            .collect::<Result<Vec<_>, String>>()?;
        report(w, &combine(rounds));
    }
    Ok(())
}

/// One round of workload `w`: sequent, `burn::nn`, and PyTorch when `with_torch`.
fn round(
    w: &Workload,
    device: &Device,
    steps: usize,
    with_torch: bool,
) -> Result<Vec<Measurement>, String> {
    let measure = |imp: Implementation| {
        let (rate, folded) = tokens_per_s(imp, w, device, steps);
        Measurement {
            embedding_folded: folded,
            ..Measurement::new(imp.name(), w, rate)
        }
    };
    let mut row = vec![
        measure(Implementation::Sequent),
        measure(Implementation::BurnNn),
    ];
    if with_torch {
        row.push(torch_measurement(w, steps)?);
    }
    Ok(row)
}

/// The ratio cell `a / b`: with several rounds, the median of the rounds' ratios and their
/// range, `1.23x (1.10-1.31x)`.
fn ratio_cell(a: &Measurement, b: &Measurement) -> String {
    if a.runs.len() > 1 {
        let ratios: Vec<f64> = a.runs.iter().zip(&b.runs).map(|(x, y)| x / y).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        format!("{:.2}x ({low:.2}-{high:.2}x)", median(&ratios))
    } else {
        format!("{:.2}x", a.tokens_per_s / b.tokens_per_s)
    }
}

/// A Markdown row for one workload's measurements (sequent first, then burn::nn, then torch):
/// throughputs (medians over the rounds) and ratios (`ratio_cell`).
pub fn markdown_row(w: &Workload, m: &[Measurement]) -> String {
    let mut cells = vec![
        w.mode.name().to_string(),
        w.kind_name(),
        w.hidden.to_string(),
        w.seq.to_string(),
        format!("{:.0}", m[0].tokens_per_s),
        format!("{:.0}", m[1].tokens_per_s),
        ratio_cell(&m[0], &m[1]),
    ];
    if let Some(t) = m.get(2) {
        cells.push(format!("{:.0}", t.tokens_per_s));
        cells.push(ratio_cell(&m[0], t));
    }
    format!("| {} |", cells.join(" | "))
}

/// The Markdown header matching [`markdown_row`].
pub fn markdown_header(with_torch: bool) -> String {
    let mut h =
        "| mode | kind | H | T | sequent tok/s | burn::nn tok/s | sequent / burn::nn |".to_string();
    let mut sep = "|---|---|---|---|---|---|---|".to_string();
    if with_torch {
        h.push_str(" PyTorch tok/s | sequent / PyTorch |");
        sep.push_str("---|---|");
    }
    format!("{h}\n{sep}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_combine_into_medians_and_ratio_ranges() {
        let w = Workload::w1(Kind::Rnn);
        let round = |a: f64, b: f64| {
            vec![
                Measurement::new("sequent", &w, a),
                Measurement::new("burn-nn", &w, b),
            ]
        };
        let m = combine(vec![round(30.0, 10.0), round(10.0, 5.0), round(20.0, 5.0)]);
        assert_eq!((m[0].tokens_per_s, m[1].tokens_per_s), (20.0, 5.0));
        assert_eq!(m[0].runs, [30.0, 10.0, 20.0]);
        // Ratios 3, 2, 4: median 3, range 2-4 (not the ratio of the medians, 4).
        assert!(markdown_row(&w, &m).ends_with("| 20 | 5 | 3.00x (2.00-4.00x) |"));
        let json = serde_json::to_value(&m[0]).unwrap();
        assert_eq!(json["runs"], serde_json::json!([30.0, 10.0, 20.0]));
        // One round: the plain ratio, no `runs` in the JSON.
        let one = combine(vec![round(30.0, 10.0)]);
        assert!(markdown_row(&w, &one).ends_with("| 30 | 10 | 3.00x |"));
        assert!(serde_json::to_value(&one[0]).unwrap().get("runs").is_none());
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn pytorch_runs_with_the_same_allocator_settings() {
        let mut w = Workload::w1(Kind::Gru);
        w.bidirectional = true;
        let command = torch_command(&w, 7);
        let envs: Vec<_> = command.get_envs().collect();
        for (name, value) in RETAINED_MEMORY_ENV {
            let value = value.to_string();
            assert!(
                envs.contains(&(name.as_ref(), Some(value.as_ref()))),
                "{name}={value} missing from {envs:?}"
            );
        }
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert!(args[0].ends_with("benches/torch_reference.py"));
        let joined = args[1..].join(" ");
        assert!(joined.contains("--kind gru") && joined.contains("--steps 7"));
        assert!(joined.ends_with("--bidirectional"), "{joined}");
    }

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

    #[test]
    fn the_timed_gemm_computes_the_product() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 / 4.0).collect();
        for blocks in [false, true] {
            let mut c = vec![7f32; m * n];
            gemm_into(&mut c, &a, &b, (m, k, n), blocks);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|q| a[i * k + q] * b[q * n + j]).sum();
                    assert!((c[i * n + j] - want).abs() < 1e-4, "blocks {blocks}");
                }
            }
        }
        let r = gemm_gflops((64, 64, 64), 2);
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
