//! A trained series run read back from its directory: its scores, k-step-ahead forecasts and
//! free-running forecast.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sequent_models::forecast::{free_running, k_step_predictions};
use sequent_train::learner::{self, SeriesModel};

use super::{Prepared, SeriesScores, evaluate_model, load, prepare, rows_of, tensor};
use crate::catalog::{SeriesModelFn, with_series_model};
use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::plot::{Line, line_chart};
use crate::run::model_device;

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

/// What a reloaded model is asked to produce.
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

/// A reloaded model's weights file and its job, run by [`with_series_model`].
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
