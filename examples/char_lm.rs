//! Character-level language models on the shipped Shakespeare text (the last 10% by position
//! held out): count-based n-grams of orders 1 to 5 against RNN, GRU and LSTM language models with
//! (as nearly as integer widths allow) the same number of parameters. Reports validation
//! perplexity and bits per character, plots the validation loss per epoch, and writes samples at
//! two temperatures. `examples/torch/char_lm.py` trains the same configuration in PyTorch.
//!
//! `cargo run --release --example char_lm -- [--device D] [--seed S] [--quick] [--out DIR]`
//! writes `OUT/char_lm.{md,csv}`, `OUT/valid_loss.svg` and `OUT/samples.md` (OUT defaults to
//! `runs/examples/char_lm`); the full run's table is in `docs/results.md`.

use std::path::Path;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::Device;
use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::classical::NgramConfig;
use sequent_models::generate::Sampling;
use sequent_models::heads::{LanguageModel, LanguageModelConfig};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_train::data::text::{Partition, split_by_position, token_loader};
use sequent_train::data::vocab::{Tokenizer, Vocab};
use sequent_train::learner::{self, FitOptions, LanguageModeling, LrSchedule, Split};

const EMBEDDING: usize = 32;
const BATCH: usize = 32;
const STEPS: usize = 64;

fn main() -> ExitCode {
    sequent::experiments::main("char_lm", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("char_lm");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/text/shakespeare.txt");
    let mut text =
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if o.quick {
        text = text.chars().take(60_000).collect();
    }
    let vocab = Vocab::build(&text, Tokenizer::Char, 1);
    let split = split_by_position(&vocab.encode(&text), 0.1, 0.0)?;
    let lm = CharLm {
        vocab,
        train: split.train,
        valid: split.valid,
        options: FitOptions {
            epochs: if o.quick { 1 } else { 3 },
            lr: 2e-3,
            clip: Some(1.0),
            seed: o.seed,
            patience: None,
            schedule: LrSchedule::Constant,
            devices: Vec::new(),
        },
        device,
    };

    let columns = [
        "model",
        "hidden",
        "parameters",
        "validation perplexity",
        "bits per char",
    ];
    let mut table = Table::new(&columns);
    let mut samples = String::from("# Samples\n");
    let row = |name: String, hidden: String, params: String, loss: f64| {
        vec![
            name,
            hidden,
            params,
            fmt(loss.exp()),
            fmt(loss / std::f64::consts::LN_2),
        ]
    };
    for order in 1..=5 {
        let mut ngram = NgramConfig::new(order, lm.vocab.len())
            .with_smoothing(0.1)
            .init();
        ngram.fit(&lm.train).map_err(|e| e.to_string())?;
        let loss = ngram.perplexity(&lm.valid).map_err(|e| e.to_string())?.ln();
        table.push(row(format!("{order}-gram"), "-".into(), "-".into(), loss));
        if order == 5 {
            samples += &lm.samples("5-gram", |p, s| ngram.generate(p, 200, s))?;
        }
    }

    // The LSTM's width sets the parameter budget; the RNN and GRU get the width nearest to it.
    let lstm_hidden = if o.quick { 32 } else { 128 };
    let budget = lm.lstm(lstm_hidden).num_params();
    let mut curves = Vec::new();
    let rnn_hidden = width_for(budget, |h| lm.rnn(h).num_params());
    let gru_hidden = width_for(budget, |h| lm.gru(h).num_params());
    for (name, hidden) in [
        ("rnn", rnn_hidden),
        ("gru", gru_hidden),
        ("lstm", lstm_hidden),
    ] {
        lm.device.seed(o.seed);
        let (params, loss, curve, sample) = match name {
            "rnn" => lm.fit(name, lm.rnn(hidden), &out)?,
            "gru" => lm.fit(name, lm.gru(hidden), &out)?,
            _ => lm.fit(name, lm.lstm(hidden), &out)?,
        };
        table.push(row(
            name.into(),
            hidden.to_string(),
            params.to_string(),
            loss,
        ));
        curves.push(curve);
        samples += &sample;
    }
    let title = "Validation cross-entropy per epoch";
    line_chart(
        &out.join("valid_loss.svg"),
        title,
        "epoch",
        "nats per character",
        &curves,
    )?;
    sequent_train::io::write_atomic(&out.join("samples.md"), samples.as_bytes())?;
    table.write(&out, "char_lm")?;
    Ok(table)
}

/// The smallest width whose parameter count is nearest to `budget` (counts grow with the width).
fn width_for(budget: usize, params: impl Fn(usize) -> usize) -> usize {
    let (mut lo, mut hi) = (1, 1024);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if params(mid) < budget {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    if lo > 1 && budget - params(lo - 1) < params(lo) - budget {
        lo - 1
    } else {
        lo
    }
}

/// The tokenised text and how every neural model is trained.
struct CharLm {
    vocab: Vocab,
    train: Vec<u32>,
    valid: Vec<u32>,
    options: FitOptions,
    device: Device,
}

impl CharLm {
    fn rnn(&self, hidden: usize) -> LanguageModel<sequent_models::recurrent::RnnKind> {
        self.model(RnnConfig::new(EMBEDDING, hidden).init(&self.device))
    }

    fn gru(&self, hidden: usize) -> LanguageModel<sequent_models::recurrent::GruKind> {
        self.model(GruConfig::new(EMBEDDING, hidden).init(&self.device))
    }

    fn lstm(&self, hidden: usize) -> LanguageModel<sequent_models::recurrent::LstmKind> {
        self.model(LstmConfig::new(EMBEDDING, hidden).init(&self.device))
    }

    /// Embedding (32 wide), one recurrent layer, a linear head over the vocabulary.
    fn model<C: CellKind>(&self, rnn: Recurrent<C>) -> LanguageModel<C> {
        LanguageModelConfig::new(self.vocab.len()).init(rnn, &self.device)
    }

    /// Trains `model` with truncated BPTT (the text as 32 streams read in blocks of 64 steps, the
    /// state carried between blocks), Adam and clipping, in `out/name`. Returns its parameter
    /// count, final validation loss, validation curve and samples.
    fn fit<C: CellKind>(
        &self,
        name: &str,
        model: LanguageModel<C>,
        out: &Path,
    ) -> Result<(usize, f64, Line, String), String> {
        let params = model.num_params();
        let seed = self.options.seed;
        let train = token_loader(&self.train, Partition::Sequential, BATCH, STEPS, seed, 0)?;
        let streams = BATCH.min((self.valid.len() - 1) / STEPS).max(1);
        let valid = token_loader(&self.valid, Partition::Sequential, streams, STEPS, seed, 0)?;
        let (dir, task) = (out.join(name), LanguageModeling::default());
        let (model, control) = learner::train(model, task, train, valid, &dir, &self.options)?;
        let losses = control.epoch_losses(Split::Valid);
        let loss = losses.last().map(|&(_, l)| l).ok_or("no validation loss")?;
        let curve = losses.iter().map(|&(e, l)| ((e + 1) as f64, l)).collect();
        let sample = self.samples(name, |p, s| model.generate(p, 200, s))?;
        Ok((params, loss, Line::new(name, curve), sample))
    }

    /// 200 characters after "ROMEO:" at temperatures 0.5 and 1.0.
    fn samples(
        &self,
        name: &str,
        generate: impl Fn(&[u32], &Sampling) -> sequent_models::Result<Vec<u32>>,
    ) -> Result<String, String> {
        let prefix = self.vocab.encode("ROMEO:");
        let mut s = format!("\n## {name}\n");
        for t in [0.5, 1.0] {
            let ids = generate(&prefix, &Sampling::temperature(t, self.options.seed));
            let text = self.vocab.decode(&ids.map_err(|e| e.to_string())?);
            s += &format!("\ntemperature {t}:\n\n```text\n{text}\n```\n");
        }
        Ok(s)
    }
}
