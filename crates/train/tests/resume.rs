//! A run resumed from its last checkpoint reaches the same losses as an uninterrupted run (its own
//! test binary: tests in one binary share the backend's random generator).

mod common;

use common::{device, lm};
use sequent_train::data::text::{Partition, token_loader};
use sequent_train::learner::{self, FitOptions, LanguageModeling, TaskLearner};

fn text() -> Vec<u32> {
    // A deterministic pseudo-text over 5 symbols with some structure.
    (0..900u32).map(|i| (i * i / 7 + i / 3) % 5).collect()
}

/// The per-epoch rows `metrics.csv` holds and every batch's loss.
type Losses = (Vec<(usize, f64, f64)>, Vec<f64>);

fn train_run(dir: &std::path::Path, epochs: usize, resume: bool) -> Losses {
    let device = device().autodiff();
    let options = FitOptions {
        epochs,
        lr: 0.01,
        clip: Some(1.0),
        seed: 11,
        patience: None,
        schedule: sequent_train::learner::LrSchedule::Constant,
        devices: Vec::new(),
    };
    let resume_after = if resume {
        learner::fit::resume_point(dir).unwrap()
    } else {
        None
    };
    let start = resume_after.unwrap_or(0);
    let tokens = text();
    let train = token_loader(&tokens[..700], Partition::Random, 8, 10, 11, start).unwrap();
    let valid = token_loader(&tokens[700..], Partition::Sequential, 2, 10, 11, start).unwrap();
    let control = learner::fit::control_for(&options);
    let model = TaskLearner::new(
        lm(&device, 11),
        LanguageModeling::default(),
        control.clone(),
    );
    let fitted = learner::fit(model, &control, train, valid, dir, &options, resume_after).unwrap();
    assert!(fitted.stopped.is_none());
    let rows = learner::fit::write_epoch_metrics(dir, &control).unwrap();
    (rows, control.step_losses())
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let base = std::env::temp_dir().join(format!("sequent-resume-{}", std::process::id()));
    let (full, part) = (base.join("full"), base.join("part"));
    let _ = std::fs::remove_dir_all(&base);
    let (uninterrupted, all_steps) = train_run(&full, 3, false);
    assert_eq!(uninterrupted.len(), 3);
    let (first, first_steps) = train_run(&part, 1, false);
    assert_eq!(first.len(), 1);
    // As if killed before anything but the checkpoint was written: the history comes from it.
    std::fs::remove_file(part.join("metrics.csv")).unwrap();
    let (resumed, resumed_steps) = train_run(&part, 3, true);
    assert_eq!(resumed.len(), 3);
    assert_eq!(resumed_steps.len(), all_steps.len());
    assert_eq!(resumed_steps[..first_steps.len()], first_steps[..]);
    for (a, b) in all_steps.iter().zip(&resumed_steps) {
        assert!((a - b).abs() < 1e-6, "step losses {a} vs {b}");
    }
    for (a, b) in uninterrupted.iter().zip(&resumed) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() < 1e-6 && (a.2 - b.2).abs() < 1e-6,
            "epoch {}: uninterrupted {:?} vs resumed {:?}",
            a.0,
            a,
            b
        );
    }
    // Learning happened.
    assert!(uninterrupted[2].1 < uninterrupted[0].1);

    // A truncated checkpoint is reported by name, not a panic.
    let ckpt = part.join("checkpoint");
    let epoch = learner::checkpoint::latest_epoch(&ckpt).unwrap();
    let model = learner::checkpoint::record_path(&ckpt, "model", epoch);
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = learner::fit::resume_point(&part).unwrap_err();
    assert!(
        matches!(&err, sequent_train::error::TrainError::Checkpoint { path, .. } if path == &model),
        "{err}"
    );
    let err = err.to_string();
    assert!(err.contains("damaged") && err.contains("model-"), "{err}");
    let _ = std::fs::remove_dir_all(&base);
}
