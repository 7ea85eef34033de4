//! The one learner burn-train trains: a model and a [`Task`] that says what a batch's loss is.
//! [`TaskLearner`] adds what every task shares: per-epoch reseeding, the loss records, the NaN
//! guard and global-norm clipping ([`StepControl`]).

use std::fmt::Debug;

use burn::module::{Module, ModuleDisplay};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use burn::train::metric::ItemLazy;
use burn::train::{InferenceStep, SupervisedTraining, TrainOutput, TrainStep};

use crate::learner::control::{Split, StepControl};

/// A batch a [`Task`] trains on: it knows its epoch and its device.
pub trait TaskBatch: Send + 'static {
    /// Epoch (from 0) the batch belongs to.
    fn epoch(&self) -> usize;
    /// The device its tensors live on.
    fn device(&self) -> Device;
}

/// What one batch gives: the loss to minimise, the number of targets it averages over, and what
/// burn-train's metrics read.
pub struct Step<O> {
    /// The mean loss over the batch's targets.
    pub loss: Tensor<1>,
    /// The number of targets `loss` averages over (weights the epoch's mean).
    pub targets: usize,
    /// The metrics' input (burn-train's `ClassificationOutput`, `RegressionOutput`, ...).
    pub output: O,
}

/// A training task: the model it trains, its batches, the loss of a batch and the metrics
/// burn-train shows and logs for it. The task itself holds no weights (it may hold state that
/// flows between batches, such as the carried recurrent state of truncated BPTT).
pub trait Task: Clone + Debug + Send + Sync + 'static {
    /// The model trained.
    type Model: Module + ModuleDisplay + 'static;
    /// Its batches.
    type Batch: TaskBatch;
    /// What the metrics read.
    type Output: ItemLazy + 'static;

    /// The loss of `batch` under `model`, in training or validation (`split`).
    fn step(&self, model: &Self::Model, batch: Self::Batch, split: Split) -> Step<Self::Output>;

    /// Registers the task's metrics on `training`.
    fn metrics(
        training: SupervisedTraining<TaskLearner<Self>>,
    ) -> SupervisedTraining<TaskLearner<Self>>;
}

/// A model as burn-train trains it for a [`Task`]: burn-train's `TrainStep` (forward, backward,
/// then [`StepControl::optimize`]: NaN guard and global-norm clipping) and `InferenceStep`. The
/// first training batch of each epoch reseeds the device from `(seed, epoch)`; every batch's loss
/// is recorded in the control under its split.
#[derive(Module, Debug)]
pub struct TaskLearner<T: Task> {
    /// The model being trained.
    pub model: T::Model,
    #[module(skip)]
    task: T,
    #[module(skip)]
    control: StepControl,
}

impl<T: Task> TaskLearner<T> {
    /// Trains `model` for `task` under `control`.
    pub fn new(model: T::Model, task: T, control: StepControl) -> Self {
        Self {
            model,
            task,
            control,
        }
    }

    fn run(&self, batch: T::Batch, split: Split) -> Step<T::Output> {
        let epoch = batch.epoch();
        if split == Split::Train {
            self.control.start_epoch(&batch.device(), epoch);
        }
        let step = self.task.step(&self.model, batch, split);
        self.control.record(&step.loss, step.targets, epoch, split);
        step
    }
}

impl<T: Task> TrainStep for TaskLearner<T> {
    type Input = T::Batch;
    type Output = T::Output;

    fn step(&self, batch: T::Batch) -> TrainOutput<T::Output> {
        let step = self.run(batch, Split::Train);
        let grads = match self.control.replicas() {
            1 => step.loss.backward(),
            n => step.loss.div_scalar(n as f64).backward(),
        };
        TrainOutput::new(self, grads, step.output)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let control = self.control.clone();
        control.optimize(self, optim, lr, grads)
    }
}

impl<T: Task> InferenceStep for TaskLearner<T> {
    type Input = T::Batch;
    type Output = T::Output;

    fn step(&self, batch: T::Batch) -> T::Output {
        self.run(batch, Split::Valid).output
    }
}
