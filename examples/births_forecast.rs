//! Daily US births 1969-1988, the last two years (730 days) held out. A seasonal-naive baseline
//! (the same weekday one week earlier), the autoregressive MLP, an LSTM and a GRU (windows of 28
//! days, standardised with the training part's statistics) are scored by the MAE and MAPE of
//! their h-step-ahead forecasts, h = 1, 7 and 28 days, from every held-out origin: the model
//! reads the 28 true days before the origin and feeds its own forecasts back `h - 1` times.
//!
//! `cargo run --release --example births_forecast -- [--device D] [--seed S] [--quick] [--out DIR]`
//! writes `OUT/births_forecast.{md,csv}` and `OUT/forecast.svg` (OUT defaults to
//! `runs/examples/births_forecast`); the full run's table is in `docs/results.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{Device, Tensor, TensorData};
use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::classical::AutoregressiveMlpConfig;
use sequent_models::forecast::k_step_predictions;
use sequent_models::heads::{SequenceForecaster, SequenceModelConfig};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent};
use sequent_train::data::timeseries::{read_csv, split};
use sequent_train::learner::series::forecast_loaders;
use sequent_train::learner::{self, FitOptions, Forecasting, LrSchedule, SeriesModel};

/// Forecast horizons in days.
const HORIZONS: [usize; 3] = [1, 7, 28];
/// Held-out days (the last two years).
const HELD_OUT: usize = 730;
/// The window every model reads.
const WINDOW: usize = 28;

fn main() -> ExitCode {
    sequent::experiments::main("births_forecast", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("births_forecast");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/timeseries/us_births_1969_1988.csv");
    let births = read_csv(&path, &["births"]).map_err(|e| e.to_string())?;
    let train_len = births.len() - HELD_OUT;
    let parts = split(&births, train_len).map_err(|e| e.to_string())?;
    let data = Births {
        standardised: parts.train.iter().chain(&parts.valid).cloned().collect(),
        births,
        mean: parts.normalizer.mean[0],
        std: parts.normalizer.std[0],
        train_len,
        options: FitOptions {
            epochs: if o.quick { 1 } else { 10 },
            lr: 5e-3,
            clip: Some(1.0),
            seed: o.seed,
            patience: None,
            schedule: LrSchedule::Constant,
            devices: Vec::new(),
        },
        out: out.clone(),
    };

    let mut columns = vec!["model".to_string()];
    for h in HORIZONS {
        columns.extend([format!("MAE h={h}"), format!("MAPE % h={h}")]);
    }
    let mut table = Table::new(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    let first = data.train_len.max(WINDOW);
    let count = data.births.len() - HORIZONS[2] - first;
    let naive = HORIZONS.map(|h| data.errors(h, first, &data.seasonal_naive(h, first, count)));
    table.push(row("seasonal naive (t - 7)", &naive));
    let d = &device;
    d.seed(o.seed);
    let ar = AutoregressiveMlpConfig::new(WINDOW)
        .with_features(1)
        .with_hidden(vec![32]);
    let ar = ar.init(d);
    table.push(row("ar", &data.forecasts("ar", ar)?.0));
    d.seed(o.seed);
    table.push(row(
        "lstm",
        &data.recurrent("lstm", LstmConfig::new(1, 32).init(d), d)?.0,
    ));
    d.seed(o.seed);
    let (errors, gru) = data.recurrent("gru", GruConfig::new(1, 32).init(d), d)?;
    table.push(row("gru", &errors));
    data.plot(first, &gru)?;
    table.write(&out, "births_forecast")?;
    Ok(table)
}

/// A model's (MAE, MAPE %) at each horizon, and its forecasts (births a day) at each horizon.
type Forecasts = ([(f64, f64); 3], Vec<Vec<f32>>);

/// A table row: the MAE (births a day) and MAPE of each horizon.
fn row(name: &str, errors: &[(f64, f64)]) -> Vec<String> {
    let mut r = vec![name.to_string()];
    for (mae, mape) in errors {
        r.extend([format!("{mae:.1}"), fmt(*mape)]);
    }
    r
}

/// The series in births a day and standardised, where the held-out part starts, and how every
/// model is trained.
struct Births {
    births: Vec<Vec<f32>>,
    standardised: Vec<Vec<f32>>,
    mean: f32,
    std: f32,
    train_len: usize,
    options: FitOptions,
    out: PathBuf,
}

impl Births {
    /// The seasonal-naive forecasts of `y[o + h - 1]` from origins `first..first + count`:
    /// `y[o + h - 1 - 7 ceil(h / 7)]`, the same weekday of the last week before the origin.
    fn seasonal_naive(&self, h: usize, first: usize, count: usize) -> Vec<f32> {
        let back = 7 * h.div_ceil(7);
        (0..count)
            .map(|i| self.births[first + i + h - 1 - back][0])
            .collect()
    }

    /// MAE and MAPE (%) of `forecasts[i]`, the h-step-ahead forecast of `y[first + i + h - 1]`.
    fn errors(&self, h: usize, first: usize, forecasts: &[f32]) -> (f64, f64) {
        let (mut ae, mut ape) = (0.0, 0.0);
        for (i, &f) in forecasts.iter().enumerate() {
            let y = self.births[first + i + h - 1][0] as f64;
            ae += (f as f64 - y).abs();
            ape += ((f as f64 - y) / y).abs();
        }
        let n = forecasts.len() as f64;
        (ae / n, 100.0 * ape / n)
    }

    /// A recurrent forecaster (the stack's last state, a linear head) over windows of 28 days.
    fn recurrent<C: CellKind>(
        &self,
        name: &str,
        rnn: Recurrent<C>,
        device: &Device,
    ) -> Result<Forecasts, String> {
        let model = SequenceForecaster {
            model: SequenceModelConfig::new(1).init(rnn, device),
            window: WINDOW,
        };
        self.forecasts(name, model)
    }

    /// Trains `model` on the training days (mean squared error of the next day, Adam, batches of
    /// 32) in `out/name`, then forecasts from every held-out origin whose 28-day target is in the
    /// series. Returns the errors per horizon and the forecasts (births a day) per horizon.
    fn forecasts<M: SeriesModel>(&self, name: &str, model: M) -> Result<Forecasts, String> {
        let seed = self.options.seed;
        let (train, valid) =
            forecast_loaders(&self.standardised, self.train_len, WINDOW, 32, seed, 0)?;
        let (dir, task) = (self.out.join(name), Forecasting::default());
        let (model, _) = learner::train(model, task, train, valid, &dir, &self.options)?;
        let flat: Vec<f32> = self.standardised.iter().flatten().copied().collect();
        let series = Tensor::<2>::from_data(
            TensorData::new(flat, [self.standardised.len(), 1]),
            &model.devices()[0],
        );
        let origins = self.train_len..self.standardised.len();
        let (first, rolled) =
            k_step_predictions(&model, &series, origins, HORIZONS[2]).map_err(|e| e.to_string())?;
        let forecasts: Vec<Vec<f32>> = HORIZONS
            .iter()
            .map(|&h| {
                let values = rolled[h - 1].clone().into_data().try_to_vec::<f32>();
                let values = values.unwrap_or_default();
                values.iter().map(|v| v * self.std + self.mean).collect()
            })
            .collect();
        let errors = [0, 1, 2].map(|k| self.errors(HORIZONS[k], first, &forecasts[k]));
        Ok((errors, forecasts))
    }

    /// The last 120 held-out days: the births and the 1- and 7-day-ahead forecasts.
    fn plot(&self, first: usize, forecasts: &[Vec<f32>]) -> Result<(), String> {
        let n = forecasts[0].len();
        let from = n.saturating_sub(120);
        let day = |i: usize| (first + i) as f64;
        let truth = (from..n).map(|i| (day(i), self.births[first + i][0] as f64));
        let mut lines = vec![Line::new("births", truth.collect())];
        for (h, f) in HORIZONS.iter().zip(forecasts).take(2) {
            let points = (from..n).filter(|i| i + h - 1 < n);
            let points = points.map(|i| (day(i + h - 1), f[i] as f64));
            lines.push(Line::new(&format!("GRU {h}-day-ahead"), points.collect()));
        }
        let title = "US births: held-out days and GRU forecasts";
        line_chart(
            &self.out.join("forecast.svg"),
            title,
            "day index",
            "births",
            &lines,
        )
    }
}
