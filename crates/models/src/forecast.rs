//! Forecasting with any model that predicts the next value from a window of past values:
//! one-step prediction, free-running prediction and k-step-ahead evaluation, with or without
//! known-future covariates.
//!
//! # Covariates
//!
//! A covariate is a column known in advance for every step, the future included (day of week,
//! a holiday indicator, a planned price). The functions here take the series `x` (`[T, F]`) and,
//! for a model that reads `C` covariates, the covariates `c` aligned with it (`[T', C]`, row `s`
//! holds `c_s`, with `T' >= T` rows: those past the series are the known future). A model reads
//! rows `[x_s, c_{s+1}]`: each row carries the covariates of the step after it, so the window
//! before step `t` ends with the covariates of the step it predicts, as in DeepAR's inputs.

use burn::tensor::Tensor;

use crate::error::{Result, SequentError};

/// A model that predicts `x_t` from the window `[x_{t-tau}, ..., x_{t-1}]`, each row followed
/// by the covariates of the next step when the model reads any (see the module's documentation).
pub trait Forecaster {
    /// The window length `tau` the model reads.
    fn window(&self) -> usize;

    /// The number `C` of covariate columns after the `F` values of each row the model reads.
    fn covariates(&self) -> usize {
        0
    }

    /// Predicts `x_t` `[B, F]` from windows `[B, tau, F + C]` whose row `i` holds
    /// `[x_{t-tau+i}, c_{t-tau+i+1}]`.
    fn predict_next(&self, window: Tensor<3>) -> Tensor<2>;
}

/// The `N = T - tau + 1` windows `series[t - tau .. t]` for `t = tau ..= T`, `[N, tau, F]`.
pub(crate) fn windows(series: &Tensor<2>, tau: usize) -> Result<Tensor<3>> {
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

/// Checks that `covariates` fit a model that reads `expected` and reach step `needed - 1`.
pub(crate) fn check_covariates(
    expected: usize,
    covariates: Option<&Tensor<2>>,
    needed: usize,
) -> Result<()> {
    let [known, got] = covariates.map_or([usize::MAX, 0], Tensor::dims);
    if got != expected {
        return Err(SequentError::CovariateWidth { expected, got });
    }
    if known < needed {
        return Err(SequentError::CovariatesEnd { known, needed });
    }
    Ok(())
}

/// The rows the model reads for steps `from..to` of `series`: `[x_s, c_{s+1}]`, or `x_s`
/// without covariates.
pub(crate) fn input_rows(
    series: &Tensor<2>,
    covariates: Option<&Tensor<2>>,
    from: usize,
    to: usize,
) -> Tensor<2> {
    let x = series.clone().narrow(0, from, to - from);
    match covariates {
        None => x,
        Some(c) => Tensor::cat(vec![x, c.clone().narrow(0, from + 1, to - from)], 1),
    }
}

/// One-step-ahead predictions: `x_hat_t = f(x_{t-tau}..x_{t-1})` from the *true* past, for
/// `t = tau .. T - 1`; returns `[T - tau, F]` (row `i` predicts `series[tau + i]`).
/// `covariates` (`[T' >= T, C]`) for a model that reads them, else `None`.
pub fn one_step<M: Forecaster>(
    model: &M,
    series: &Tensor<2>,
    covariates: Option<&Tensor<2>>,
) -> Result<Tensor<2>> {
    let tau = model.window();
    let [steps, _] = series.dims();
    if steps <= tau {
        return Err(SequentError::SeriesTooShort {
            steps,
            needed: tau + 1,
        });
    }
    check_covariates(model.covariates(), covariates, steps)?;
    let w = windows(&input_rows(series, covariates, 0, steps - 1), tau)?;
    Ok(model.predict_next(w))
}

/// Free-running prediction: starts from the last `tau` values of `history` `[T, F]` and feeds each
/// prediction back as input, `steps` times; returns `[steps, F]`. A model with covariates needs
/// them up to the last forecast step: `covariates` `[T' >= T + steps, C]`, aligned with
/// `history`.
pub fn free_running<M: Forecaster>(
    model: &M,
    history: &Tensor<2>,
    covariates: Option<&Tensor<2>>,
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
    check_covariates(model.covariates(), covariates, len + steps)?;
    let start = input_rows(history, covariates, len - tau, len).unsqueeze_dim(0);
    let next = covariates.map(|c| (c, len));
    let preds = roll(model, start, steps, next);
    Ok(Tensor::cat(preds, 0))
}

/// Feeds predictions back into windows `[N, tau, F + C]` for `steps` steps; returns one `[N, F]`
/// per step. With covariates `(c, base)` the window of origin `i` is that of step `base + i`, so
/// the row fed back after step `j` carries `c[base + i + j + 1]`.
fn roll<M: Forecaster>(
    model: &M,
    mut window: Tensor<3>,
    steps: usize,
    covariates: Option<(&Tensor<2>, usize)>,
) -> Vec<Tensor<2>> {
    let tau = model.window();
    let n = window.dims()[0];
    let mut preds = Vec::with_capacity(steps);
    for j in 0..steps {
        let next = model.predict_next(window.clone());
        if j + 1 < steps {
            let row = match covariates {
                None => next.clone(),
                Some((c, base)) => {
                    Tensor::cat(vec![next.clone(), c.clone().narrow(0, base + j + 1, n)], 1)
                }
            };
            let newest = row.unsqueeze_dim(1);
            window = if tau == 1 {
                newest
            } else {
                Tensor::cat(vec![window.narrow(1, 1, tau - 1), newest], 1)
            };
        }
        preds.push(next);
    }
    preds
}

/// k-step-ahead predictions: from every origin `o` in `origins` (an index into `series`, the first
/// predicted step, `o >= tau`, clipped so that `o + k_max - 1 < T`) the model reads the true
/// `series[o - tau .. o]` and feeds its own predictions back for `k_max` steps. Returns the first
/// origin and, for `k = 1..=k_max`, the predictions `[N, F]` whose row `i` predicts
/// `series[first + i + k - 1]`. `covariates` (`[T' >= T, C]`) for a model that reads them.
pub fn k_step_predictions<M: Forecaster>(
    model: &M,
    series: &Tensor<2>,
    covariates: Option<&Tensor<2>>,
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
    check_covariates(model.covariates(), covariates, steps)?;
    let n = last - first;
    let start = windows(
        &input_rows(series, covariates, first - tau, first + n - 1),
        tau,
    )?;
    let next = covariates.map(|c| (c, first));
    Ok((first, roll(model, start, k_max, next)))
}

/// k-step-ahead evaluation: the predictions of [`k_step_predictions`] compared with the truth
/// `series[o + k - 1]`. Returns the mean squared error for each horizon in `horizons`, averaged
/// over every origin whose target (for the largest horizon) lies inside the series and over the
/// features.
pub fn k_step_mse<M: Forecaster>(
    model: &M,
    series: &Tensor<2>,
    covariates: Option<&Tensor<2>>,
    origins: std::ops::Range<usize>,
    horizons: &[usize],
) -> Result<Vec<f64>> {
    if horizons.is_empty() || horizons.contains(&0) {
        return Err(SequentError::InvalidConfig(format!(
            "horizons must be at least 1, got {horizons:?}"
        )));
    }
    let k_max = *horizons.iter().max().expect("non-empty");
    let (first, preds) = k_step_predictions(model, series, covariates, origins, k_max)?;
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
