//! Data-parallel training on two replicas of the CPU device, through burn-train's multi-device
//! strategy (as burn-train's own tests run it without GPUs): two devices with batch `B` train
//! exactly like one device with batch `2B`, truncated-BPTT state included (its own test binary:
//! tests in one binary share the backend's random generator, so they take turns).

mod common;

use burn::optim::GradientsParams;
use std::sync::{Mutex, MutexGuard};

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::{Interrupter, TrainStep};
use common::{device, lm};
use sequent_models::heads::LanguageModel;
use sequent_models::recurrent::LstmKind;
use sequent_train::data::text::{Partition, StateFlow, TokenBatch, stream_blocks, token_loader};
use sequent_train::learner::{self, FitOptions, LanguageModeling, StepControl, TaskLearner};

/// Held by each test for its whole run: the tests seed the one generator (drawing weights, and
/// at each epoch's start), so they take turns.
fn turn() -> MutexGuard<'static, ()> {
    static GENERATOR: Mutex<()> = Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|p| p.into_inner())
}

/// A deterministic pseudo-text over 5 symbols.
fn text(len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| (i * i / 7 + i / 3) % 5).collect()
}

/// Every training batch's loss and each epoch's validation loss of a 2-epoch run with the
/// sequential partition (state carried between blocks) on `devices` (empty: one device).
fn run(dir: &std::path::Path, batch: usize, devices: Vec<Device>) -> (Vec<f64>, Vec<f64>) {
    let options = FitOptions {
        epochs: 2,
        lr: 0.01,
        clip: Some(1.0),
        // A multiple of the block length: the partition starts at offset 0.
        seed: 8,
        patience: None,
        schedule: learner::LrSchedule::Constant,
        devices,
    };
    // 1 + 16 * 4 tokens: 4 streams of 4 blocks of 4 steps, or 2 streams of 8 blocks, whose
    // halves are the odd streams of the 4.
    let tokens = text(65 + 33);
    let train = token_loader(&tokens[..65], Partition::Sequential, batch, 4, 8, 0).unwrap();
    let valid = token_loader(&tokens[65..], Partition::Sequential, 2, 4, 8, 0).unwrap();
    let control = learner::fit::control_for(&options);
    let model = TaskLearner::new(
        lm(&device().autodiff(), 5),
        LanguageModeling::default(),
        control.clone(),
    );
    let fitted = learner::fit(model, &control, train, valid, dir, &options, None).unwrap();
    assert!(fitted.stopped.is_none(), "{:?}", fitted.stopped);
    let valid = control.epoch_losses(learner::Split::Valid);
    (
        control.step_losses(),
        valid.into_iter().map(|(_, l)| l).collect(),
    )
}

#[test]
fn two_devices_train_like_one_with_the_doubled_batch() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let (one, one_valid) = run(&dir.path().join("one"), 4, Vec::new());
    let (two, two_valid) = run(&dir.path().join("two"), 2, vec![device(), device()]);
    assert_eq!(one.len(), 8, "4 steps an epoch, 2 epochs");
    assert_eq!(two.len(), 2 * one.len(), "one loss per device and step");
    // Each step's two batches (in the order the devices finished) average to the single
    // device's loss of the same step.
    for (step, (single, pair)) in one.iter().zip(two.chunks(2)).enumerate() {
        let mean = (pair[0] + pair[1]) / 2.0;
        assert!(
            (single - mean).abs() < 1e-5,
            "step {}: one device {single}, two devices {mean}",
            step + 1
        );
    }
    for (a, b) in one_valid.iter().zip(&two_valid) {
        assert!((a - b).abs() < 1e-5, "validation: {a} vs {b}");
    }
    // Training moved the weights: the later steps' losses are not the first one's.
    assert!((one[0] - one[7]).abs() > 1e-3);
}

/// The gradient of `model`'s embedding table in `grads`.
fn embedding_grad(grads: &GradientsParams, model: &LanguageModel<LstmKind>) -> Tensor<2> {
    grads.get::<2>(model.embedding.weight.id).unwrap()
}

#[test]
fn each_device_contributes_its_share_of_the_mean_gradient() {
    let _turn = turn();
    let device = device().autodiff();
    let model = lm(&device, 3);
    let block = stream_blocks(&text(33), 4, 8, 0).unwrap().remove(0);
    let ids = |rows: &[i64]| {
        Tensor::<2, Int>::from_data(TensorData::new(rows.to_vec(), [rows.len() / 8, 8]), &device)
    };
    let batch = |from: usize, rows: usize| TokenBatch {
        input: ids(&block.input[from * 8..(from + rows) * 8]),
        target: ids(&block.target[from * 8..(from + rows) * 8]),
        flow: StateFlow::Zero,
        epoch: 0,
        position: 0,
    };
    let control = || StepControl::new(None, 1, Interrupter::new());
    let whole = TaskLearner::new(model.clone(), LanguageModeling::default(), control());
    let expected = embedding_grad(&TrainStep::step(&whole, batch(0, 4)).grads, &model);

    let shared = control();
    shared.train_on(&[device.clone(), device.clone()]);
    let replica = TaskLearner::new(model.clone(), LanguageModeling::default(), shared);
    let summed = embedding_grad(&TrainStep::step(&replica, batch(0, 2)).grads, &model)
        + embedding_grad(&TrainStep::step(&replica, batch(2, 2)).grads, &model);
    let diff: f32 = (summed - expected.clone()).abs().max().into_scalar();
    let scale: f32 = expected.abs().max().into_scalar();
    assert!(scale > 1e-3, "the gradient is not trivially zero");
    assert!(
        diff < 1e-6 * scale.max(1.0),
        "summed replica gradients differ by {diff}"
    );
}
