//! What every training command does around burn-train: fit with the run's settings, write the
//! loss history (`metrics.csv`, `steps.csv`) and its plots (`loss.svg`, `steps.svg`), and stop with
//! a message when training did not finish.

use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::module::Module;
use burn::tensor::Device;
use sequent_train::error::TrainError;
use sequent_train::learner::{
    self, FitOptions, LrSchedule, StepControl, Task, TaskLearner, fit::control_for,
};

use crate::config::{RunConfig, Schedule};
use crate::plot::{Line, line_chart};

impl RunConfig {
    /// The optimisation settings of this run, with `iterations` optimiser steps per epoch.
    pub fn fit_options(&self, iterations: usize) -> FitOptions {
        FitOptions {
            schedule: match self.schedule {
                Schedule::Constant => LrSchedule::Constant,
                Schedule::Cosine => LrSchedule::Cosine { iterations },
            },
            epochs: self.epochs,
            lr: self.lr,
            clip: (self.clip > 0.0).then_some(self.clip),
            seed: self.seed,
            patience: (self.patience > 0).then_some(self.patience),
            devices: self.devices.clone(),
        }
    }
}

/// The per-epoch rows `(epoch, train loss, validation loss)` of a finished run.
pub type EpochRows = Vec<(usize, f64, f64)>;

/// Trains the learner `make` builds around a [`StepControl`] in `out` (resuming after
/// `resume_after`), writes the loss history and plots (`loss` names the loss on their axes), and
/// returns the trained learner with its per-epoch rows; a run that stopped early is an error
/// naming why, with the checkpoints kept. `batch_items` is the number of loader items one
/// optimiser step reads.
#[allow(clippy::too_many_arguments)]
pub fn fit_and_report<T: Task>(
    make: impl FnOnce(StepControl) -> TaskLearner<T>,
    batch_items: usize,
    train: Arc<dyn DataLoader<T::Batch>>,
    valid: Arc<dyn DataLoader<T::Batch>>,
    cfg: &RunConfig,
    out: &Path,
    resume_after: Option<usize>,
    loss: &str,
) -> Result<(TaskLearner<T>, EpochRows), String> {
    let options = cfg.fit_options(train.num_items().div_ceil(batch_items.max(1)));
    let control = control_for(&options);
    let fitted = learner::fit(
        make(control.clone()),
        &control,
        train,
        valid,
        out,
        &options,
        resume_after,
    )?;
    let rows = learner::fit::write_epoch_metrics(out, &control)?;
    write_curves(out, &control, &rows, loss)?;
    match fitted.stopped {
        Some(reason) => Err(TrainError::Stopped {
            reason,
            checkpoints: out.join("checkpoint"),
        }
        .into()),
        None => Ok((fitted.model, rows)),
    }
}

/// Writes `steps.csv` and the two loss plots.
fn write_curves(
    out: &Path,
    control: &StepControl,
    rows: &[(usize, f64, f64)],
    loss: &str,
) -> Result<(), String> {
    let steps = control.step_losses();
    let mut csv = String::from("step,train_loss\n");
    for (i, l) in steps.iter().enumerate() {
        csv.push_str(&format!("{},{l}\n", i + 1));
    }
    sequent_train::io::write_atomic(&out.join("steps.csv"), csv.as_bytes())?;
    let epochs = |f: fn(&(usize, f64, f64)) -> f64| {
        rows.iter().map(|r| (r.0 as f64, f(r))).collect::<Vec<_>>()
    };
    line_chart(
        &out.join("loss.svg"),
        "Loss per epoch",
        "epoch",
        loss,
        &[
            Line::new("train", epochs(|r| r.1)),
            Line::new("validation", epochs(|r| r.2)),
        ],
    )?;
    if !steps.is_empty() {
        let points = steps
            .iter()
            .enumerate()
            .map(|(i, &l)| ((i + 1) as f64, l))
            .collect();
        line_chart(
            &out.join("steps.svg"),
            "Training loss per batch",
            "step",
            loss,
            &[Line::new("train", points)],
        )?;
    }
    Ok(())
}

/// The device a model's parameters live on.
pub fn model_device<M: Module>(model: &M) -> Result<Device, String> {
    model
        .devices()
        .first()
        .cloned()
        .ok_or_else(|| "the model has no parameters".to_string())
}
