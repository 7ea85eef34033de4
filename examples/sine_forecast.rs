//! d2l's sine experiment for every forecasting model of the lecture.
//!
//! Data: `x_t = sin(0.01 t) + N(0, 0.2^2)`, `t = 1..1000`, the first 600 steps for training,
//! standardised with their mean and deviation. Models: the autoregressive MLP (window tau = 4),
//! the neural first-order Markov model (tau = 1), the latent autoregressive model and the RNN,
//! LSTM and GRU forecasters (windows of 16). The noise floor of one-step MSE is the noise
//! variance `0.2^2 = 0.04`. k-step-ahead forecasts feed the model's own predictions back `k - 1`
//! times, so their error grows with `k`; the last row, a direct GRU (window 16, a head that
//! predicts all 64 steps at once), feeds nothing back.
//!
//! `cargo run --release --example sine_forecast -- [--device D] [--seed S] [--quick] [--out DIR]`
//! prints the table and writes it to `OUT/sine_forecast.{md,csv}` with the AR model's k-step
//! predictions as `OUT/k_step.svg` (OUT defaults to `runs/examples/sine_forecast`); the full
//! run's table is in `docs/results.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use sequent::experiments::{ExampleOptions, Table, fmt};
use sequent::plot::{Line, line_chart};
use sequent_models::classical::{AutoregressiveMlpConfig, LatentAutoregressiveConfig};
use sequent_models::forecast::{Forecaster, k_step_mse, k_step_predictions, one_step};
use sequent_models::heads::{
    DirectForecaster, DirectForecasterConfig, SequenceForecaster, SequenceModelConfig,
};
use sequent_models::recurrent::{CellKind, GruConfig, LstmConfig, Recurrent, RnnConfig};
use sequent_train::data::synthetic::noisy_sine;
use sequent_train::data::timeseries::split;
use sequent_train::learner::series::{forecast_loaders, window_loader};
use sequent_train::learner::{self, FitOptions, Forecasting, LrSchedule, SeriesModel};

/// The noise variance of d2l's sine data.
const NOISE_FLOOR: f64 = 0.2 * 0.2;
/// The horizons of the k-step-ahead evaluation.
const HORIZONS: [usize; 4] = [1, 4, 16, 64];
/// Steps of the series used for training; the other 400 are held out.
const TRAIN: usize = 600;

fn main() -> ExitCode {
    sequent::experiments::main("sine_forecast", run)
}

fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("sine_forecast");
    let device = sequent::device::parse(&o.device)?.autodiff();
    let series: Vec<Vec<f32>> = noisy_sine(1000, o.seed)
        .into_iter()
        .map(|x| vec![x])
        .collect();
    let parts = split(&series, TRAIN).map_err(|e| e.to_string())?;
    let sine = Sine {
        values: parts.train.iter().chain(&parts.valid).cloned().collect(),
        mean: parts.normalizer.mean[0],
        std: parts.normalizer.std[0],
        options: FitOptions {
            epochs: if o.quick { 2 } else { 10 },
            lr: 0.01,
            clip: Some(1.0),
            seed: o.seed,
            patience: None,
            schedule: LrSchedule::Constant,
            devices: Vec::new(),
        },
        out: out.clone(),
    };

    let mut columns = vec!["model", "window", "one-step MSE", "MSE / noise floor"];
    let ks: Vec<String> = HORIZONS.iter().map(|k| format!("k={k}")).collect();
    columns.extend(ks.iter().map(String::as_str));
    let mut table = Table::new(&columns);
    let (d, seed) = (&device, || device.seed(o.seed));
    seed();
    let ar = AutoregressiveMlpConfig::new(4)
        .with_features(1)
        .with_hidden(vec![10])
        .init(d);
    let ar = sine.fit("ar", ar)?;
    table.push(sine.row("ar", &ar)?);
    sine.plot_k_steps(&ar)?;
    seed();
    let markov = AutoregressiveMlpConfig::markov(1)
        .with_hidden(vec![10])
        .init(d);
    table.push(sine.row("markov", &sine.fit("markov", markov)?)?);
    seed();
    let latent = LatentAutoregressiveConfig::new(16).init(GruConfig::new(1, 16).init(d), d);
    table.push(sine.row("latent", &sine.fit("latent", latent)?)?);
    seed();
    table.push(sine.recurrent("rnn", RnnConfig::new(1, 16).init(d), d)?);
    seed();
    table.push(sine.recurrent("lstm", LstmConfig::new(1, 16).init(d), d)?);
    seed();
    table.push(sine.recurrent("gru", GruConfig::new(1, 16).init(d), d)?);
    seed();
    let direct = DirectForecasterConfig::new(1, 16, *HORIZONS.last().expect("horizons"))
        .init(GruConfig::new(1, 16).init(d), d);
    table.push(sine.direct("gru, direct", direct)?);
    table.write(&out, "sine_forecast")?;
    Ok(table)
}

/// The standardised series, its training statistics, and how every model is trained.
struct Sine {
    values: Vec<Vec<f32>>,
    mean: f32,
    std: f32,
    options: FitOptions,
    out: PathBuf,
}

impl Sine {
    /// Trains `model` on the windows of the training part (mean squared error of the next value,
    /// Adam, batches of 16), validating on the held-out steps, in `out/name`.
    fn fit<M: SeriesModel>(&self, name: &str, model: M) -> Result<M, String> {
        let (seed, tau) = (self.options.seed, model.window());
        let (train, valid) = forecast_loaders(&self.values, TRAIN, tau, 16, seed, 0)?;
        let dir = self.out.join(name);
        let task = Forecasting::default();
        Ok(learner::train(model, task, train, valid, &dir, &self.options)?.0)
    }

    /// A recurrent forecaster (the stack's last state, a linear head) over windows of 16.
    fn recurrent<C: CellKind>(
        &self,
        name: &str,
        rnn: Recurrent<C>,
        device: &Device,
    ) -> Result<Vec<String>, String> {
        let model = SequenceForecaster {
            model: SequenceModelConfig::new(1).init(rnn, device),
            window: 16,
            covariates: 0,
        };
        self.row(name, &self.fit(name, model)?)
    }

    /// The table's row of a trained model: one-step MSE on the held-out steps and k-step MSE
    /// (every horizon from the same held-out origins, those whose 64-step target is in the
    /// series), in the data's units (MSE scales with the variance).
    fn row<M: SeriesModel>(&self, name: &str, model: &M) -> Result<Vec<String>, String> {
        let all = self.tensor(model);
        let k_mse = k_step_mse(model, &all, None, TRAIN..self.values.len(), &HORIZONS);
        self.row_with(name, model, &k_mse.map_err(|e| e.to_string())?)
    }

    /// The direct GRU's row: its first output is its one-step forecast, its k-th the k-step one
    /// (from the same origins as the recursive models').
    fn direct<C: CellKind>(
        &self,
        name: &str,
        model: DirectForecaster<C>,
    ) -> Result<Vec<String>, String> {
        let (seed, tau, h) = (self.options.seed, model.window, model.horizon);
        let span = tau + h - 1;
        let train = window_loader(&self.values[..TRAIN], span, 16, Some(seed), 0)?;
        let valid = window_loader(&self.values[TRAIN - tau..], span, 16, None, 0)?;
        let dir = self.out.join(name.replace(", ", "-"));
        let model = learner::train(
            model,
            Forecasting::default(),
            train,
            valid,
            &dir,
            &self.options,
        )?
        .0;
        let all = self.tensor(&model);
        let (first, per_step) = model
            .predictions(&all, None, TRAIN..self.values.len())
            .map_err(|e| e.to_string())?;
        let n = per_step[0].dims()[0];
        let k_mse: Vec<f64> = HORIZONS
            .iter()
            .map(|&k| {
                let truth = all.clone().narrow(0, first + k - 1, n);
                let err = (per_step[k - 1].clone() - truth).powi_scalar(2).mean();
                err.into_scalar::<f64>()
            })
            .collect();
        self.row_with(name, &model, &k_mse)
    }

    /// A row from `model`'s one-step MSE on the held-out steps and the k-step MSE given
    /// (standardised; the row is in the data's units).
    fn row_with<M: Forecaster + Module>(
        &self,
        name: &str,
        model: &M,
        k_mse: &[f64],
    ) -> Result<Vec<String>, String> {
        let tau = model.window();
        let all = self.tensor(model);
        let held_out = self.values.len() - TRAIN;
        let context = all.clone().narrow(0, TRAIN - tau, held_out + tau);
        let predicted = one_step(model, &context, None).map_err(|e| e.to_string())?;
        let truth = all.clone().narrow(0, TRAIN, held_out);
        let variance = (self.std as f64).powi(2);
        let mse = (predicted - truth)
            .powi_scalar(2)
            .mean()
            .into_scalar::<f64>()
            * variance;
        let mut row = vec![
            name.to_string(),
            tau.to_string(),
            fmt(mse),
            format!("{:.2}", mse / NOISE_FLOOR),
        ];
        row.extend(k_mse.iter().map(|m| fmt(m * variance)));
        Ok(row)
    }

    /// d2l's figure: the k-step-ahead predictions of `model` against the data, held-out part.
    fn plot_k_steps<M: SeriesModel>(&self, model: &M) -> Result<(), String> {
        let k_max = *HORIZONS.last().expect("horizons");
        let (first, rolled) = k_step_predictions(
            model,
            &self.tensor(model),
            None,
            TRAIN..self.values.len(),
            k_max,
        )
        .map_err(|e| e.to_string())?;
        let unit = |v: f32| (v * self.std + self.mean) as f64;
        let data = self.values.iter().enumerate().skip(first);
        let mut lines = vec![Line::new(
            "data",
            data.map(|(t, r)| (t as f64, unit(r[0]))).collect(),
        )];
        for k in HORIZONS {
            let values = rolled[k - 1]
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let points = values.iter().enumerate();
            let at = |i: usize| (first + i + k - 1) as f64;
            lines.push(Line::new(
                &format!("{k}-step"),
                points.map(|(i, &v)| (at(i), unit(v))).collect(),
            ));
        }
        line_chart(
            &self.out.join("k_step.svg"),
            "AR (tau = 4): k-step-ahead predictions on the held-out part",
            "t",
            "x",
            &lines,
        )
    }

    /// The whole standardised series as a `[T, 1]` tensor on `model`'s device.
    fn tensor<M: Module>(&self, model: &M) -> Tensor<2> {
        let flat: Vec<f32> = self.values.iter().flatten().copied().collect();
        let device = model.devices()[0].clone();
        Tensor::from_data(TensorData::new(flat, [self.values.len(), 1]), &device)
    }
}
