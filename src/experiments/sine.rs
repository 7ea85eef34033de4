//! `sine_forecast`: d2l's sine experiment for every forecasting model of the lecture.
//!
//! Data: `x_t = sin(0.01 t) + N(0, 0.2^2)`, `t = 1..1000`, the first 600 for training. The noise
//! floor of one-step MSE is the noise variance `0.2^2 = 0.04`. k-step-ahead forecasts feed the
//! model's own predictions back `k - 1` times, so their error grows with `k`.

use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::experiments::{ExampleOptions, Table, fmt};
use crate::plot::{Line, line_chart};
use crate::series::{self, HORIZONS, SeriesRun};

/// Noise variance of d2l's sine data.
pub const NOISE_FLOOR: f64 = 0.2 * 0.2;

/// Trains AR (tau 4), neural Markov (tau 1), latent AR, RNN, LSTM and GRU (windows of 16) and
/// returns one-step and k-step MSE on the last 400 steps.
pub fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("sine_forecast");
    let device = crate::device::parse(&o.device)?;
    let models: &[(&str, usize, usize)] = &[
        ("ar", 4, 10),
        ("markov", 1, 10),
        ("latent", 16, 16),
        ("rnn", 16, 16),
        ("lstm", 16, 16),
        ("gru", 16, 16),
    ];
    let mut columns = vec!["model", "window", "one-step MSE", "MSE / noise floor"];
    let ks: Vec<String> = HORIZONS.iter().map(|k| format!("k={k}")).collect();
    columns.extend(ks.iter().map(String::as_str));
    let mut table = Table::new(&columns);
    for &(model, window, hidden) in models {
        let cfg = RunConfig {
            model: model.into(),
            data: "sine".into(),
            steps: window,
            hidden,
            layers: 1,
            epochs: if o.quick { 2 } else { 10 },
            batch: 16,
            lr: 0.01,
            clip: 1.0,
            valid_fraction: 0.4,
            seed: o.seed,
            ..RunConfig::default()
        };
        let dir = out.join(model);
        let scores = series::train(&cfg, &DataSource::Sine, &device, &dir, false)?;
        let run = SeriesRun {
            cfg,
            dir,
            source: DataSource::Sine,
        };
        let h = run.horizons(&HORIZONS, &device)?;
        let mut row = vec![
            model.to_string(),
            window.to_string(),
            fmt(scores.one_step_mse),
            format!("{:.2}", scores.one_step_mse / NOISE_FLOOR),
        ];
        row.extend(h.errors.iter().map(|e| fmt(e.mse)));
        table.push(row);
        if model == "ar" {
            plot_k_steps(&out, &run, &h)?;
        }
    }
    table.write(&out, "sine_forecast")?;
    Ok(table)
}

/// d2l's figure: k-step-ahead predictions of the AR model against the data.
fn plot_k_steps(
    out: &std::path::Path,
    run: &SeriesRun,
    h: &series::HorizonForecasts,
) -> Result<(), String> {
    let data = series::load(&run.cfg, &run.source)?;
    let mut lines = vec![Line::new(
        "data",
        data.rows
            .iter()
            .enumerate()
            .skip(h.first)
            .map(|(t, r)| (t as f64, r[0] as f64))
            .collect(),
    )];
    for (k, preds) in HORIZONS.iter().zip(&h.predictions) {
        lines.push(Line::new(
            &format!("{k}-step"),
            preds
                .iter()
                .enumerate()
                .map(|(i, r)| ((h.first + i + k - 1) as f64, r[0] as f64))
                .collect(),
        ));
    }
    line_chart(
        &out.join("k_step.svg"),
        "AR (tau = 4): k-step-ahead predictions on the held-out part",
        "t",
        "x",
        &lines,
    )
}
