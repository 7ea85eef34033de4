//! A trained series run read back from its directory: its scores and free-running forecast.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sequent_models::forecast::free_running;
use sequent_train::learner::{self, SeriesModel};

use super::{
    COVARIATES_FILE, Prepared, Series, SeriesScores, evaluate_model, load, prepare, rows_of, tensor,
};
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

impl SeriesRun {
    /// The series and its covariates as the run was trained on them, encoded with the run's
    /// saved covariate encoding.
    fn prepare(&self) -> Result<(Series, Prepared), String> {
        let series = load(&self.cfg, &self.source)?;
        let saved = if self.cfg.covariates.is_empty() {
            None
        } else {
            let path = self.dir.join(COVARIATES_FILE);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let encoder = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a covariate encoding: {e}", path.display()))?;
            Some(encoder)
        };
        let prepared = prepare(&self.cfg, &series, saved)?;
        Ok((series, prepared))
    }

    fn reload(&self, job: Job<'_>, device: &Device, series: &Series) -> Result<Produced, String> {
        let weights = self.dir.join("model.bpk");
        let covariates = match &job {
            Job::Evaluate { prepared, .. } | Job::Forecast { prepared, .. } => prepared.width(),
        };
        with_series_model(
            &self.cfg,
            series.names.len(),
            covariates,
            device,
            Reload {
                weights: &weights,
                job,
            },
        )?
    }

    /// Re-scores the trained model on the held-out part (rewrites `forecast.csv`/`.svg`).
    pub fn evaluate(&self, device: &Device) -> Result<SeriesScores, String> {
        let (series, prepared) = self.prepare()?;
        let job = Job::Evaluate {
            prepared: &prepared,
            out: &self.dir,
            names: &series.names,
        };
        let Produced::Scores(scores) = self.reload(job, device, &series)? else {
            unreachable!("an evaluation job produces scores")
        };
        print!("{}", scores.report());
        Ok(scores)
    }

    /// Free-running forecast of `steps` values past the end of the series, in the data's units;
    /// writes `future.csv` and `future.svg`.
    pub fn forecast(&self, steps: usize, device: &Device) -> Result<Vec<Vec<f32>>, String> {
        if steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        let (series, prepared) = self.prepare()?;
        let job = Job::Forecast {
            prepared: &prepared,
            steps,
        };
        let Produced::Forecast(ahead) = self.reload(job, device, &series)? else {
            unreachable!("a forecast job produces predictions")
        };
        let ahead = prepared.normalizer.invert(&ahead);
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
}

/// What a reloaded model produced: scores, or a standardised free-running forecast.
enum Produced {
    Scores(SeriesScores),
    Forecast(Vec<Vec<f32>>),
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
                let covariates = prepared.covariates(prepared.all.len() + steps, &device)?;
                let ahead = free_running(&model, &all, covariates.as_ref(), steps)
                    .map_err(|e| e.to_string())?;
                Ok(Produced::Forecast(rows_of(ahead)))
            }
        }
    }
}
