//! Forecasting with any model that predicts the next value from a window of past values:
//! one-step prediction, free-running prediction and k-step-ahead evaluation.

use burn::tensor::Tensor;

use crate::error::{Result, SequentError};

/// A model that predicts `x_t` from the window `[x_{t-tau}, ..., x_{t-1}]`.
pub trait Forecaster {
    /// The window length `tau` the model reads.
    fn window(&self) -> usize;

    /// Predicts `x_t` `[B, F]` from windows `[B, tau, F]`.
    fn predict_next(&self, window: Tensor<3>) -> Tensor<2>;
}

/// The `N = T - tau + 1` windows `series[t - tau .. t]` for `t = tau ..= T`, `[N, tau, F]`.
fn windows(series: &Tensor<2>, tau: usize) -> Result<Tensor<3>> {
    let [steps, _] = series.dims();
    if tau == 0 || steps < tau {
        return Err(SequentError::SeriesTooShort {
            steps,
            needed: tau.max(1),
        });
    }
    let all = (0..=steps - tau)
        .map(|s| series.clone().narrow(0, s, tau))
        .collect();
    Ok(Tensor::stack(all, 0))
}

/// One-step-ahead predictions: `x_hat_t = f(x_{t-tau}..x_{t-1})` from the *true* past, for
/// `t = tau .. T - 1`; returns `[T - tau, F]` (row `i` predicts `series[tau + i]`).
pub fn one_step<M: Forecaster>(model: &M, series: &Tensor<2>) -> Result<Tensor<2>> {
    let tau = model.window();
    let [steps, _] = series.dims();
    if steps <= tau {
        return Err(SequentError::SeriesTooShort {
            steps,
            needed: tau + 1,
        });
    }
    let w = windows(&series.clone().narrow(0, 0, steps - 1), tau)?;
    Ok(model.predict_next(w))
}

/// Free-running prediction: starts from the last `tau` values of `history` `[T, F]` and feeds each
/// prediction back as input, `steps` times; returns `[steps, F]`.
pub fn free_running<M: Forecaster>(
    model: &M,
    history: &Tensor<2>,
    steps: usize,
) -> Result<Tensor<2>> {
    let tau = model.window();
    let [len, _] = history.dims();
    if len < tau {
        return Err(SequentError::SeriesTooShort {
            steps: len,
            needed: tau,
        });
    }
    if steps == 0 {
        return Err(SequentError::InvalidConfig(
            "free-running prediction needs at least 1 step".into(),
        ));
    }
    let start = history.clone().narrow(0, len - tau, tau).unsqueeze_dim(0);
    let preds = roll(model, start, steps);
    Ok(Tensor::cat(preds, 0))
}

/// Feeds predictions back into windows `[N, tau, F]` for `steps` steps; returns one `[N, F]` per step.
fn roll<M: Forecaster>(model: &M, mut window: Tensor<3>, steps: usize) -> Vec<Tensor<2>> {
    let tau = model.window();
    let mut preds = Vec::with_capacity(steps);
    for _ in 0..steps {
        let next = model.predict_next(window.clone());
        let newest = next.clone().unsqueeze_dim(1);
        window = if tau == 1 {
            newest
        } else {
            Tensor::cat(vec![window.narrow(1, 1, tau - 1), newest], 1)
        };
        preds.push(next);
    }
    preds
}

/// k-step-ahead predictions: from every origin `o` in `origins` (an index into `series`, the first
/// predicted step, `o >= tau`, clipped so that `o + k_max - 1 < T`) the model reads the true
/// `series[o - tau .. o]` and feeds its own predictions back for `k_max` steps. Returns the first
/// origin and, for `k = 1..=k_max`, the predictions `[N, F]` whose row `i` predicts
/// `series[first + i + k - 1]`.
pub fn k_step_predictions<M: Forecaster>(
    model: &M,
    series: &Tensor<2>,
    origins: std::ops::Range<usize>,
    k_max: usize,
) -> Result<(usize, Vec<Tensor<2>>)> {
    let tau = model.window();
    let [steps, _] = series.dims();
    if k_max == 0 {
        return Err(SequentError::InvalidConfig(
            "horizons must be at least 1, got 0".into(),
        ));
    }
    let first = origins.start.max(tau);
    let last = origins.end.min(steps + 1).saturating_sub(k_max); // exclusive: o + k_max - 1 < steps
    if first >= last {
        return Err(SequentError::SeriesTooShort {
            steps,
            needed: first + k_max,
        });
    }
    let n = last - first;
    let start = windows(&series.clone().narrow(0, first - tau, n + tau - 1), tau)?;
    Ok((first, roll(model, start, k_max)))
}

/// k-step-ahead evaluation: the predictions of [`k_step_predictions`] compared with the truth
/// `series[o + k - 1]`. Returns the mean squared error for each horizon in `horizons`, averaged
/// over every origin whose target (for the largest horizon) lies inside the series and over the
/// features.
pub fn k_step_mse<M: Forecaster>(
    model: &M,
    series: &Tensor<2>,
    origins: std::ops::Range<usize>,
    horizons: &[usize],
) -> Result<Vec<f64>> {
    if horizons.is_empty() || horizons.contains(&0) {
        return Err(SequentError::InvalidConfig(format!(
            "horizons must be at least 1, got {horizons:?}"
        )));
    }
    let k_max = *horizons.iter().max().expect("non-empty");
    let (first, preds) = k_step_predictions(model, series, origins, k_max)?;
    let n = preds[0].dims()[0];
    horizons
        .iter()
        .map(|&k| {
            let truth = series.clone().narrow(0, first + k - 1, n);
            let err = (preds[k - 1].clone() - truth).powi_scalar(2).mean();
            Ok(err.into_scalar::<f64>())
        })
        .collect()
}
