//! Forecasting with known-future covariates, and the direct multi-horizon forecaster.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use sequent_models::SequentError;
use sequent_models::classical::{AutoregressiveMlpConfig, LatentAutoregressiveConfig};
use sequent_models::forecast::{Forecaster, free_running, k_step_predictions, one_step};
use sequent_models::heads::DirectForecasterConfig;
use sequent_models::recurrent::GruConfig;

/// A forecaster that predicts the covariate its window's last row carries: the covariate of the
/// step it predicts, if the functions align the covariates as documented.
struct ReadsNextCovariate;

impl Forecaster for ReadsNextCovariate {
    fn window(&self) -> usize {
        3
    }

    fn covariates(&self) -> usize {
        1
    }

    fn predict_next(&self, window: Tensor<3>) -> Tensor<2> {
        let [b, tau, _] = window.dims();
        window.narrow(1, tau - 1, 1).narrow(2, 1, 1).reshape([b, 1])
    }
}

fn column(values: impl IntoIterator<Item = f32>, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = values.into_iter().collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n, 1]), device)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn each_forecast_reads_the_covariates_of_the_step_it_predicts() {
    let device = common::backends()[0].1.clone().without_autodiff();
    let m = ReadsNextCovariate;
    // x_s = -s, c_s = 100 + s, known for 4 steps past the 10 of the series.
    let series = column((0..10).map(|s| -(s as f32)), &device);
    let cov = column((0..14).map(|s| 100.0 + s as f32), &device);
    let one = one_step(&m, &series, Some(&cov)).unwrap();
    assert_eq!(
        values(one),
        (3..10).map(|t| 100.0 + t as f32).collect::<Vec<_>>()
    );
    let free = free_running(&m, &series, Some(&cov), 4).unwrap();
    assert_eq!(values(free), vec![110.0, 111.0, 112.0, 113.0]);
    let (first, rolled) = k_step_predictions(&m, &series, Some(&cov), 5..11, 3).unwrap();
    assert_eq!(first, 5);
    for (k, pred) in rolled.into_iter().enumerate() {
        let expected: Vec<f32> = (0..3).map(|i| 100.0 + (first + i + k) as f32).collect();
        assert_eq!(values(pred), expected, "k = {}", k + 1);
    }
    // A horizon past the known covariates, the wrong number of columns, none at all.
    assert_eq!(
        free_running(&m, &series, Some(&cov), 5).unwrap_err(),
        SequentError::CovariatesEnd {
            known: 14,
            needed: 15
        }
    );
    let short = cov.clone().narrow(0, 0, 9);
    assert!(matches!(
        one_step(&m, &series, Some(&short)),
        Err(SequentError::CovariatesEnd {
            known: 9,
            needed: 10
        })
    ));
    let wide = Tensor::<2>::zeros([14, 2], &device);
    assert_eq!(
        k_step_predictions(&m, &series, Some(&wide), 5..10, 2).unwrap_err(),
        SequentError::CovariateWidth {
            expected: 1,
            got: 2
        }
    );
    assert!(matches!(
        one_step(&m, &series, None),
        Err(SequentError::CovariateWidth {
            expected: 1,
            got: 0
        })
    ));
}

#[test]
fn models_read_values_and_covariates_and_predict_the_values() {
    let device = common::backends()[0].1.clone().without_autodiff();
    let series = Tensor::<2>::zeros([12, 2], &device);
    let cov = Tensor::<2>::zeros([15, 3], &device);
    let ar = AutoregressiveMlpConfig::new(4)
        .with_features(2)
        .with_covariates(3)
        .init(&device);
    assert_eq!(
        ar.try_forward(Tensor::zeros([5, 4, 5], &device))
            .unwrap()
            .dims(),
        [5, 2]
    );
    assert!(matches!(
        ar.try_forward(Tensor::zeros([5, 4, 2], &device)),
        Err(SequentError::WindowShape { features: 5, .. })
    ));
    assert_eq!(
        free_running(&ar, &series, Some(&cov), 3).unwrap().dims(),
        [3, 2]
    );
    let latent = LatentAutoregressiveConfig::new(4)
        .with_covariates(3)
        .init(GruConfig::new(5, 8).init(&device), &device);
    assert_eq!(
        one_step(&latent, &series, Some(&cov)).unwrap().dims(),
        [8, 2]
    );
    let err = LatentAutoregressiveConfig::new(4)
        .with_covariates(5)
        .try_init(GruConfig::new(5, 8).init(&device), &device)
        .unwrap_err();
    assert!(err.to_string().contains("leave none"), "{err}");
}

#[test]
fn the_direct_forecaster_predicts_the_whole_horizon_from_one_window() {
    let device = common::backends()[0].1.clone().without_autodiff();
    device.seed(3);
    let direct = DirectForecasterConfig::new(2, 4, 3)
        .with_covariates(1)
        .init(GruConfig::new(3, 8).init(&device), &device);
    let x: Vec<f32> = (0..20).map(|i| (i as f32 * 0.37).sin()).collect();
    let series = Tensor::<2>::from_data(TensorData::new(x, [10, 2]), &device);
    let cov = column((0..10).map(|s| (s % 7) as f32), &device);
    let (first, per_step) = direct.predictions(&series, Some(&cov), 4..11).unwrap();
    assert_eq!((first, per_step.len()), (4, 3));
    // Origins 4..=7 (o + 2 < 10); origin 6's window is rows 2..6 with c_3..c_6.
    assert_eq!(per_step[0].dims(), [4, 2]);
    let rows = Tensor::cat(
        vec![series.clone().narrow(0, 2, 4), cov.clone().narrow(0, 3, 4)],
        1,
    );
    let at_6 = direct.forward(rows.clone().unsqueeze_dim(0));
    for (k, pred) in per_step.iter().enumerate() {
        let by_hand = at_6.clone().narrow(1, k, 1).reshape([1, 2]);
        let diff: f32 = (pred.clone().narrow(0, 2, 1) - by_hand)
            .abs()
            .max()
            .into_scalar();
        assert!(diff < 1e-6, "k = {}: {diff}", k + 1);
    }
    // As a one-step forecaster it gives the first step of its horizon.
    let next = direct.predict_next(rows.unsqueeze_dim(0));
    let diff: f32 = (next - at_6.narrow(1, 0, 1).reshape([1, 2]))
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-6, "{diff}");
    assert!(matches!(
        direct.predictions(&series, Some(&cov), 8..10),
        Err(SequentError::SeriesTooShort { .. })
    ));
    assert!(matches!(
        direct.predictions(&series, None, 4..10),
        Err(SequentError::CovariateWidth { .. })
    ));
    let err = DirectForecasterConfig::new(2, 4, 3)
        .try_init(GruConfig::new(3, 8).init(&device), &device)
        .unwrap_err();
    assert!(err.to_string().contains("need 2"), "{err}");
    assert!(
        DirectForecasterConfig::new(2, 4, 0)
            .try_init(GruConfig::new(2, 8).init(&device), &device)
            .is_err()
    );
}
