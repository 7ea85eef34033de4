//! The adding problem (T = 50, 100 and 200) and the copy-memory task (T = 100 and 200; Arjovsky,
//! Shah & Bengio 2016) for a tanh RNN, an LSTM and a GRU, each trained from 3 seeds for the same
//! fixed number of Adam updates (lr 3e-3, batch 32, hidden 64, global-norm clip 1) on fresh
//! batches.
//!
//! How each cell starts is part of the experiment, and the table says it: the RNN with
//! PyTorch's initialisation (the lecture's vanilla RNN); the LSTM and the GRU with chrono
//! initialisation of their gate biases (Tallec & Ollivier 2018: keep-gate biases
//! `log(U(1, T_max - 1))`, `T_max = T` for adding and `3T/2` for copy, as in their paper), so
//! that their time constants start spread up to the task's delay. Two more rows isolate what the
//! settings do: the LSTM with PyTorch's initialisation (the ablation), and on the adding problem
//! the layer-normalised LSTM with the same chrono start.
//!
//! The final error on 2,048 held-out examples is compared with the memoryless baseline
//! (adding: MSE 1/6, measured on the same examples; copy: cross-entropy 10 ln 8 / (T + 20)), as
//! the median and range over the seeds, with the updates each run took to reach 0.1 x the
//! memoryless error on a held-out batch of 512 (checked 20 times a run) and that batch's error at
//! half the updates (a run still improving at the end of its budget shows it). Plots: the held-out
//! error against updates for every task and length (`curves_TASK_T.svg`, median over the seeds,
//! the baseline at 1), and `||dL/dx_t||` against `t` for the three cells on the adding problem
//! (how much the loss still feels inputs far in the past: the vanishing gradient).
//!
//! `cargo run --release --example long_dependencies -- [--device D] [--seed S] [--quick] [--out DIR]
//! [--only TASK:T,..]` writes `OUT/long_dependencies.{md,csv}` and the plots (OUT defaults to
//! `runs/examples/long_dependencies`); the full run's table is in `docs/results.md`. Each run's
//! outcome is kept in `OUT/outcomes/`, and a run reads the outcomes it finds there instead of
//! training again: a stopped run continues where it stopped, and runs with `--only` (e.g.
//! `--only copy:200` beside `--only adding:50,adding:100,adding:200,copy:100`, one thread each
//! with `RAYON_NUM_THREADS=1`) share the work, after which a run without it writes the whole
//! table.

use std::process::ExitCode;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::Parser;
use sequent::experiments::{ExampleOptions, Table, fmt, median_and_range, spread};
use sequent::plot::{Line, line_chart};
use sequent_models::heads::{Readout, SequenceModel, SequenceModelConfig};
use sequent_models::loss::cross_entropy;
use sequent_models::recurrent::{CellKind, GateBias, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_train::clip::clip_grad_norm;
use sequent_train::data::synthetic::{
    ADDING_BASELINE_MSE, COPY_VOCAB, adding, copy_baseline_cross_entropy, copy_memory,
};
use sequent_train::optim::FusedAdamConfig;

fn main() -> ExitCode {
    sequent::experiments::main_with("long_dependencies", run)
}

/// The example's flags.
#[derive(Clone, Debug, Parser)]
struct Args {
    #[command(flatten)]
    common: ExampleOptions,
    /// Only these tasks and lengths, `TASK:T` (e.g. `copy:200`); all of them by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl AsRef<ExampleOptions> for Args {
    fn as_ref(&self) -> &ExampleOptions {
        &self.common
    }
}

/// Held-out examples the final error is measured on.
const TEST_EXAMPLES: usize = 2048;

/// Adam's learning rate (global-norm clip 1).
const LEARNING_RATE: f64 = 3e-3;

/// Updates of every run on the adding problem.
const ADDING_UPDATES: usize = 3000;

/// Updates of every run on the copy task.
const COPY_UPDATES: usize = 15000;

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

/// The cells the table compares, each with the settings it starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// tanh RNN, PyTorch's initialisation.
    Rnn,
    /// LSTM, chrono-initialised gate biases.
    Lstm,
    /// GRU, chrono-initialised gate biases.
    Gru,
    /// LSTM, PyTorch's initialisation: the ablation of the chrono start.
    LstmPyTorch,
    /// Layer-normalised LSTM, chrono-initialised gate biases.
    LstmLayerNorm,
}

impl Setup {
    const ALL: [Setup; 5] = [
        Setup::Rnn,
        Setup::Lstm,
        Setup::Gru,
        Setup::LstmPyTorch,
        Setup::LstmLayerNorm,
    ];

    fn cell(self) -> &'static str {
        match self {
            Setup::Rnn => "rnn",
            Setup::Gru => "gru",
            _ => "lstm",
        }
    }

    /// The longest delay the chrono start is set for: `T` (adding), `3T/2` (copy).
    fn t_max(task: Task, steps: usize) -> f64 {
        match task {
            Task::Adding => steps as f64,
            Task::Copy => 1.5 * steps as f64,
        }
    }

    fn settings(self, task: Task, steps: usize) -> String {
        let chrono = format!("chrono, T_max = {}", Self::t_max(task, steps));
        match self {
            Setup::Rnn => "tanh, PyTorch init".into(),
            Setup::Lstm | Setup::Gru => chrono,
            Setup::LstmPyTorch => "PyTorch init (ablation)".into(),
            Setup::LstmLayerNorm => format!("layer norm, {chrono}"),
        }
    }

    /// The layer-normalised LSTM runs on the adding problem at the longest length only.
    fn runs(self, task: Task, steps: usize, longest: usize) -> bool {
        self != Setup::LstmLayerNorm || (task == Task::Adding && steps == longest)
    }

    fn train(self, train: Train, features: usize, hidden: usize, device: &Device) -> Outcome {
        let chrono = GateBias::Chrono {
            max_len: Self::t_max(train.task, train.steps),
        };
        let d = device;
        match self {
            Setup::Rnn => train.run(RnnConfig::new(features, hidden).init(d), d),
            Setup::Gru => {
                let gru = GruConfig::new(features, hidden).with_gate_bias(chrono);
                train.run(gru.init(d), d)
            }
            Setup::LstmPyTorch => train.run(LstmConfig::new(features, hidden).init(d), d),
            Setup::Lstm | Setup::LstmLayerNorm => {
                let lstm = LstmConfig::new(features, hidden)
                    .with_gate_bias(chrono)
                    .with_layer_norm(self == Setup::LstmLayerNorm);
                train.run(lstm.init(d), d)
            }
        }
    }
}

/// What one training run reports; kept in `OUT/outcomes/` so that a stopped run continues
/// where it stopped.
#[derive(serde::Serialize, serde::Deserialize)]
struct Outcome {
    error: f64,
    memoryless: f64,
    /// `(updates, error / memoryless)` on the held-out batch of the learning curve.
    curve: Vec<(usize, f64)>,
    input_gradients: Vec<f64>,
    seconds: f64,
}

impl Outcome {
    /// The first point of the learning curve at or below `0.1 x` the memoryless error.
    fn updates_to_tenth(&self) -> Option<usize> {
        self.curve.iter().find(|(_, r)| *r <= 0.1).map(|(u, _)| *u)
    }
}

struct Train {
    task: Task,
    steps: usize,
    updates: usize,
    batch: usize,
    seed: u64,
}

/// Points of the learning curve a run takes.
const CURVE_POINTS: usize = 20;
/// Held-out examples of each learning-curve point.
const CURVE_EXAMPLES: usize = 512;

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

    /// The error of `model` on `test` relative to the memoryless predictor's on the same
    /// examples: the constant 1 (adding), blanks then uniform over the 8 symbols (copy, exactly
    /// its analytic cross-entropy). Returns both.
    fn measure<C: CellKind>(&self, model: &SequenceModel<C>, test: Batch) -> (f64, f64) {
        let memoryless = match &test.sums {
            Some(y) => (y.clone() - 1.0).powi_scalar(2).mean().into_scalar::<f64>(),
            None => self.task.baseline(self.steps),
        };
        (loss(model, test).into_scalar::<f64>(), memoryless)
    }

    fn train<C: CellKind>(self, mut model: SequenceModel<C>) -> Outcome {
        let start = std::time::Instant::now();
        let device = model.devices()[0].clone();
        let inner = device.clone().without_autodiff();
        // Held-out seeds: ranges the updates never use.
        let (curve_seed, test_seed) = (self.seed + 2_000_000, self.seed + 1_000_000);
        let curve_batch = || batch(self.task, self.steps, CURVE_EXAMPLES, curve_seed, &inner);
        let every = self.updates.div_ceil(CURVE_POINTS).max(1);
        let mut optim = FusedAdamConfig::new().with_epsilon(1e-8).init();
        let mut curve = Vec::with_capacity(CURVE_POINTS + 1);
        for u in 0..self.updates {
            if u % every == 0 {
                let (e, m) = self.measure(&model.valid(), curve_batch());
                curve.push((u, e / m));
            }
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
        let valid = model.valid();
        let (e, m) = self.measure(&valid, curve_batch());
        curve.push((self.updates, e / m));
        let test = batch(self.task, self.steps, TEST_EXAMPLES, test_seed, &inner);
        let (error, memoryless) = self.measure(&valid, test);
        let seconds = start.elapsed().as_secs_f64();
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
            curve,
            input_gradients,
            seconds,
        }
    }
}

/// Trains every setup on both tasks at every length from each seed; returns the final error
/// against the baseline, with the budget each run took.
fn run(args: &Args) -> Result<Table, String> {
    let o = &args.common;
    let out = o.out_dir("long_dependencies");
    let outcomes_dir = out.join("outcomes");
    std::fs::create_dir_all(&outcomes_dir).map_err(|e| e.to_string())?;
    let device = sequent::device::parse(&o.device)?.autodiff();
    let all_lengths = |task: Task| -> &[usize] {
        match (o.quick, task) {
            (true, _) => &[10],
            (false, Task::Adding) => &[50, 100, 200],
            (false, Task::Copy) => &[100, 200],
        }
    };
    let parts: Vec<String> = [Task::Adding, Task::Copy]
        .into_iter()
        .flat_map(|task| {
            all_lengths(task)
                .iter()
                .map(move |t| format!("{}:{t}", task.name()))
        })
        .collect();
    if let Some(unknown) = args.only.iter().find(|p| !parts.contains(p)) {
        return Err(format!(
            "--only {unknown}: not a task and length of this run (one of {})",
            parts.join(", ")
        ));
    }
    let lengths = |task: Task| -> Vec<usize> {
        all_lengths(task)
            .iter()
            .copied()
            .filter(|t| {
                let part = format!("{}:{t}", task.name());
                args.only.is_empty() || args.only.contains(&part)
            })
            .collect()
    };
    let longest = *all_lengths(Task::Adding).last().expect("non-empty");
    let seeds = if o.quick { 1 } else { 3 };
    let (hidden, batch_size) = if o.quick { (16, 16) } else { (64, 32) };
    let updates = |task: Task| match (o.quick, task) {
        (true, _) => 10,
        (false, Task::Adding) => ADDING_UPDATES,
        (false, Task::Copy) => COPY_UPDATES,
    };
    let mut table = Table::new(&[
        "task",
        "T",
        "cell",
        "settings",
        "updates",
        "examples",
        "final error",
        "memoryless (same examples)",
        "baseline (analytic)",
        "error / memoryless",
        "at half the updates",
        "updates to 0.1 x memoryless",
        "seconds a run",
    ]);
    let mut gradients = Vec::new();
    // Rows by (task, T, setup); the table is written after each task and length, so a stopped
    // run leaves the rows it finished (and continues from `OUT/outcomes/` when run again).
    let mut rows: Vec<((usize, usize, usize), Vec<String>)> = Vec::new();
    for (task_index, task) in [Task::Adding, Task::Copy].into_iter().enumerate() {
        for steps in lengths(task) {
            let mut curves = vec![Line::new(
                "memoryless",
                vec![(0.0, 0.0), (updates(task) as f64, 0.0)],
            )];
            let setups = Setup::ALL.into_iter().enumerate();
            for (setup_index, setup) in setups.filter(|(_, s)| s.runs(task, steps, longest)) {
                let features = match task {
                    Task::Adding => 2,
                    Task::Copy => COPY_VOCAB,
                };
                let outcomes = (o.seed..o.seed + seeds)
                    .map(|seed| {
                        let train = Train {
                            task,
                            steps,
                            updates: updates(task),
                            batch: batch_size,
                            seed,
                        };
                        let file = outcomes_dir.join(format!(
                            "{}-T{steps}-{setup:?}-seed{seed}-updates{}-hidden{hidden}-batch{batch_size}.json",
                            task.name(),
                            train.updates
                        ));
                        if let Ok(text) = std::fs::read_to_string(&file) {
                            return serde_json::from_str(&text)
                                .map_err(|e| format!("{}: {e}", file.display()));
                        }
                        device.seed(seed);
                        let outcome = setup.train(train, features, hidden, &device);
                        eprintln!(
                            "{} T={steps} {} ({}), seed {seed}: {:.4} x memoryless, {:.0} s",
                            task.name(),
                            setup.cell(),
                            setup.settings(task, steps),
                            outcome.error / outcome.memoryless,
                            outcome.seconds
                        );
                        let json = serde_json::to_string(&outcome).expect("serialises");
                        sequent_train::io::write_atomic(&file, json.as_bytes())?;
                        Ok(outcome)
                    })
                    .collect::<Result<Vec<Outcome>, String>>()?;
                let ratios: Vec<f64> = outcomes.iter().map(|r| r.error / r.memoryless).collect();
                // The learning curve's point at half the updates (a curve still falling there
                // and a curve flat at the baseline fail for different reasons).
                let half: Vec<f64> = outcomes
                    .iter()
                    .map(|r| r.curve[r.curve.len() / 2].1)
                    .collect();
                let mut reached: Vec<Option<usize>> =
                    outcomes.iter().map(Outcome::updates_to_tenth).collect();
                reached.sort_by_key(|r| r.unwrap_or(usize::MAX));
                let hits = reached.iter().flatten().count();
                let to_tenth = match reached[reached.len() / 2] {
                    Some(u) => format!("{u} ({hits}/{seeds})"),
                    None => format!("not reached ({hits}/{seeds})"),
                };
                let errors: Vec<f64> = outcomes.iter().map(|r| r.error).collect();
                let memoryless: Vec<f64> = outcomes.iter().map(|r| r.memoryless).collect();
                let seconds: Vec<f64> = outcomes.iter().map(|r| r.seconds).collect();
                let row = vec![
                    task.name().into(),
                    steps.to_string(),
                    setup.cell().into(),
                    setup.settings(task, steps),
                    updates(task).to_string(),
                    (updates(task) * batch_size).to_string(),
                    fmt(spread(&errors).1),
                    fmt(spread(&memoryless).1),
                    fmt(task.baseline(steps)),
                    median_and_range(&ratios),
                    format!("{:.3}", spread(&half).1),
                    to_tenth,
                    format!("{:.0}", spread(&seconds).1),
                ];
                rows.push(((task_index, steps, setup_index), row));
                // The median over the seeds at each point of the learning curve, in log10.
                let points = outcomes[0].curve.iter().enumerate().map(|(k, (u, _))| {
                    let at: Vec<f64> = outcomes.iter().map(|r| r.curve[k].1).collect();
                    (*u as f64, spread(&at).1.max(1e-30).log10())
                });
                let name = format!("{} ({})", setup.cell(), setup.settings(task, steps));
                curves.push(Line::new(&name, points.collect()));
                let cells = [Setup::Rnn, Setup::Lstm, Setup::Gru];
                if task == Task::Adding && steps == longest && cells.contains(&setup) {
                    let first = &outcomes[0].input_gradients;
                    let points = first.iter().enumerate();
                    let points = points.map(|(t, g)| ((t + 1) as f64, g.max(1e-30).log10()));
                    gradients.push(Line::new(&name, points.collect()));
                }
            }
            line_chart(
                &out.join(format!("curves_{}_{steps}.svg", task.name())),
                &format!(
                    "{}, T = {steps}: held-out error / memoryless (median of {seeds} seeds)",
                    task.name()
                ),
                "updates",
                "log10 error / memoryless",
                &curves,
            )?;
            if task == Task::Adding && steps == longest {
                line_chart(
                    &out.join("input_gradients.svg"),
                    &format!("Adding problem, T = {longest}: log10 ||dL/dx_t|| after training"),
                    "t",
                    "log10 gradient norm",
                    &gradients,
                )?;
            }
            rows.sort_by_key(|(key, _)| *key);
            table.rows = rows.iter().map(|(_, row)| row.clone()).collect();
            table.write(&out, "long_dependencies")?;
        }
    }
    Ok(table)
}
