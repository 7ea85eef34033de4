//! Daily US births 1969-1988, the last two years (730 days) held out. A seasonal-naive baseline
//! (the same weekday one week earlier), the autoregressive MLP, an LSTM and a GRU (windows of 28
//! days, standardised with the training part's statistics) are scored by the MAE of their
//! h-step-ahead forecasts, h = 1, 7 and 28 days, from every held-out origin, and by that MAE
//! relative to the seasonal-naive forecast's at the same horizon and origins (below 1 beats it).
//!
//! Each model runs twice: on the births alone, and with known-future calendar covariates
//! computed from the date (the weekday and the month, one-hot, and a US federal holiday
//! indicator), each row read with the next day's covariates. The recursive forecast reads the
//! 28 true days before the origin and feeds its own forecasts back `h - 1` times (with the
//! covariates of the days it forecasts); the direct GRU predicts all 28 days at once from the
//! same window, so its errors do not compound along the horizon. Every model trains 30 epochs
//! (Adam, learning rate 5e-3 annealed to 0 on a cosine, gradient norm clipped at 1, batches of
//! 32) from 3 seeds; the table gives the median MAE and the median and range of the ratio.
//!
//! `cargo run --release --example births_forecast -- [--device D] [--seed S] [--quick] [--out DIR]`
//! writes `OUT/births_forecast.{md,csv}`, `OUT/forecast.svg` and `OUT/horizons.svg` (OUT
//! defaults to `runs/examples/births_forecast`); the full run's table is in `docs/results.md`.
//! `--quick` trains one epoch from one seed.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use sequent::experiments::{ExampleOptions, Table, median_and_range, spread};
use sequent::plot::{Line, line_chart};
use sequent_models::classical::AutoregressiveMlpConfig;
use sequent_models::forecast::k_step_predictions;
use sequent_models::heads::{DirectForecasterConfig, SequenceForecaster, SequenceModelConfig};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent};
use sequent_train::data::covariates::{Covariate, CovariateEncoder, lead_rows};
use sequent_train::data::timeseries::{Missing, read_frame, split};
use sequent_train::learner::series::{WindowLoader, forecast_loaders, window_loader};
use sequent_train::learner::{self, FitOptions, Forecasting, LrSchedule, SeriesModel};

/// Forecast horizons in days.
const HORIZONS: [usize; 3] = [1, 7, 28];
/// Held-out days (the last two years).
const HELD_OUT: usize = 730;
/// The window every model reads.
const WINDOW: usize = 28;
/// Hidden width of the recurrent models.
const HIDDEN: usize = 32;
/// Batch size.
const BATCH: usize = 32;
/// Seeds of the full run; the table gives the median and the range.
const SEEDS: u64 = 3;

fn main() -> ExitCode {
    sequent::experiments::main("births_forecast", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("births_forecast");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/timeseries/us_births_1969_1988.csv");
    let date = ["year", "month", "date_of_month"].map(String::from);
    let frame = read_frame(
        &path,
        &["births"],
        &date.each_ref().map(String::as_str),
        Missing::Error,
    )
    .map_err(|e| e.to_string())?;
    let births = frame.values.clone();
    let train_len = births.len() - HELD_OUT;
    let parts = split(&births, train_len).map_err(|e| e.to_string())?;
    let calendar = [Covariate::Weekday, Covariate::Month, Covariate::UsHoliday];
    let encoder =
        CovariateEncoder::fit(&calendar, &date, &frame, train_len).map_err(|e| e.to_string())?;
    // One day past the series, so that its last day is a training target too.
    let covariates = encoder
        .encode(&frame, births.len() + 1)
        .map_err(|e| e.to_string())?;
    let seeds: Vec<u64> = (o.seed..o.seed + if o.quick { 1 } else { SEEDS }).collect();
    let mut data = Births {
        standardised: parts.train.iter().chain(&parts.valid).cloned().collect(),
        births,
        covariates,
        mean: parts.normalizer.mean[0],
        std: parts.normalizer.std[0],
        train_len,
        options: FitOptions {
            epochs: if o.quick { 1 } else { 30 },
            lr: 5e-3,
            clip: Some(1.0),
            seed: o.seed,
            patience: None,
            schedule: LrSchedule::Constant, // cosine, set per model from its batches
            devices: Vec::new(),
        },
        out: out.clone(),
    };
    let naive: Vec<f64> = (1..=HORIZONS[2])
        .map(|h| data.mae(h, &data.seasonal_naive(h)))
        .collect();
    // Per model: its name, its covariates, and per seed the MAE at every horizon 1..=28.
    let mut results: Vec<(&str, &str, Vec<Vec<f64>>)> = Vec::new();
    let d = &device;
    for &seed in &seeds {
        data.options.seed = seed;
        data.out = out.join(format!("seed-{seed}"));
        for (with, cov) in [("none", 0), ("weekday, month, US holiday", encoder.width())] {
            let tag = if cov == 0 { "" } else { "+calendar" };
            let mut record = |model: &'static str, forecasts: &[Vec<f32>]| {
                let errors = (1..=HORIZONS[2]).map(|h| data.mae(h, &forecasts[h - 1]));
                let errors = errors.collect();
                match results.iter_mut().find(|r| (r.0, r.1) == (model, with)) {
                    Some(r) => r.2.push(errors),
                    None => results.push((model, with, vec![errors])),
                }
            };
            d.seed(seed);
            let ar = AutoregressiveMlpConfig::new(WINDOW)
                .with_covariates(cov)
                .with_hidden(vec![HIDDEN])
                .init(d);
            record("ar", &data.recursive(&format!("ar{tag}"), ar)?);
            d.seed(seed);
            let lstm = data.forecaster(LstmConfig::new(1 + cov, HIDDEN).init(d), cov, d);
            record("lstm", &data.recursive(&format!("lstm{tag}"), lstm)?);
            d.seed(seed);
            let gru = data.forecaster(GruConfig::new(1 + cov, HIDDEN).init(d), cov, d);
            let recursive = data.recursive(&format!("gru{tag}"), gru)?;
            record("gru", &recursive);
            d.seed(seed);
            let direct = DirectForecasterConfig::new(1, WINDOW, HORIZONS[2])
                .with_covariates(cov)
                .init(GruConfig::new(1 + cov, HIDDEN).init(d), d);
            record(
                "gru, direct",
                &data.direct(&format!("gru-direct{tag}"), direct)?,
            );
            if cov > 0 && seed == o.seed {
                data.plot(&out.join("forecast.svg"), &recursive)?;
            }
        }
    }

    let mut columns = vec!["model".to_string(), "covariates".to_string()];
    for h in HORIZONS {
        columns.extend([format!("MAE h={h}"), format!("MAE / naive h={h}")]);
    }
    let mut table = Table::new(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    let mut r = vec!["seasonal naive (t - 7)".to_string(), String::new()];
    for h in HORIZONS {
        r.extend([format!("{:.1}", naive[h - 1]), "1.000".to_string()]);
    }
    table.push(r);
    let mut curves = vec![Line::new("seasonal naive", curve(&naive))];
    for (model, with, per_seed) in &results {
        let mut r = vec![model.to_string(), with.to_string()];
        for h in HORIZONS {
            let maes: Vec<f64> = per_seed.iter().map(|e| e[h - 1]).collect();
            let ratios: Vec<f64> = maes.iter().map(|m| m / naive[h - 1]).collect();
            r.extend([format!("{:.1}", spread(&maes).1), median_and_range(&ratios)]);
        }
        table.push(r);
        if model.starts_with("gru") {
            let median: Vec<f64> = (0..HORIZONS[2])
                .map(|k| spread(&per_seed.iter().map(|e| e[k]).collect::<Vec<_>>()).1)
                .collect();
            let name = format!("{model}, covariates: {with}");
            curves.push(Line::new(&name, curve(&median)));
        }
    }
    line_chart(
        &out.join("horizons.svg"),
        "US births: held-out MAE by horizon (median of the seeds)",
        "horizon (days)",
        "MAE (births a day)",
        &curves,
    )?;
    table.write(&out, "births_forecast")?;
    Ok(table)
}

/// `(h, MAE)` points of an error for every horizon.
fn curve(errors: &[f64]) -> Vec<(f64, f64)> {
    errors
        .iter()
        .enumerate()
        .map(|(k, &e)| ((k + 1) as f64, e))
        .collect()
}

/// The births in births a day and standardised, their calendar covariates, where the held-out
/// part starts, and how every model is trained.
struct Births {
    births: Vec<Vec<f32>>,
    standardised: Vec<Vec<f32>>,
    /// `[T + 1][C]`: the weekday and the month (one-hot) and the holiday indicator of every day
    /// and the next.
    covariates: Vec<Vec<f32>>,
    mean: f32,
    std: f32,
    train_len: usize,
    options: FitOptions,
    out: PathBuf,
}

impl Births {
    /// The first forecast origin: the first held-out day.
    fn first(&self) -> usize {
        self.train_len.max(WINDOW)
    }

    /// The number of origins: those whose 28-day-ahead target is in the series.
    fn origins(&self) -> usize {
        self.births.len() + 1 - HORIZONS[2] - self.first()
    }

    /// The seasonal-naive forecasts of `y[o + h - 1]` from every origin:
    /// `y[o + h - 1 - 7 ceil(h / 7)]`, the same weekday of the last week before the origin.
    fn seasonal_naive(&self, h: usize) -> Vec<f32> {
        let back = 7 * h.div_ceil(7);
        (0..self.origins())
            .map(|i| self.births[self.first() + i + h - 1 - back][0])
            .collect()
    }

    /// The MAE (births a day) of `forecasts[i]`, the h-step-ahead forecast of
    /// `y[first + i + h - 1]`.
    fn mae(&self, h: usize, forecasts: &[f32]) -> f64 {
        let first = self.first();
        let total: f64 = forecasts
            .iter()
            .enumerate()
            .map(|(i, &f)| (f as f64 - self.births[first + i + h - 1][0] as f64).abs())
            .sum();
        total / forecasts.len() as f64
    }

    /// A recurrent forecaster (the stack's last state, a linear head) over windows of 28 days.
    fn forecaster<C: CellKind>(
        &self,
        rnn: Recurrent<C>,
        covariates: usize,
        device: &Device,
    ) -> SequenceForecaster<C> {
        SequenceForecaster {
            model: SequenceModelConfig::new(1).init(rnn, device),
            window: WINDOW,
            covariates,
        }
    }

    /// The rows a model with `covariates` covariate columns reads.
    fn inputs(&self, covariates: usize) -> Vec<Vec<f32>> {
        if covariates == 0 {
            self.standardised.clone()
        } else {
            lead_rows(&self.standardised, &self.covariates)
        }
    }

    /// The series and (for a model that reads them) the covariates as tensors.
    fn tensors(&self, covariates: usize, device: &Device) -> (Tensor<2>, Option<Tensor<2>>) {
        let tensor = |rows: &[Vec<f32>]| {
            let width = rows[0].len();
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), width]), device)
        };
        let c = (covariates > 0).then(|| tensor(&self.covariates));
        (tensor(&self.standardised), c)
    }

    /// Trains `model` on the training days (mean squared error, Adam, batches of 32) in
    /// `out/name` from the loaders given.
    fn train<M: SeriesModel>(
        &self,
        name: &str,
        model: M,
        (train, valid): (WindowLoader, WindowLoader),
    ) -> Result<M, String> {
        let (dir, task) = (self.out.join(name), Forecasting::default());
        let options = FitOptions {
            schedule: LrSchedule::Cosine {
                iterations: train.num_items().div_ceil(BATCH),
            },
            ..self.options.clone()
        };
        let (model, _) = learner::train(model, task, train, valid, &dir, &options)?;
        Ok(model)
    }

    /// Per horizon `k = 1..=28`, standardised forecasts `[N, 1]` in births a day.
    fn in_births(&self, rolled: Vec<Tensor<2>>) -> Vec<Vec<f32>> {
        rolled
            .into_iter()
            .map(|t| {
                let values = t.into_data().try_to_vec::<f32>().unwrap_or_default();
                values.iter().map(|v| v * self.std + self.mean).collect()
            })
            .collect()
    }

    /// Trains `model` on windows of 29 days and forecasts recursively from every held-out
    /// origin: the forecasts (births a day) for every horizon 1..=28.
    fn recursive<M: SeriesModel>(&self, name: &str, model: M) -> Result<Vec<Vec<f32>>, String> {
        let (seed, c) = (self.options.seed, model.covariates());
        let loaders = forecast_loaders(&self.inputs(c), self.train_len, WINDOW, BATCH, seed, 0)?;
        let model = self.train(name, model, loaders)?;
        let (series, covariates) = self.tensors(c, &model.devices()[0]);
        let origins = self.first()..self.births.len() + 1;
        let (_, rolled) =
            k_step_predictions(&model, &series, covariates.as_ref(), origins, HORIZONS[2])
                .map_err(|e| e.to_string())?;
        Ok(self.in_births(rolled))
    }

    /// Trains the direct model on windows of 28 + 28 days whose targets lie in one part (the
    /// validation windows' targets are held-out days only) and forecasts every horizon at once
    /// from every held-out origin.
    fn direct<C: CellKind>(
        &self,
        name: &str,
        model: sequent_models::heads::DirectForecaster<C>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let (seed, c) = (self.options.seed, model.covariates);
        let inputs = self.inputs(c);
        let span = WINDOW + HORIZONS[2] - 1;
        let train = window_loader(&inputs[..self.train_len], span, BATCH, Some(seed), 0)?;
        let valid = window_loader(&inputs[self.train_len - WINDOW..], span, BATCH, None, 0)?;
        let model = self.train(name, model, (train, valid))?;
        let (series, covariates) = self.tensors(c, &model.devices()[0]);
        let origins = self.first()..self.births.len() + 1;
        let (_, all) = model
            .predictions(&series, covariates.as_ref(), origins)
            .map_err(|e| e.to_string())?;
        Ok(self.in_births(all))
    }

    /// The last 120 held-out days: the births and the 1- and 7-day-ahead forecasts.
    fn plot(&self, path: &std::path::Path, forecasts: &[Vec<f32>]) -> Result<(), String> {
        let first = self.first();
        let n = forecasts[0].len();
        let from = n.saturating_sub(120);
        let day = |i: usize| (first + i) as f64;
        let truth = (from..n).map(|i| (day(i), self.births[first + i][0] as f64));
        let mut lines = vec![Line::new("births", truth.collect())];
        for h in &HORIZONS[..2] {
            let points = (from..n).filter(|i| i + h - 1 < n);
            let points = points.map(|i| (day(i + h - 1), forecasts[h - 1][i] as f64));
            lines.push(Line::new(
                &format!("GRU+calendar {h}-day-ahead"),
                points.collect(),
            ));
        }
        let title = "US births: held-out days and GRU forecasts with calendar covariates";
        line_chart(path, title, "day index", "births", &lines)
    }
}
