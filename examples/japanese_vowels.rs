//! Speaker classification on the UCI Japanese Vowels data (sktime `.ts` files: 270 training and
//! 370 test utterances, 12 LPC coefficients a step, 7 to 29 steps, 9 speakers), with an LSTM and
//! a GRU classifier that read each utterance's last valid state.
//!
//! `cargo run --release --example japanese_vowels -- [--device D] [--seed S] [--quick] [--out DIR]`
//! prints the test accuracies and writes them to `OUT/japanese_vowels.{md,csv}` (OUT defaults to
//! `runs/examples/japanese_vowels`); the full run's table is in `docs/results.md`.

use std::path::Path;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::Device;
use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::heads::{SequenceModel, SequenceModelConfig};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent};
use sequent_models::rng::SplitMix64;
use sequent_train::data::ts::{Case, TsData};
use sequent_train::learner::classify::case_loader;
use sequent_train::learner::{self, Classification, FitOptions, LrSchedule, Split};

fn main() -> ExitCode {
    sequent::experiments::main("japanese_vowels", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("japanese_vowels");
    let device = sequent::device::parse(&o.device)?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/classification");
    let train = TsData::read(&data.join("JapaneseVowels_TRAIN.ts")).map_err(|e| e.to_string())?;
    let test = TsData::read(&data.join("JapaneseVowels_TEST.ts")).map_err(|e| e.to_string())?;
    let (train_cases, valid_cases) = hold_out(train.cases(), 0.1, o.seed);

    let hidden = if o.quick { 16 } else { 64 };
    let options = FitOptions {
        epochs: if o.quick { 2 } else { 40 },
        lr: 5e-3,
        clip: Some(1.0),
        seed: o.seed,
        patience: None,
        schedule: LrSchedule::Constant,
        devices: Vec::new(),
    };
    let device = device.autodiff();
    let setup = Setup {
        device: device.clone(),
        train: train_cases,
        valid: valid_cases,
        test: test.cases(),
        classes: train.classes.len(),
        options: options.clone(),
    };
    let f = train.features();
    device.seed(o.seed);
    let lstm = setup.fit("lstm", LstmConfig::new(f, hidden).init(&device), &out)?;
    device.seed(o.seed);
    let gru = setup.fit("gru", GruConfig::new(f, hidden).init(&device), &out)?;

    let mut table = Table::new(&["model", "hidden", "epochs", "test accuracy"]);
    for (model, (accuracy, _)) in [("lstm", &lstm), ("gru", &gru)] {
        let (hidden, epochs) = (hidden.to_string(), options.epochs.to_string());
        table.push(vec![model.into(), hidden, epochs, fmt(*accuracy)]);
    }
    let title = "Validation cross-entropy per epoch";
    line_chart(
        &out.join("loss.svg"),
        title,
        "epoch",
        "nats",
        &[lstm.1, gru.1],
    )?;
    table.write(&out, "japanese_vowels")?;
    Ok(table)
}

/// A seeded shuffle of `cases`, then the last `fraction` held out for validation (the cases have
/// no time order between them).
fn hold_out(mut cases: Vec<Case>, fraction: f64, seed: u64) -> (Vec<Case>, Vec<Case>) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..cases.len()).rev() {
        cases.swap(i, rng.below(i + 1));
    }
    let n_valid = ((cases.len() as f64 * fraction).round() as usize).max(1);
    let valid = cases.split_off(cases.len() - n_valid);
    (cases, valid)
}

struct Setup {
    device: Device,
    train: Vec<Case>,
    valid: Vec<Case>,
    test: Vec<Case>,
    classes: usize,
    options: FitOptions,
}

impl Setup {
    /// Trains a classifier over `rnn` (cross-entropy of the logits of each case's last valid
    /// state, Adam, batches of 16 padded cases) in `out/name`; returns its test accuracy and its
    /// validation loss per epoch.
    fn fit<C: CellKind>(
        &self,
        name: &str,
        rnn: Recurrent<C>,
        out: &Path,
    ) -> Result<(f64, Line), String> {
        let model = SequenceModelConfig::new(self.classes).init(rnn, &self.device);
        let train = case_loader(self.train.clone(), 16, Some(self.options.seed), 0)?;
        let valid = case_loader(self.valid.clone(), 16, None, 0)?;
        let (dir, task) = (out.join(name), Classification::default());
        let (model, control) = learner::train(model, task, train, valid, &dir, &self.options)?;
        let losses = control.epoch_losses(Split::Valid);
        let curve = losses.iter().map(|&(e, l)| ((e + 1) as f64, l)).collect();
        Ok((test_accuracy(&model, &self.test)?, Line::new(name, curve)))
    }
}

/// The fraction of `cases` whose highest logit is their class (padded batches of 64, each case
/// read up to its own length).
fn test_accuracy<C: CellKind>(model: &SequenceModel<C>, cases: &[Case]) -> Result<f64, String> {
    let device = model.rnn.devices()[0].clone();
    let mut right = 0;
    for batch in case_loader(cases.to_vec(), 64, None, 0)?
        .to_device(&device)
        .iter()
    {
        let batch = batch.map_err(|e| e.to_string())?;
        let predicted = model.forward(batch.inputs, Some(&batch.lengths)).argmax(1);
        let hits = predicted
            .squeeze_dim::<1>(1)
            .equal(batch.labels)
            .int()
            .sum();
        right += hits.into_scalar::<i64>() as usize;
    }
    Ok(right as f64 / cases.len() as f64)
}
