//! Forecasting from the command line: train, evaluate, forecast.
//!
//! The series is split by time (the last `valid_fraction` held out), standardised with the
//! training part's mean and deviation (saved as `normalizer.json`), and cut into windows of
//! `tau + 1` values (`tau = steps`). Known-future covariates (`--covariate`) are encoded as
//! [`CovariateEncoder`] says (saved as `covariates.json`, which evaluation and forecasting read
//! back) and fed beside the values: each row the model reads carries the next step's
//! covariates. A series run directory holds `config.json`, `normalizer.json`,
//! (`covariates.json`), `model.bpk`, `checkpoint/`, `metrics.csv`, `steps.csv`, `loss.svg`,
//! `forecast.csv` and `forecast.svg` (one-step and free-running predictions against the truth
//! on the held-out part, in the data's units).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use sequent_models::forecast::{free_running, k_step_mse, one_step};
use sequent_train::data::covariates::{CovariateEncoder, lead_rows};
use sequent_train::data::synthetic::noisy_sine;
use sequent_train::data::timeseries::{Frame, Normalizer, csv_header, read_frame, split};
use sequent_train::learner::series::forecast_loaders;
use sequent_train::learner::{self, Forecasting, SeriesModel, TaskLearner};

use crate::catalog::{SeriesModelFn, with_series_model};
use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::footprint::Footprint;
use crate::plot::{Line, line_chart};
use crate::run::{fit_and_report, model_device};
use crate::run_dir::Start;

mod run;

pub use run::SeriesRun;

/// The horizons of the k-step-ahead evaluation.
pub const HORIZONS: [usize; 4] = [1, 4, 16, 64];

/// The file in a series run directory that holds the fitted covariate encoding.
pub const COVARIATES_FILE: &str = "covariates.json";

/// A series (`[T][F]`) with the name of each feature.
pub struct Series {
    /// Values, one row per time step.
    pub rows: Vec<Vec<f32>>,
    /// Feature names.
    pub names: Vec<String>,
    /// The file read with the covariates' columns, when the run has covariates.
    pub frame: Option<Frame>,
}

/// Loads the series a config names.
pub fn load(cfg: &RunConfig, source: &DataSource) -> Result<Series, String> {
    match source {
        DataSource::Sine if !cfg.covariates.is_empty() => {
            Err("the sine series has no columns or dates; --covariate needs a .csv series".into())
        }
        DataSource::Sine => Ok(Series {
            rows: noisy_sine(1000, cfg.seed)
                .into_iter()
                .map(|x| vec![x])
                .collect(),
            names: vec!["x".into()],
            frame: None,
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
            let known = CovariateEncoder::columns(&cfg.covariates, &cfg.date);
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let frame = read_frame(path, &refs, &known, cfg.missing).map_err(|e| e.to_string())?;
            Ok(Series {
                rows: frame.values.clone(),
                names,
                frame: (!cfg.covariates.is_empty()).then_some(frame),
            })
        }
        DataSource::Text(p) | DataSource::Cases { train: p, .. } => Err(format!(
            "{} is not a series; model `{}` needs a .csv file or a shipped series",
            p.display(),
            cfg.model
        )),
    }
}

/// The series normalised with training statistics, where validation starts, and the encoded
/// covariates.
struct Prepared {
    normalizer: Normalizer,
    all: Vec<Vec<f32>>,
    train_len: usize,
    covariates: Option<Covariates>,
}

/// A series' covariates: the file they come from, their encoding, and the encoded rows
/// (`[T'][C]`, aligned with the series, `T' > T` where the file or the calendar knows the
/// future).
struct Covariates {
    frame: Frame,
    encoder: CovariateEncoder,
    rows: Vec<Vec<f32>>,
}

impl Prepared {
    /// The rows the model reads: the values, and each row's next-step covariates.
    fn inputs(&self) -> Vec<Vec<f32>> {
        match &self.covariates {
            Some(c) => lead_rows(&self.all, &c.rows),
            None => self.all.clone(),
        }
    }

    /// The number `C` of covariate columns.
    fn width(&self) -> usize {
        self.covariates.as_ref().map_or(0, |c| c.encoder.width())
    }

    /// The encoded covariates of the first `rows` steps as a tensor, if the run has any.
    fn covariates(&self, rows: usize, device: &Device) -> Result<Option<Tensor<2>>, String> {
        let Some(c) = &self.covariates else {
            return Ok(None);
        };
        let encoded = if rows <= c.rows.len() {
            c.rows[..rows].to_vec()
        } else {
            c.encoder
                .encode(&c.frame, rows)
                .map_err(|e| e.to_string())?
        };
        Ok(Some(tensor(&encoded, device)))
    }
}

/// Normalises `series` and encodes its covariates: with `saved` (a trained run's encoding) or
/// fitted on the training part.
fn prepare(
    cfg: &RunConfig,
    series: &Series,
    saved: Option<CovariateEncoder>,
) -> Result<Prepared, String> {
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
    let covariates = match &series.frame {
        None => None,
        Some(frame) => {
            let encoder = match saved {
                Some(e) => e,
                None => CovariateEncoder::fit(&cfg.covariates, &cfg.date, frame, train_len)
                    .map_err(|e| e.to_string())?,
            };
            // One row past the series, so that its last value is a training target too.
            let rows = encoder.known_rows(frame).unwrap_or(n + 1);
            let rows = encoder.encode(frame, rows).map_err(|e| e.to_string())?;
            Some(Covariates {
                frame: frame.clone(),
                encoder,
                rows,
            })
        }
    };
    Ok(Prepared {
        normalizer: parts.normalizer,
        all,
        train_len,
        covariates,
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
    start: Start,
) -> Result<SeriesScores, String> {
    let series = load(cfg, source)?;
    let prepared = prepare(cfg, &series, None)?;
    let width = series.names.len() + prepared.width();
    Footprint::of_run(cfg, cfg.model.parse()?, width, false).check("this model")?;
    let _run = cfg.start_run(out, start)?;
    let json = serde_json::to_string_pretty(&prepared.normalizer).expect("serialises");
    sequent_train::io::write_atomic(&out.join("normalizer.json"), json.as_bytes())?;
    if let Some(c) = &prepared.covariates {
        let json = serde_json::to_string_pretty(&c.encoder).expect("serialises");
        sequent_train::io::write_atomic(&out.join(COVARIATES_FILE), json.as_bytes())?;
    }
    eprintln!(
        "{} on {} ({}): {} train / {} validation steps, tau {}",
        cfg.model,
        cfg.data,
        series.names.join(", "),
        prepared.train_len,
        prepared.all.len() - prepared.train_len,
        cfg.steps
    );
    let resume_after = if start.is_resume() {
        learner::fit::resume_point(out)?
    } else {
        None
    };
    let train_device = device.clone().autodiff();
    train_device.seed(cfg.seed);
    let scores = with_series_model(
        cfg,
        series.names.len(),
        prepared.width(),
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
        let inputs = p.inputs();
        let (train, valid) =
            forecast_loaders(&inputs, p.train_len, tau, cfg.batch, cfg.seed, start)?;
        let (fitted, rows) = fit_and_report(
            |control| TaskLearner::new(model, Forecasting::default(), control),
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
    let covariates = p.covariates(p.all.len(), &device)?;
    // One-step predictions for every held-out step, from the true past.
    let context = all.clone().narrow(0, p.train_len - tau, held_out + tau);
    let context_covariates = covariates
        .clone()
        .map(|c| c.narrow(0, p.train_len - tau, held_out + tau));
    let one = one_step(model, &context, context_covariates.as_ref());
    let one = rows_of(one.map_err(|e| e.to_string())?);
    let history = all.clone().narrow(0, 0, p.train_len);
    let free = free_running(model, &history, covariates.as_ref(), held_out);
    let free = rows_of(free.map_err(|e| e.to_string())?);
    // Back to the data's units for one feature: MSE scales with the variance.
    let scale = match p.normalizer.std[..] {
        [s] => (s as f64).powi(2),
        _ => 1.0,
    };
    let k_step: Vec<(usize, f64)> = HORIZONS
        .iter()
        .filter(|&&k| k < held_out)
        .map(|&k| {
            k_step_mse(
                model,
                &all,
                covariates.as_ref(),
                p.train_len..p.all.len(),
                &[k],
            )
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
