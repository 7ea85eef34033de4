//! The naive autoregressive model on d2l's sine data, and the forecasting utilities.

mod common;

use burn::module::Module;
use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use sequent_models::SequentError;
use sequent_models::classical::{AutoregressiveMlp, AutoregressiveMlpConfig};
use sequent_models::forecast::{free_running, k_step_mse, one_step};
use sequent_models::rng::SplitMix64;

/// d2l's data: x_t = sin(0.01 t) + N(0, 0.2^2), t = 1..=1000, as `[1000, 1]`.
fn sine(device: &Device) -> Tensor<2> {
    let mut rng = SplitMix64::new(3);
    let x: Vec<f32> = (1..=1000)
        .map(|t| ((0.01 * t as f64).sin() + 0.2 * rng.normal()) as f32)
        .collect();
    Tensor::from_data(TensorData::new(x, [1000, 1]), device)
}

/// d2l's recipe: windows of tau = 4, the first 600 examples for training, batch 16, Adam lr 0.01,
/// 5 epochs, MSE.
fn train(series: &Tensor<2>, device: &Device) -> AutoregressiveMlp {
    device.seed(0);
    let tau = 4;
    let mut model = AutoregressiveMlpConfig::new(tau).init(device);
    let mut optim = AdamConfig::new().init();
    let mut rng = SplitMix64::new(1);
    let n_train = 600;
    for _ in 0..5 {
        let mut order: Vec<usize> = (0..n_train).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for batch in order.chunks(16) {
            let windows: Vec<Tensor<2>> = batch
                .iter()
                .map(|&i| series.clone().narrow(0, i, tau))
                .collect();
            let targets: Vec<Tensor<2>> = batch
                .iter()
                .map(|&i| series.clone().narrow(0, i + tau, 1))
                .collect();
            let pred = model.forward(Tensor::stack(windows, 0));
            let loss = MseLoss::new().forward(pred, Tensor::cat(targets, 0), Reduction::Mean);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.01, model, grads);
        }
    }
    model.valid()
}

#[test]
fn sine_one_step_near_the_noise_floor_and_errors_grow_with_the_horizon() {
    let device = common::backends()[0].1.clone();
    let series = sine(&device);
    let model = train(&series, &device);
    let eval = series.clone().detach();
    // One-step validation MSE over the examples after the first 600 (targets 604..1000).
    let preds = one_step(&model, &eval, None).unwrap();
    let val = (preds.narrow(0, 600, 396) - eval.clone().narrow(0, 604, 396))
        .powi_scalar(2)
        .mean();
    let mse: f64 = val.into_scalar();
    assert!(
        mse <= 0.06,
        "one-step validation MSE {mse} (noise floor 0.04)"
    );
    assert!(
        mse >= 0.03,
        "one-step MSE {mse} is below the noise floor: leakage?"
    );
    // k-step-ahead from every validation origin.
    let errs = k_step_mse(&model, &eval, None, 604..1000, &[1, 4, 16, 64]).unwrap();
    println!("one-step validation MSE {mse:.4}; k-step MSE for k = 1, 4, 16, 64: {errs:.4?}");
    assert!(
        errs.windows(2).all(|w| w[0] < w[1]),
        "k-step MSE must grow with k: {errs:?}"
    );
    assert!(
        (errs[0] - mse).abs() < 0.02,
        "k = 1 is one-step prediction: {errs:?} vs {mse}"
    );
}

#[test]
fn forecasting_shapes_and_typed_errors() {
    let device = common::backends()[0].1.clone().without_autodiff();
    let model = AutoregressiveMlpConfig::new(4)
        .with_features(2)
        .init(&device);
    let series = Tensor::<2>::zeros([10, 2], &device);
    assert_eq!(one_step(&model, &series, None).unwrap().dims(), [6, 2]);
    assert_eq!(
        free_running(&model, &series, None, 5).unwrap().dims(),
        [5, 2]
    );
    // The first-order Markov model (tau = 1) feeds each prediction straight back.
    let markov = AutoregressiveMlpConfig::markov(2).init(&device);
    let free = free_running(&markov, &series, None, 3).unwrap();
    let by_hand = markov.forward(
        markov
            .forward(series.clone().narrow(0, 9, 1).unsqueeze_dim(0))
            .unsqueeze_dim(1),
    );
    let diff: f32 = (free.narrow(0, 1, 1) - by_hand).abs().max().into_scalar();
    assert!(diff < 1e-6, "{diff}");
    assert_eq!(
        k_step_mse(&markov, &series, None, 1..10, &[1, 3])
            .unwrap()
            .len(),
        2
    );
    let short = Tensor::<2>::zeros([3, 2], &device);
    assert_eq!(
        one_step(&model, &short, None).unwrap_err(),
        SequentError::SeriesTooShort {
            steps: 3,
            needed: 5
        }
    );
    assert!(matches!(
        free_running(&model, &series, None, 0),
        Err(SequentError::InvalidConfig(_))
    ));
    assert!(matches!(
        k_step_mse(&model, &series, None, 4..10, &[0]),
        Err(SequentError::InvalidConfig(_))
    ));
    assert!(matches!(
        k_step_mse(&model, &series, None, 4..10, &[8]),
        Err(SequentError::SeriesTooShort { .. })
    ));
    let err = model
        .try_forward(Tensor::zeros([2, 3, 2], &device))
        .unwrap_err();
    assert_eq!(
        err,
        SequentError::WindowShape {
            tau: 4,
            features: 2,
            got: vec![2, 3, 2]
        }
    );
}

#[test]
fn latent_model_carries_state_and_forecasts() {
    use sequent_models::classical::LatentAutoregressiveConfig;
    use sequent_models::recurrent::GruConfig;
    let device = common::backends()[0].1.clone();
    let series = sine(&device);
    // Train a GRU latent model (h = 16) on the first 600 steps: predict x_{t+1} from h_t.
    let mut model =
        LatentAutoregressiveConfig::new(16).init(GruConfig::new(1, 16).init(&device), &device);
    let mut optim = AdamConfig::new().init();
    let mut rng = SplitMix64::new(5);
    for _ in 0..150 {
        let starts: Vec<usize> = (0..16).map(|_| rng.below(600 - 33)).collect();
        let inputs: Vec<Tensor<2>> = starts
            .iter()
            .map(|&s| series.clone().narrow(0, s, 32))
            .collect();
        let targets: Vec<Tensor<2>> = starts
            .iter()
            .map(|&s| series.clone().narrow(0, s + 1, 32))
            .collect();
        let (pred, _) = model.forward(Tensor::stack(inputs, 0), None);
        let loss = MseLoss::new().forward(pred, Tensor::stack(targets, 0), Reduction::Mean);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
    }
    let model = model.valid();
    let eval = series.detach();
    // Reading a sequence in two pieces with the state carried equals reading it at once.
    let x: Tensor<3> = eval.clone().narrow(0, 0, 40).unsqueeze_dim(0);
    let (whole, _) = model.forward(x.clone(), None);
    let (a, s) = model.forward(x.clone().narrow(1, 0, 25), None);
    let (b, _) = model.forward(x.narrow(1, 25, 15), Some(s));
    let diff: f32 = (whole - Tensor::cat(vec![a, b], 1))
        .abs()
        .max()
        .into_scalar();
    assert!(diff < 1e-5, "{diff}");
    // It learned the signal (one-step well below the series variance ~0.5) and errors grow with k.
    let errs = k_step_mse(&model, &eval, None, 616..1000, &[1, 16, 64]).unwrap();
    println!("latent GRU k-step MSE for k = 1, 16, 64: {errs:.4?}");
    assert!(errs[0] < 0.1, "{errs:?}");
    assert!(errs[0] < errs[2], "{errs:?}");
}
