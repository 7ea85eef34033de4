//! `births_forecast`: daily US births 1969-1988, the last two years (730 days) held out.
//! A seasonal-naive baseline (the value one week earlier), the naive AR model, LSTM and GRU are
//! scored by MAE and MAPE of their h-step-ahead forecasts, h = 1, 7 and 28 days, from every
//! held-out origin.

use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::experiments::{ExampleOptions, Table, fmt};
use crate::plot::{Line, line_chart};
use crate::series::{self, SeriesRun, horizon_error};

/// Forecast horizons in days.
const HORIZONS: [usize; 3] = [1, 7, 28];

/// Held-out days (the last two years).
const HELD_OUT: usize = 730;

/// The seasonal-naive forecast of `y[o + h - 1]` from origin `o`: `y[o + h - 1 - 7 ceil(h / 7)]`,
/// the same weekday of the last week before the origin.
pub fn seasonal_naive(series: &[Vec<f32>], first: usize, count: usize, h: usize) -> Vec<Vec<f32>> {
    let back = 7 * h.div_ceil(7);
    (0..count)
        .map(|i| series[first + i + h - 1 - back].clone())
        .collect()
}

/// Trains AR, LSTM and GRU on the births series; returns MAE and MAPE per horizon for them and
/// the seasonal-naive baseline.
pub fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("births_forecast");
    let device = crate::device::parse(&o.device)?;
    let source = DataSource::resolve("births")?;
    let mut columns = vec!["model".to_string()];
    for h in HORIZONS {
        columns.push(format!("MAE h={h}"));
        columns.push(format!("MAPE % h={h}"));
    }
    let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut table = Table::new(&refs);
    let row = |name: &str, errors: &[series::HorizonError]| {
        let mut r = vec![name.to_string()];
        for e in errors {
            r.push(format!("{:.1}", e.mae));
            r.push(fmt(e.mape));
        }
        r
    };
    let mut naive_done = false;
    for (model, window, hidden) in [("ar", 28, 32), ("lstm", 28, 32), ("gru", 28, 32)] {
        let cfg = RunConfig {
            model: model.into(),
            data: "births".into(),
            steps: window,
            hidden,
            layers: 1,
            epochs: if o.quick { 1 } else { 10 },
            batch: 32,
            lr: 5e-3,
            clip: 1.0,
            valid_fraction: HELD_OUT as f64 / 7305.0,
            seed: o.seed,
            ..RunConfig::default()
        };
        let dir = out.join(model);
        series::train(&cfg, &source, &device, &dir, false)?;
        let run = SeriesRun {
            cfg,
            dir,
            source: source.clone(),
        };
        let h = run.horizons(&HORIZONS, &device)?;
        let data = series::load(&run.cfg, &run.source)?;
        if !naive_done {
            let count = h.predictions[0].len();
            let errors: Vec<_> = HORIZONS
                .iter()
                .map(|&k| {
                    let p = seasonal_naive(&data.rows, h.first, count, k);
                    horizon_error(k, h.first, &p, &data.rows)
                })
                .collect();
            table.push(row("seasonal naive (t - 7)", &errors));
            naive_done = true;
        }
        table.push(row(model, &h.errors));
        if model == "gru" {
            plot(&out, &data.rows, &h)?;
        }
    }
    table.write(&out, "births_forecast")?;
    Ok(table)
}

/// The last 120 held-out days: truth and the GRU's 1- and 7-day-ahead forecasts.
fn plot(
    out: &std::path::Path,
    rows: &[Vec<f32>],
    h: &series::HorizonForecasts,
) -> Result<(), String> {
    let n = h.predictions[0].len();
    let from = n.saturating_sub(120);
    let mut lines = vec![Line::new(
        "births",
        (from..n)
            .map(|i| ((h.first + i) as f64, rows[h.first + i][0] as f64))
            .collect(),
    )];
    for (k, preds) in HORIZONS.iter().zip(&h.predictions).take(2) {
        lines.push(Line::new(
            &format!("GRU {k}-day-ahead"),
            (from..n)
                .filter(|i| i + k - 1 < n)
                .map(|i| ((h.first + i + k - 1) as f64, preds[i][0] as f64))
                .collect(),
        ));
    }
    line_chart(
        &out.join("forecast.svg"),
        "US births: held-out days and GRU forecasts",
        "day index",
        "births",
        &lines,
    )
}
