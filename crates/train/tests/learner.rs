//! The learner: truncated BPTT equals one long run, no gradient crosses the detach, a resumed run
//! equals an uninterrupted one (`tests/resume.rs`), a non-finite loss stops training without
//! touching the weights.

mod common;

use burn::data::dataloader::batcher::Batcher;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::{InferenceStep, Interrupter, TrainStep};
use sequent_train::data::epoch::Tagged;
use sequent_train::data::text::{StateFlow, TokenBatch, TokenBatcher, stream_blocks};
use sequent_train::learner::{self, LanguageModeling, Split, StepControl, TaskLearner};

use common::{device, lm};

fn control() -> StepControl {
    StepControl::new(None, 1, Interrupter::new())
}

fn max_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// `tokens` as `streams` streams cut into blocks of 4 steps, batched as the sequential loader
/// would.
fn blocks(tokens: &[u32], streams: usize, device: &Device) -> Vec<TokenBatch> {
    stream_blocks(tokens, streams, 4, 0)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            TokenBatcher { carry: true }.batch(
                vec![Tagged {
                    epoch: 0,
                    position,
                    item,
                }],
                device,
            )
        })
        .collect()
}

#[test]
fn carried_state_equals_one_long_sequence() {
    let device = device();
    let model = lm(&device, 3);
    let tokens: Vec<u32> = (0..25).map(|i| (i * 7 % 5) as u32).collect();
    // Two streams of 12 tokens: rows 0..12 and 12..24; blocks of 4 steps.
    let learner = TaskLearner::new(model.clone(), LanguageModeling::default(), control());
    let pieces: Vec<Tensor<3>> = blocks(&tokens, 2, &device)
        .into_iter()
        .map(|b| InferenceStep::step(&learner, b).logits)
        .collect();
    assert_eq!(pieces.len(), 3);
    let carried = Tensor::cat(pieces, 1);
    let rows: Vec<i64> = tokens[..24].iter().map(|&t| t as i64).collect();
    let whole = Tensor::<2, Int>::from_data(TensorData::new(rows, [2, 12]), &device);
    let (logits, _) = model.forward(whole, None);
    let diff = max_diff(carried, logits.clone());
    assert!(
        diff < 1e-5,
        "carried state differs from one long run by {diff}"
    );

    // Without the carry (every block from zero) the logits differ: the test can fail.
    let fresh = TaskLearner::new(model, LanguageModeling::default(), control());
    let zero: Vec<Tensor<3>> = blocks(&tokens, 2, &device)
        .into_iter()
        .map(|mut b| {
            b.flow = StateFlow::Zero;
            InferenceStep::step(&fresh, b).logits
        })
        .collect();
    assert!(max_diff(Tensor::cat(zero, 1), logits) > 1e-3);
}

#[test]
fn no_gradient_crosses_the_detach() {
    let device = device().autodiff();
    let model = lm(&device, 5);
    // Block 1 only sees token 1, block 2 only token 2 (one stream, 4 steps each).
    let tokens = [1u32, 1, 1, 1, 2, 2, 2, 2, 2];
    let [first, second] = <[_; 2]>::try_from(blocks(&tokens, 1, &device)).unwrap();
    let learner = TaskLearner::new(model.clone(), LanguageModeling::default(), control());
    let row1_grad = |grads: &GradientsParams| -> f32 {
        let g = grads.get::<2>(model.embedding.weight.id).unwrap();
        g.narrow(0, 1, 1).abs().sum().into_scalar()
    };
    let _ = TrainStep::step(&learner, first);
    let out = TrainStep::step(&learner, second);
    assert_eq!(
        row1_grad(&out.grads),
        0.0,
        "gradient leaked across the detach"
    );

    // Control: the same loss without the detach does reach token 1's embedding.
    let all = Tensor::<2, Int>::from_data(
        TensorData::new(vec![1i64, 1, 1, 1, 2, 2, 2, 2], [1, 8]),
        &device,
    );
    let (logits, _) = model.forward(all, None);
    let tail = logits.narrow(1, 4, 4).reshape([4, 5]);
    let target = Tensor::<1, Int>::from_data([2i64, 2, 2, 2], &device);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(&device)
        .forward(tail, target);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert!(row1_grad(&grads) > 0.0);
}

#[test]
fn non_finite_loss_stops_and_skips_the_update() {
    let device = device().autodiff();
    let model = lm(&device, 9);
    let interrupter = Interrupter::new();
    let control = StepControl::new(Some(1.0), 1, interrupter.clone());
    let loss = Tensor::<1>::from_data([f32::NAN], &device);
    control.record(&loss, 4, 0, Split::Train);
    assert!(interrupter.should_stop());
    assert!(control.failure().unwrap().contains("NaN"));
    // The update after the bad loss is skipped: the weights are unchanged.
    let before = model.embedding.weight.val().into_data();
    let (logits, _) = model.forward(Tensor::<2, Int>::zeros([1, 3], &device), None);
    let grads = GradientsParams::from_grads(logits.sum().backward(), &model);
    let mut optim = AdamConfig::new().init();
    let after = control.optimize(model, &mut optim, 0.1.into(), grads);
    assert_eq!(after.embedding.weight.val().into_data(), before);
}

#[test]
fn saved_model_round_trips_and_damage_is_reported() {
    let device = device();
    let model = lm(&device, 2);
    let dir = std::env::temp_dir().join(format!("sequent-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bpk");
    learner::fit::save_model(model.clone(), &path).unwrap();
    let loaded = learner::fit::load_model(lm(&device, 99), &path).unwrap();
    assert_eq!(
        loaded.embedding.weight.val().into_data(),
        model.embedding.weight.val().into_data()
    );
    std::fs::write(&path, b"not a model").unwrap();
    let err = learner::fit::load_model(lm(&device, 99), &path).unwrap_err();
    assert!(
        matches!(&err, sequent_train::error::TrainError::Weights { path: p, .. } if p == &path),
        "{err}"
    );
    assert!(err.to_string().contains("model.bpk"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
