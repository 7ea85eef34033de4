//! The training loop: burn-train's `SupervisedTraining` with sequent's checkpointer, progress bar,
//! clipping and NaN guard, resumable from the newest checkpoint.

use crate::error::TrainError;
use std::path::Path;
use std::sync::Arc;

use crate::optim::FusedAdamConfig;
use burn::data::dataloader::DataLoader;
use burn::module::Module;
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::tensor::Device;
use burn::tensor::distributed::{DistributedConfig, ReduceOperation};
use burn::train::metric::LossMetric;
use burn::train::metric::store::{Aggregate, Direction, Split as StoreSplit};
use burn::train::{
    ExecutionStrategy, Interrupter, Learner, MetricEarlyStoppingStrategy, MultiDeviceOptim,
    StoppingCondition, SupervisedTraining,
};
use sequent_models::ErrorSource;
use sequent_models::device::has_collectives;
use serde::{Deserialize, Serialize};

use crate::learner::checkpoint::{self, AtomicCheckpointer};
use crate::learner::control::{Split, StepControl};
use crate::learner::logs::MetricLogs;
use crate::learner::progress::ProgressBar;
use crate::learner::task::{Task, TaskLearner};

/// Optimisation settings of a run (Adam with PyTorch's defaults: betas 0.9, 0.999, eps 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Number of epochs in total (a resumed run continues up to this many).
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Global gradient-norm clip (PyTorch's `clip_grad_norm_`), if any.
    pub clip: Option<f64>,
    /// Seed of the weights, the data order and dropout.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs (burn-train's
    /// `MetricEarlyStoppingStrategy`); `None` trains every epoch.
    pub patience: Option<usize>,
    /// Learning-rate schedule (burn's schedulers).
    pub schedule: LrSchedule,
    /// Devices to train on, data parallel (burn-train's multi-device strategy): each step gives
    /// every device its own batch from its share of the training data and sums the gradients on
    /// the first device, which updates the weights, validates and writes the checkpoints. The
    /// gradients are those of the mean loss over all the devices' batches, so `N` devices with
    /// batch `B` train like one device with batch `N * B`. Empty: the model's own device. Not
    /// saved with the options: a run may resume on other devices.
    #[serde(skip)]
    pub devices: Vec<Device>,
}

/// How the learning rate moves during training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` throughout.
    #[default]
    Constant,
    /// Cosine annealing from `lr` to 0 over all epochs (burn's `CosineAnnealingLrScheduler`),
    /// `iterations` optimiser steps per epoch.
    Cosine {
        /// Optimiser steps per epoch.
        iterations: usize,
    },
}

/// What a finished (or stopped) run hands back.
pub struct Fitted<M> {
    /// The trained model (validation mode).
    pub model: M,
    /// The epoch the run resumed after, if it resumed.
    pub resumed_after: Option<usize>,
    /// Why training stopped early, if it did (a non-finite loss, an I/O error).
    pub stopped: Option<String>,
}

/// A new [`StepControl`] for `options` (its interrupter is the one [`fit`] stops).
pub fn control_for(options: &FitOptions) -> StepControl {
    StepControl::new(options.clip, options.seed, Interrupter::new())
}

/// The epoch a run in `dir` resumes after: the newest complete checkpoint, checked readable.
/// `None` for a fresh run.
pub fn resume_point(dir: &Path) -> Result<Option<usize>, TrainError> {
    let ckpt = dir.join("checkpoint");
    match checkpoint::latest_epoch(&ckpt) {
        Some(epoch) => checkpoint::verify(&ckpt, epoch).map(|()| Some(epoch)),
        None => Ok(None),
    }
}

/// Trains `model` with Adam under burn-train in `dir`: checkpoints `dir/checkpoint/*-N.bpk`
/// (written atomically, the last two kept plus the best validation loss), metric logs
/// `dir/{train,valid}/epoch-N/*.log` ([`MetricLogs`]), a progress bar on standard error. A file
/// that cannot be written stops training with a message naming it ([`Fitted::stopped`]). With `resume_after =
/// Some(k)` the model, optimiser and schedule are restored from epoch `k`'s checkpoint (see
/// [`resume_point`]) and training continues at epoch `k + 1`.
pub fn fit<T: Task>(
    model: TaskLearner<T>,
    control: &StepControl,
    train: Arc<dyn DataLoader<T::Batch>>,
    valid: Arc<dyn DataLoader<T::Batch>>,
    dir: &Path,
    options: &FitOptions,
    resume_after: Option<usize>,
) -> Result<Fitted<TaskLearner<T>>, TrainError> {
    if options.epochs == 0 {
        return Err(TrainError::Invalid("epochs must be at least 1".into()));
    }
    let ckpt = dir.join("checkpoint");
    let mut training = T::metrics(SupervisedTraining::new(dir, train, valid))
        .with_custom_checkpointers(
            AtomicCheckpointer::new(&ckpt, "model", control.clone()),
            AtomicCheckpointer::new(&ckpt, "optim", control.clone()),
            AtomicCheckpointer::new(&ckpt, "scheduler", control.clone()),
        )
        .with_metric_logger(MetricLogs::new(dir, control.clone()))
        .renderer(Box::new(ProgressBar::new(control.clone())))
        .with_interrupter(control.interrupter())
        .num_epochs(options.epochs);
    if !options.devices.is_empty() {
        control.train_on(&options.devices);
        training = training.with_training_strategy(data_parallel(options.devices.clone()).into());
    }
    if let Some(epoch) = resume_after {
        control.restore(checkpoint::load_history(&ckpt, epoch)?);
        training = training.checkpoint(epoch);
    }
    if let Some(n_epochs) = options.patience {
        training = training.early_stopping(MetricEarlyStoppingStrategy::new(
            &LossMetric::new(),
            Aggregate::Mean,
            Direction::Lowest,
            StoreSplit::Valid,
            StoppingCondition::NoImprovementSince { n_epochs },
        ));
    }
    // PyTorch's epsilon (burn's default is 1e-5), so runs compare with `torch.optim.Adam`.
    let optim = FusedAdamConfig::new().with_epsilon(1e-8).init();
    let scheduler: ModuleLrScheduler = match options.schedule {
        LrSchedule::Constant => options.lr.into(),
        LrSchedule::Cosine { iterations } => {
            CosineAnnealingLrSchedulerConfig::new(options.lr, (iterations * options.epochs).max(1))
                .init()
                .map_err(|e| TrainError::Invalid(format!("learning-rate schedule: {e}")))?
        }
    };
    let result = training.launch(Learner::new(model, optim, scheduler));
    let stopped = control
        .failure()
        .or_else(|| result.error.map(|e| e.to_string()));
    Ok(Fitted {
        model: result.model,
        resumed_after: resume_after,
        stopped,
    })
}

/// How burn-train trains on `devices`: distributed data parallel (a replica and an optimiser on
/// each device, the gradients summed by an all-reduce during the backward pass) where every device
/// has collective operations ([`has_collectives`]: CUDA and remote devices), otherwise the
/// multi-device strategy (each device's gradients moved to the first device and summed there, which
/// updates the weights). Each device's loss is divided by the number of devices
/// ([`StepControl::replicas`]), so either sum is the gradient of the mean loss.
fn data_parallel(devices: Vec<Device>) -> ExecutionStrategy {
    if devices.len() > 1 && devices.iter().all(has_collectives) {
        let sum = DistributedConfig {
            all_reduce_op: ReduceOperation::Sum,
        };
        ExecutionStrategy::ddp(devices, sum)
    } else {
        ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice)
    }
}

/// A fresh training run of `model` for `task` in `dir`, in one call: [`fit`] with a new
/// [`StepControl`], and the trained model (validation mode) with that control, whose records hold
/// every batch's and every epoch's loss. A run that stops early is [`TrainError::Stopped`].
pub fn train<T: Task>(
    model: T::Model,
    task: T,
    train: Arc<dyn DataLoader<T::Batch>>,
    valid: Arc<dyn DataLoader<T::Batch>>,
    dir: &Path,
    options: &FitOptions,
) -> Result<(T::Model, StepControl), TrainError> {
    let control = control_for(options);
    let learner = TaskLearner::new(model, task, control.clone());
    let fitted = fit(learner, &control, train, valid, dir, options, None)?;
    match fitted.stopped {
        Some(reason) => Err(TrainError::Stopped {
            reason,
            checkpoints: dir.join("checkpoint"),
        }),
        None => Ok((fitted.model.model, control)),
    }
}

/// Writes `dir/metrics.csv` (`epoch,train_loss,valid_loss`, epochs from 1) from `control`'s
/// records, which a resumed run restored from its checkpoint: one row per epoch of the whole run.
pub fn write_epoch_metrics(
    dir: &Path,
    control: &StepControl,
) -> Result<Vec<(usize, f64, f64)>, TrainError> {
    let valid: std::collections::BTreeMap<usize, f64> =
        control.epoch_losses(Split::Valid).into_iter().collect();
    let rows: Vec<(usize, f64, f64)> = control
        .epoch_losses(Split::Train)
        .into_iter()
        .map(|(e, t)| (e + 1, t, valid.get(&e).copied().unwrap_or(f64::NAN)))
        .collect();
    let mut csv = String::from("epoch,train_loss,valid_loss\n");
    for (e, t, v) in &rows {
        csv.push_str(&format!("{e},{t},{v}\n"));
    }
    crate::io::write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    Ok(rows)
}

/// Saves `model`'s weights to `path` (burnpack), atomically.
pub fn save_model<M: Module>(model: M, path: &Path) -> Result<(), TrainError> {
    let tmp = crate::io::temporary(path);
    model
        .into_record()
        .save(&tmp)
        .map_err(|e| TrainError::Weights {
            path: tmp.clone(),
            problem: "cannot be written",
            source: ErrorSource::new(e),
        })?;
    crate::io::commit(&tmp, path)
}

/// Loads weights saved by [`save_model`] into `model`.
pub fn load_model<M: Module>(model: M, path: &Path) -> Result<M, TrainError> {
    let weights = |problem, source| TrainError::Weights {
        path: path.to_path_buf(),
        problem,
        source,
    };
    let record = burn::store::ModuleRecord::load(path)
        .map_err(|e| weights("cannot be read (missing or damaged)", ErrorSource::new(e)))?;
    model
        .try_load_record(record)
        .map_err(|e| weights("does not fit this model", ErrorSource::new(e)))
}
