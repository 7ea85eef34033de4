//! The adding problem and the copy-memory task (Arjovsky, Shah & Bengio 2016) at T = 50, 100
//! and 200 for a tanh RNN, an LSTM and a GRU, each trained for the same fixed number of Adam
//! updates (lr 3e-3, batch 32, hidden 64, clip 1) on fresh batches. The final error on 2,048
//! held-out examples is compared with the memoryless baseline (adding: MSE 1/6; copy:
//! cross-entropy 10 ln 8 / (T + 20)) and with the memoryless predictor's error on the same
//! examples (the constant 1 for adding; for copy it equals the analytic value). A plot shows
//! `||dL/dx_t||` against `t` for the three cells on the adding problem: how much the loss still
//! feels inputs far in the past (the vanishing gradient).
//!
//! `cargo run --release --example long_dependencies -- [--device D] [--seed S] [--quick] [--out DIR]`
//! writes `OUT/long_dependencies.{md,csv}` and `OUT/input_gradients.svg` (OUT defaults to
//! `runs/examples/long_dependencies`); the full run's table is in `docs/results.md`.

use std::process::ExitCode;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::heads::{Readout, SequenceModel, SequenceModelConfig};
use sequent_models::loss::cross_entropy;
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_train::clip::clip_grad_norm;
use sequent_train::data::synthetic::{
    ADDING_BASELINE_MSE, COPY_VOCAB, adding, copy_baseline_cross_entropy, copy_memory,
};
use sequent_train::optim::FusedAdamConfig;

fn main() -> ExitCode {
    sequent::experiments::main("long_dependencies", run)
}

/// Held-out examples the final error is measured on.
const TEST_EXAMPLES: usize = 2048;

/// Adam's learning rate (global-norm clip 1).
const LEARNING_RATE: f64 = 3e-3;

/// Which synthetic task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    /// Sum of two marked values (sequence-to-one regression).
    Adding,
    /// Reproduce 10 symbols after a delay (sequence-to-sequence classification).
    Copy,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Adding => "adding",
            Task::Copy => "copy",
        }
    }

    fn baseline(self, steps: usize) -> f64 {
        match self {
            Task::Adding => ADDING_BASELINE_MSE,
            Task::Copy => copy_baseline_cross_entropy(steps),
        }
    }
}

/// One batch: inputs `[B, L, F]` and targets (adding: `[B, 1]` floats; copy: `[B * L]` ids).
struct Batch {
    inputs: Tensor<3>,
    sums: Option<Tensor<2>>,
    symbols: Option<Tensor<1, Int>>,
}

fn batch(task: Task, steps: usize, size: usize, seed: u64, device: &Device) -> Batch {
    match task {
        Task::Adding => {
            let ex = adding(size, steps, seed);
            let flat: Vec<f32> = ex
                .iter()
                .flat_map(|e| e.inputs.iter().flatten().copied())
                .collect();
            let sums: Vec<f32> = ex.iter().map(|e| e.target).collect();
            Batch {
                inputs: Tensor::from_data(TensorData::new(flat, [size, steps, 2]), device),
                sums: Some(Tensor::from_data(TensorData::new(sums, [size, 1]), device)),
                symbols: None,
            }
        }
        Task::Copy => {
            let ex = copy_memory(size, steps, seed);
            let len = steps + 20;
            let mut onehot = vec![0f32; size * len * COPY_VOCAB];
            for (b, e) in ex.iter().enumerate() {
                for (t, &s) in e.inputs.iter().enumerate() {
                    onehot[(b * len + t) * COPY_VOCAB + s as usize] = 1.0;
                }
            }
            let ids: Vec<i64> = ex
                .iter()
                .flat_map(|e| e.targets.iter().map(|&s| s as i64))
                .collect();
            Batch {
                inputs: Tensor::from_data(TensorData::new(onehot, [size, len, COPY_VOCAB]), device),
                sums: None,
                symbols: Some(Tensor::from_data(
                    TensorData::new(ids, [size * len]),
                    device,
                )),
            }
        }
    }
}

fn loss<C: CellKind>(model: &SequenceModel<C>, b: Batch) -> Tensor<1> {
    let out = model.forward(b.inputs, None);
    match (b.sums, b.symbols) {
        (Some(y), _) => MseLoss::new().forward(out, y, Reduction::Mean),
        (_, Some(ids)) => cross_entropy(out, ids),
        _ => unreachable!("a batch has targets"),
    }
}

/// What one training run reports.
struct Outcome {
    error: f64,
    memoryless: f64,
    input_gradients: Vec<f64>,
}

struct Train {
    task: Task,
    steps: usize,
    updates: usize,
    batch: usize,
    seed: u64,
}

impl Train {
    /// Trains a model over `rnn` (a linear head on its last state for adding, on every step for
    /// copy) with Adam and global-norm clipping, then measures it on held-out examples.
    fn run<C: CellKind>(self, rnn: Recurrent<C>, device: &Device) -> Outcome {
        let (outputs, readout) = match self.task {
            Task::Adding => (1, Readout::Last),
            Task::Copy => (COPY_VOCAB, Readout::EveryStep),
        };
        let model = SequenceModelConfig::new(outputs).with_readout(readout);
        self.train(model.init(rnn, device))
    }

    fn train<C: CellKind>(self, mut model: SequenceModel<C>) -> Outcome {
        let device = model.devices()[0].clone();
        let mut optim = FusedAdamConfig::new().with_epsilon(1e-8).init();
        for u in 0..self.updates {
            let b = batch(
                self.task,
                self.steps,
                self.batch,
                self.seed + u as u64,
                &device,
            );
            let grads = GradientsParams::from_grads(loss(&model, b).backward(), &model);
            let (grads, _) = clip_grad_norm(&model, grads, 1.0);
            model = optim.step(LEARNING_RATE, model, grads);
        }
        // Held-out error (a seed range the updates never use).
        let test_seed = self.seed + 1_000_000;
        let valid = model.valid();
        let inner = device.clone().without_autodiff();
        let test = batch(self.task, self.steps, TEST_EXAMPLES, test_seed, &inner);
        // The memoryless predictor on these same examples: the constant 1 (adding), blanks then
        // uniform over the 8 symbols (copy, exactly its analytic cross-entropy).
        let memoryless = match &test.sums {
            Some(y) => (y.clone() - 1.0).powi_scalar(2).mean().into_scalar::<f64>(),
            None => self.task.baseline(self.steps),
        };
        let error = loss(&valid, test).into_scalar::<f64>();
        // ||dL/dx_t|| averaged over 64 examples.
        let b = batch(self.task, self.steps, 64, test_seed, &device);
        let x = b.inputs.clone().require_grad();
        let l = loss(
            &model,
            Batch {
                inputs: x.clone(),
                ..b
            },
        );
        let grads = l.backward();
        let input_gradients = x
            .grad(&grads)
            .map(|g| {
                let [_, t, _] = g.dims();
                let norms = g.powi_scalar(2).sum_dim(2).sqrt().mean_dim(0).reshape([t]);
                norms
                    .into_data()
                    .convert::<f64>()
                    .try_to_vec::<f64>()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        Outcome {
            error,
            memoryless,
            input_gradients,
        }
    }
}

/// Trains the three cells on both tasks at every length; returns final error against baseline.
fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("long_dependencies");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let lengths: &[usize] = if o.quick { &[10] } else { &[50, 100, 200] };
    let (updates, hidden, batch_size) = if o.quick {
        (10, 16, 16)
    } else {
        (1000, 64, 32)
    };
    let mut table = Table::new(&[
        "task",
        "T",
        "cell",
        "updates",
        "final error",
        "memoryless (same examples)",
        "baseline (analytic)",
        "error / memoryless",
    ]);
    let mut curves = Vec::new();
    for task in [Task::Adding, Task::Copy] {
        for &steps in lengths {
            for cell in ["rnn", "lstm", "gru"] {
                device.seed(o.seed);
                let features = match task {
                    Task::Adding => 2,
                    Task::Copy => COPY_VOCAB,
                };
                let train = Train {
                    task,
                    steps,
                    updates,
                    batch: batch_size,
                    seed: o.seed,
                };
                let d = &device;
                let outcome = match cell {
                    "rnn" => train.run(RnnConfig::new(features, hidden).init(d), d),
                    "lstm" => train.run(LstmConfig::new(features, hidden).init(d), d),
                    _ => train.run(GruConfig::new(features, hidden).init(d), d),
                };
                let baseline = task.baseline(steps);
                eprintln!(
                    "{} T={steps} {cell}: {:.4} (baseline {baseline:.4})",
                    task.name(),
                    outcome.error
                );
                table.push(vec![
                    task.name().into(),
                    steps.to_string(),
                    cell.into(),
                    updates.to_string(),
                    fmt(outcome.error),
                    fmt(outcome.memoryless),
                    fmt(baseline),
                    format!("{:.3}", outcome.error / outcome.memoryless),
                ]);
                if task == Task::Adding && steps == *lengths.last().expect("non-empty") {
                    curves.push(Line::new(
                        cell,
                        outcome
                            .input_gradients
                            .iter()
                            .enumerate()
                            .map(|(t, g)| ((t + 1) as f64, g.max(1e-30).log10()))
                            .collect(),
                    ));
                }
            }
        }
    }
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    line_chart(
        &out.join("input_gradients.svg"),
        &format!(
            "Adding problem, T = {}: log10 ||dL/dx_t|| after training",
            lengths.last().expect("non-empty")
        ),
        "t",
        "log10 gradient norm",
        &curves,
    )?;
    table.write(&out, "long_dependencies")?;
    Ok(table)
}
