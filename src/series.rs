//! Forecasting from the command line: train, evaluate, forecast.
//!
//! The series is split by time (the last `valid_fraction` held out), standardised with the
//! training part's mean and deviation (saved as `normalizer.json`), and cut into windows of
//! `tau + 1` values (`tau = steps`). A series run directory holds `config.json`,
//! `normalizer.json`, `model.bpk`, `checkpoint/`, `metrics.csv`, `steps.csv`, `loss.svg`,
//! `forecast.csv` and `forecast.svg` (one-step and free-running predictions against the truth
//! on the held-out part, in the data's units).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use sequent_models::forecast::{free_running, k_step_mse, k_step_predictions, one_step};
use sequent_train::data::synthetic::noisy_sine;
use sequent_train::data::timeseries::{Normalizer, csv_header, read_csv, split};
use sequent_train::learner::series::window_loader;
use sequent_train::learner::{self, SeriesLearner, SeriesModel};

use crate::catalog::{SeriesModelFn, with_series_model};
use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::plot::{Line, line_chart};
use crate::run::{fit_and_report, model_device};

/// The horizons of the k-step-ahead evaluation.
pub const HORIZONS: [usize; 4] = [1, 4, 16, 64];

/// A series (`[T][F]`) with the name of each feature.
pub struct Series {
    /// Values, one row per time step.
    pub rows: Vec<Vec<f32>>,
    /// Feature names.
    pub names: Vec<String>,
}

/// Loads the series a config names.
pub fn load(cfg: &RunConfig, source: &DataSource) -> Result<Series, String> {
    match source {
        DataSource::Sine => Ok(Series {
            rows: noisy_sine(1000, cfg.seed)
                .into_iter()
                .map(|x| vec![x])
                .collect(),
            names: vec!["x".into()],
        }),
        DataSource::Series { path, column } => {
            let names = if !cfg.columns.is_empty() {
                cfg.columns.clone()
            } else if let Some(c) = column {
                vec![c.clone()]
            } else {
                let header = csv_header(path).map_err(|e| e.to_string())?;
                vec![header.last().cloned().unwrap_or_default()]
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let rows = read_csv(path, &refs).map_err(|e| e.to_string())?;
            Ok(Series { rows, names })
        }
        DataSource::Text(p) | DataSource::Cases { train: p, .. } => Err(format!(
            "{} is not a series; model `{}` needs a .csv file or a shipped series",
            p.display(),
            cfg.model
        )),
    }
}

/// The series normalised with training statistics, and where validation starts.
struct Prepared {
    normalizer: Normalizer,
    all: Vec<Vec<f32>>,
    train_len: usize,
}

fn prepare(cfg: &RunConfig, series: &Series) -> Result<Prepared, String> {
    let n = series.rows.len();
    let train_len = n - ((n as f64 * cfg.valid_fraction).round() as usize).max(1);
    if train_len <= cfg.steps + 1 {
        return Err(format!(
            "a series of {n} steps leaves {train_len} for training, too few for windows of {} (tau) + 1",
            cfg.steps
        ));
    }
    let parts = split(&series.rows, train_len).map_err(|e| e.to_string())?;
    let mut all = parts.train;
    all.extend(parts.valid);
    Ok(Prepared {
        normalizer: parts.normalizer,
        all,
        train_len,
    })
}

fn tensor(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let f = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), f]), device)
}

fn rows_of(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, f] = t.dims();
    let v = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    v.chunks(f).map(<[f32]>::to_vec).collect()
}

/// What the held-out evaluation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesScores {
    /// Final validation loss (one-step MSE on standardised values).
    pub valid_mse: f64,
    /// One-step mean squared error on the held-out part, in the data's units.
    pub one_step_mse: f64,
    /// One-step mean absolute error on the held-out part, in the data's units.
    pub one_step_mae: f64,
    /// `(k, MSE)` for each horizon that fits in the held-out part: in the data's units for a
    /// univariate series, on standardised values for several features.
    pub k_step: Vec<(usize, f64)>,
}

impl SeriesScores {
    fn report(&self) -> String {
        let ks: Vec<String> = self
            .k_step
            .iter()
            .map(|(k, m)| format!("k={k}: {m:.4}"))
            .collect();
        format!(
            "held-out one-step MSE {:.4}, MAE {:.4} (data units); validation loss {:.4} (standardised)\nk-step-ahead MSE: {}\n",
            self.one_step_mse,
            self.one_step_mae,
            self.valid_mse,
            ks.join(", ")
        )
    }
}

/// Trains `cfg.model` on the series `source` into `out` and evaluates it on the held-out part.
pub fn train(
    cfg: &RunConfig,
    source: &DataSource,
    device: &Device,
    out: &Path,
    resume: bool,
) -> Result<SeriesScores, String> {
    let series = load(cfg, source)?;
    let prepared = prepare(cfg, &series)?;
    cfg.start_run(out)?;
    let json = serde_json::to_string_pretty(&prepared.normalizer).expect("serialises");
    sequent_train::io::write_atomic(&out.join("normalizer.json"), json.as_bytes())?;
    eprintln!(
        "{} on {} ({}): {} train / {} validation steps, tau {}",
        cfg.model,
        cfg.data,
        series.names.join(", "),
        prepared.train_len,
        prepared.all.len() - prepared.train_len,
        cfg.steps
    );
    let resume_after = if resume {
        learner::fit::resume_point(out)?
    } else {
        None
    };
    let train_device = device.clone().autodiff();
    train_device.seed(cfg.seed);
    let scores = with_series_model(
        cfg,
        series.names.len(),
        &train_device,
        TrainSeries {
            cfg,
            prepared: &prepared,
            names: &series.names,
            out,
            resume_after,
        },
    )??;
    print!("{}", scores.report());
    Ok(scores)
}

struct TrainSeries<'a> {
    cfg: &'a RunConfig,
    prepared: &'a Prepared,
    names: &'a [String],
    out: &'a Path,
    resume_after: Option<usize>,
}

impl SeriesModelFn for TrainSeries<'_> {
    type Out = Result<SeriesScores, String>;

    fn call<M: SeriesModel>(self, model: M) -> Self::Out {
        let (cfg, p) = (self.cfg, self.prepared);
        let start = self.resume_after.unwrap_or(0);
        let tau = model.window();
        let train = window_loader(&p.all[..p.train_len], tau, cfg.batch, Some(cfg.seed), start)?;
        // Validation windows predict held-out values only (their inputs may reach back into
        // the training part, their targets never do).
        let valid = window_loader(&p.all[p.train_len - tau..], tau, cfg.batch, None, start)?;
        let (fitted, rows) = fit_and_report(
            |control| SeriesLearner::new(model, control),
            cfg.batch,
            train,
            valid,
            cfg,
            self.out,
            self.resume_after,
            "MSE (standardised)",
        )?;
        let model = fitted.model;
        learner::fit::save_model(model.clone(), &self.out.join("model.bpk"))?;
        let mut scores = evaluate_model(&model, p, self.out, self.names)?;
        scores.valid_mse = rows.last().map(|r| r.2).unwrap_or(f64::NAN);
        Ok(scores)
    }
}

/// One-step and free-running predictions over the held-out part, k-step MSE; writes
/// `forecast.csv` and `forecast.svg`.
fn evaluate_model<M: SeriesModel>(
    model: &M,
    p: &Prepared,
    out: &Path,
    names: &[String],
) -> Result<SeriesScores, String> {
    let device = model_device(model)?;
    let tau = model.window();
    let all = tensor(&p.all, &device);
    let held_out = p.all.len() - p.train_len;
    // One-step predictions for every held-out step, from the true past.
    let context = all.clone().narrow(0, p.train_len - tau, held_out + tau);
    let one = rows_of(one_step(model, &context).map_err(|e| e.to_string())?);
    let free = rows_of(
        free_running(model, &all.clone().narrow(0, 0, p.train_len), held_out)
            .map_err(|e| e.to_string())?,
    );
    // Back to the data's units for one feature: MSE scales with the variance.
    let scale = match p.normalizer.std[..] {
        [s] => (s as f64).powi(2),
        _ => 1.0,
    };
    let k_step: Vec<(usize, f64)> = HORIZONS
        .iter()
        .filter(|&&k| k < held_out)
        .map(|&k| {
            k_step_mse(model, &all, p.train_len..p.all.len(), &[k])
                .map(|v| (k, v[0] * scale))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let truth = p.normalizer.invert(&p.all[p.train_len..]);
    let one = p.normalizer.invert(&one);
    let free = p.normalizer.invert(&free);
    let errors: Vec<f64> = truth
        .iter()
        .zip(&one)
        .flat_map(|(t, o)| t.iter().zip(o).map(|(a, b)| (a - b) as f64))
        .collect();
    let n = errors.len() as f64;
    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / n;
    let mse = errors.iter().map(|e| e * e).sum::<f64>() / n;
    let mut csv = String::from("t,feature,truth,one_step,free_running\n");
    for (i, ((t, o), f)) in truth.iter().zip(&one).zip(&free).enumerate() {
        for (j, name) in names.iter().enumerate() {
            csv.push_str(&format!(
                "{},{name},{},{},{}\n",
                p.train_len + i,
                t[j],
                o[j],
                f[j]
            ));
        }
    }
    sequent_train::io::write_atomic(&out.join("forecast.csv"), csv.as_bytes())?;
    let line = |name: &str, rows: &[Vec<f32>]| {
        Line::new(
            name,
            rows.iter()
                .enumerate()
                .map(|(i, r)| ((p.train_len + i) as f64, r[0] as f64))
                .collect(),
        )
    };
    line_chart(
        &out.join("forecast.svg"),
        &format!("{} on the held-out part", names[0]),
        "time step",
        &names[0],
        &[
            line("truth", &truth),
            line("one-step", &one),
            line("free-running", &free),
        ],
    )?;
    Ok(SeriesScores {
        valid_mse: f64::NAN,
        one_step_mse: mse,
        one_step_mae: mae,
        k_step,
    })
}

/// A trained series run read back from its directory.
pub struct SeriesRun {
    /// The run's settings.
    pub cfg: RunConfig,
    /// Where it lives.
    pub dir: PathBuf,
    /// Its data.
    pub source: DataSource,
}

/// Errors of the k-step-ahead forecasts at one horizon on the held-out part, in the data's units.
#[derive(Clone, Debug, PartialEq)]
pub struct HorizonError {
    /// Horizon `k` (1 = one step ahead).
    pub k: usize,
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean absolute percentage error `100 mean |e / y|` (targets equal to 0 are skipped).
    pub mape: f64,
}

/// k-step-ahead forecasts over the held-out part: every origin `o` with `o + k_max - 1` inside
/// the series, so every horizon is scored on the same origins.
#[derive(Clone, Debug, PartialEq)]
pub struct HorizonForecasts {
    /// The errors, one per requested horizon.
    pub errors: Vec<HorizonError>,
    /// Index of the first origin.
    pub first: usize,
    /// Per requested horizon, the predictions (data units); row `i` predicts
    /// `series[first + i + k - 1]`.
    pub predictions: Vec<Vec<Vec<f32>>>,
}

/// Errors of `predictions` (row `i` predicting `truth[first + i + k - 1]`).
pub fn horizon_error(
    k: usize,
    first: usize,
    predictions: &[Vec<f32>],
    truth: &[Vec<f32>],
) -> HorizonError {
    let (mut se, mut ae, mut ape, mut n, mut n_pct) = (0.0, 0.0, 0.0, 0usize, 0usize);
    for (i, row) in predictions.iter().enumerate() {
        for (p, y) in row.iter().zip(&truth[first + i + k - 1]) {
            let e = (*p - *y) as f64;
            se += e * e;
            ae += e.abs();
            n += 1;
            if *y != 0.0 {
                ape += (e / *y as f64).abs();
                n_pct += 1;
            }
        }
    }
    HorizonError {
        k,
        mse: se / n.max(1) as f64,
        mae: ae / n.max(1) as f64,
        mape: 100.0 * ape / n_pct.max(1) as f64,
    }
}

impl SeriesRun {
    fn reload(&self, job: Job<'_>, device: &Device, features: usize) -> Result<Produced, String> {
        let weights = self.dir.join("model.bpk");
        with_series_model(
            &self.cfg,
            features,
            device,
            Reload {
                weights: &weights,
                job,
            },
        )?
    }

    /// Re-scores the trained model on the held-out part (rewrites `forecast.csv`/`.svg`).
    pub fn evaluate(&self, device: &Device) -> Result<SeriesScores, String> {
        let series = load(&self.cfg, &self.source)?;
        let prepared = prepare(&self.cfg, &series)?;
        let job = Job::Evaluate {
            prepared: &prepared,
            out: &self.dir,
            names: &series.names,
        };
        let Produced::Scores(scores) = self.reload(job, device, series.names.len())? else {
            unreachable!("an evaluation job produces scores")
        };
        print!("{}", scores.report());
        Ok(scores)
    }

    /// k-step-ahead forecasts and their errors at `horizons` over the held-out part.
    pub fn horizons(
        &self,
        horizons: &[usize],
        device: &Device,
    ) -> Result<HorizonForecasts, String> {
        let k_max = horizons.iter().copied().max().unwrap_or(0);
        if k_max == 0 {
            return Err("horizons must be at least 1".into());
        }
        let series = load(&self.cfg, &self.source)?;
        let prepared = prepare(&self.cfg, &series)?;
        let job = Job::Horizons {
            prepared: &prepared,
            k_max,
        };
        let Produced::Rolled(first, rolled) = self.reload(job, device, series.names.len())? else {
            unreachable!("a horizon job produces predictions")
        };
        let predictions: Vec<Vec<Vec<f32>>> = horizons
            .iter()
            .map(|&k| prepared.normalizer.invert(&rolled[k - 1]))
            .collect();
        let errors = horizons
            .iter()
            .zip(&predictions)
            .map(|(&k, p)| horizon_error(k, first, p, &series.rows))
            .collect();
        Ok(HorizonForecasts {
            errors,
            first,
            predictions,
        })
    }

    /// Free-running forecast of `steps` values past the end of the series, in the data's units;
    /// writes `future.csv` and `future.svg`.
    pub fn forecast(&self, steps: usize, device: &Device) -> Result<Vec<Vec<f32>>, String> {
        if steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        let series = load(&self.cfg, &self.source)?;
        let prepared = prepare(&self.cfg, &series)?;
        let job = Job::Forecast {
            prepared: &prepared,
            steps,
        };
        let Produced::Rolled(_, mut rolled) = self.reload(job, device, series.names.len())? else {
            unreachable!("a forecast job produces predictions")
        };
        let ahead = prepared.normalizer.invert(&rolled.remove(0));
        let n = series.rows.len();
        let mut csv = format!("t,{}\n", series.names.join(","));
        for (i, r) in ahead.iter().enumerate() {
            let vals: Vec<String> = r.iter().map(f32::to_string).collect();
            csv.push_str(&format!("{},{}\n", n + i, vals.join(",")));
        }
        sequent_train::io::write_atomic(&self.dir.join("future.csv"), csv.as_bytes())?;
        let history = n.saturating_sub(4 * steps);
        line_chart(
            &self.dir.join("future.svg"),
            &format!("{}: {steps} steps ahead", series.names[0]),
            "time step",
            &series.names[0],
            &[
                Line::new(
                    "history",
                    (history..n)
                        .map(|t| (t as f64, series.rows[t][0] as f64))
                        .collect(),
                ),
                Line::new(
                    "forecast",
                    ahead
                        .iter()
                        .enumerate()
                        .map(|(i, r)| ((n + i) as f64, r[0] as f64))
                        .collect(),
                ),
            ],
        )?;
        Ok(ahead)
    }
}

enum Job<'a> {
    Evaluate {
        prepared: &'a Prepared,
        out: &'a Path,
        names: &'a [String],
    },
    Forecast {
        prepared: &'a Prepared,
        steps: usize,
    },
    Horizons {
        prepared: &'a Prepared,
        k_max: usize,
    },
}

/// What a reloaded model produced: scores, or standardised predictions (a first index and rows
/// per step or horizon).
enum Produced {
    Scores(SeriesScores),
    Rolled(usize, Vec<Vec<Vec<f32>>>),
}

struct Reload<'a> {
    weights: &'a Path,
    job: Job<'a>,
}

impl SeriesModelFn for Reload<'_> {
    type Out = Result<Produced, String>;

    fn call<M: SeriesModel>(self, model: M) -> Self::Out {
        let model = learner::fit::load_model(model, self.weights)?.valid();
        let device = model_device(&model)?;
        match self.job {
            Job::Evaluate {
                prepared,
                out,
                names,
            } => {
                let mut scores = evaluate_model(&model, prepared, out, names)?;
                scores.valid_mse = match prepared.normalizer.std[..] {
                    [s] => scores.one_step_mse / (s as f64).powi(2),
                    _ => f64::NAN,
                };
                Ok(Produced::Scores(scores))
            }
            Job::Forecast { prepared, steps } => {
                let all = tensor(&prepared.all, &device);
                let ahead = free_running(&model, &all, steps).map_err(|e| e.to_string())?;
                Ok(Produced::Rolled(0, vec![rows_of(ahead)]))
            }
            Job::Horizons { prepared, k_max } => {
                let all = tensor(&prepared.all, &device);
                let (first, preds) =
                    k_step_predictions(&model, &all, prepared.train_len..prepared.all.len(), k_max)
                        .map_err(|e| e.to_string())?;
                Ok(Produced::Rolled(
                    first,
                    preds.into_iter().map(rows_of).collect(),
                ))
            }
        }
    }
}
