//! Regularisation inside the recurrence on a character language model large enough to overfit:
//! a 3-layer LSTM, 512 wide (5 million parameters), on the first 100,000 characters of the
//! shipped Shakespeare text (the last 10% of them held out), every configuration trained for the
//! same 16 epochs (the same updates, in about the same wall time; the table gives each run's
//! seconds).
//!
//! Two configurations without any regularisation (Adam at two learning rates) stand against two
//! regularised ones: AWD-LSTM's kind (dropout between the layers, weight drop on `W_hh`; Merity
//! et al. 2018) and the variational kind (input and recurrent dropout, Gal & Ghahramani 2016,
//! with zoneout, Krueger et al. 2016). The table gives each run's best and final validation
//! perplexity; `valid_loss.svg` plots the validation and `train_loss.svg` the training
//! cross-entropy per epoch, where the unregularised runs' gap between the two opens.
//!
//! `cargo run --release --example regularisation -- [--device D] [--seed S] [--quick] [--out DIR]`
//! writes `OUT/regularisation.{md,csv}` and the plots (OUT defaults to
//! `runs/examples/regularisation`); the full run's table is in `docs/results.md`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::heads::LanguageModelConfig;
use sequent_models::recurrent::LstmConfig;
use sequent_train::data::text::{Partition, split_by_position, token_loader};
use sequent_train::data::vocab::{Tokenizer, Vocab};
use sequent_train::learner::{self, FitOptions, LanguageModeling, LrSchedule, Split};

const EMBEDDING: usize = 64;
const BATCH: usize = 32;
const STEPS: usize = 64;

/// One configuration: its name, Adam's learning rate and the stack's regularisers.
struct Setting {
    name: &'static str,
    lr: f64,
    /// Dropout between the layers (PyTorch's `dropout`).
    dropout: f64,
    /// `input_dropout`, `recurrent_dropout`, `weight_drop`, `zoneout`.
    inside: [f64; 4],
}

const SETTINGS: [Setting; 4] = [
    Setting {
        name: "none, lr 2e-3",
        lr: 2e-3,
        dropout: 0.0,
        inside: [0.0; 4],
    },
    Setting {
        name: "none, lr 1e-3",
        lr: 1e-3,
        dropout: 0.0,
        inside: [0.0; 4],
    },
    Setting {
        name: "dropout 0.25 between layers, weight drop 0.25",
        lr: 2e-3,
        dropout: 0.25,
        inside: [0.0, 0.0, 0.25, 0.0],
    },
    Setting {
        name: "input and recurrent dropout 0.2, zoneout 0.05",
        lr: 2e-3,
        dropout: 0.0,
        inside: [0.2, 0.2, 0.0, 0.05],
    },
];

fn main() -> ExitCode {
    sequent::experiments::main("regularisation", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("regularisation");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/text/shakespeare.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (chars, layers, hidden, epochs) = if o.quick {
        (40_000, 2, 32, 2)
    } else {
        (100_000, 3, 512, 16)
    };
    let text: String = text.chars().take(chars).collect();
    let vocab = Vocab::build(&text, Tokenizer::Char, 1);
    let split = split_by_position(&vocab.encode(&text), 0.1, 0.0)?;
    let mut table = Table::new(&[
        "regularisation",
        "lr",
        "epochs",
        "best validation perplexity",
        "at epoch",
        "final validation perplexity",
        "final training perplexity",
        "seconds",
    ]);
    let (mut valid_curves, mut train_curves) = (Vec::new(), Vec::new());
    for setting in &SETTINGS {
        let [input_dropout, recurrent_dropout, weight_drop, zoneout] = setting.inside;
        let lstm = LstmConfig::new(EMBEDDING, hidden)
            .with_num_layers(layers)
            .with_dropout(setting.dropout)
            .with_input_dropout(input_dropout)
            .with_recurrent_dropout(recurrent_dropout)
            .with_weight_drop(weight_drop)
            .with_zoneout(zoneout);
        device.seed(o.seed);
        let model = LanguageModelConfig::new(vocab.len()).init(lstm.init(&device), &device);
        let options = FitOptions {
            epochs,
            lr: setting.lr,
            clip: Some(1.0),
            seed: o.seed,
            patience: None,
            schedule: LrSchedule::Constant,
            devices: Vec::new(),
        };
        let train = token_loader(&split.train, Partition::Sequential, BATCH, STEPS, o.seed, 0)?;
        let streams = BATCH.min((split.valid.len() - 1) / STEPS).max(1);
        let valid = token_loader(
            &split.valid,
            Partition::Sequential,
            streams,
            STEPS,
            o.seed,
            0,
        )?;
        let dir = out.join(format!("run{}", valid_curves.len() + 1));
        let start = Instant::now();
        let (_, control) = learner::train(
            model,
            LanguageModeling::default(),
            train,
            valid,
            &dir,
            &options,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        let losses = |split| -> Vec<(f64, f64)> {
            let losses = control.epoch_losses(split);
            losses.iter().map(|&(e, l)| ((e + 1) as f64, l)).collect()
        };
        let (valid_losses, train_losses) = (losses(Split::Valid), losses(Split::Train));
        let best = valid_losses
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .ok_or("no validation loss")?;
        let last = |l: &[(f64, f64)]| l.last().map(|&(_, l)| l).ok_or("no loss");
        table.push(vec![
            setting.name.into(),
            format!("{}", setting.lr),
            epochs.to_string(),
            fmt(best.1.exp()),
            format!("{}", best.0),
            fmt(last(&valid_losses)?.exp()),
            fmt(last(&train_losses)?.exp()),
            format!("{seconds:.0}"),
        ]);
        valid_curves.push(Line::new(setting.name, valid_losses));
        train_curves.push(Line::new(setting.name, train_losses));
        table.write(&out, "regularisation")?;
    }
    let title = |what: &str| format!("{layers} x {hidden} LSTM: {what} cross-entropy per epoch");
    let plots = [
        ("valid_loss.svg", "validation", &valid_curves),
        ("train_loss.svg", "training", &train_curves),
    ];
    for (file, what, curves) in plots {
        line_chart(
            &out.join(file),
            &title(what),
            "epoch",
            "nats per character",
            curves,
        )?;
    }
    Ok(table)
}
