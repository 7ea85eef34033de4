//! What every sequent training step shares with the loop around it: global-norm clipping, the
//! NaN/Inf guard, per-epoch reseeding and the loss history.

use std::fmt;
use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use burn::train::Interrupter;

use serde::{Deserialize, Serialize};

use crate::clip::clip_grad_norm;

/// Which pass a loss belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Split {
    /// Training batches (before the update).
    Train,
    /// Validation batches.
    Valid,
}

/// Sum of losses and the weight (targets) they were averaged over, for one epoch and split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossSum {
    /// `sum_b loss_b * n_b`.
    pub total: f64,
    /// `sum_b n_b`.
    pub count: usize,
}

impl LossSum {
    /// The mean loss `total / count`.
    pub fn mean(&self) -> f64 {
        self.total / self.count.max(1) as f64
    }
}

#[derive(Default)]
struct Shared {
    history: History,
    failure: Option<String>,
    /// The devices training runs on (empty: one, the model's), and the epoch each was last
    /// reseeded for.
    devices: Vec<(Device, Option<usize>)>,
}

/// The losses a run has recorded: what a checkpoint keeps so that a resumed run's `metrics.csv`
/// and `steps.csv` cover the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Loss sums per epoch (from 0) and split.
    pub epochs: Vec<(usize, Split, LossSum)>,
    /// Every training batch's epoch (from 0) and loss, in order.
    pub steps: Vec<(usize, f64)>,
}

impl History {
    /// The losses of the first `epochs` epochs.
    pub fn until(&self, epochs: usize) -> History {
        History {
            epochs: self
                .epochs
                .iter()
                .filter(|(e, _, _)| *e < epochs)
                .copied()
                .collect(),
            steps: self
                .steps
                .iter()
                .filter(|(e, _)| *e < epochs)
                .copied()
                .collect(),
        }
    }

    fn sum(&mut self, epoch: usize, split: Split) -> &mut LossSum {
        let at = match self
            .epochs
            .iter()
            .position(|(e, s, _)| (*e, *s) == (epoch, split))
        {
            Some(at) => at,
            None => {
                self.epochs.push((epoch, split, LossSum::default()));
                self.epochs.len() - 1
            }
        };
        &mut self.epochs[at].2
    }
}

/// Shared between the model wrapper (inside burn-train's loop) and the caller: clips gradients by
/// their global norm, stops training on a non-finite loss (skipping that update, so the model and
/// the last checkpoint stay good), reseeds the device at the start of each epoch from
/// `(seed, epoch)` so a resumed run draws the same dropout masks, and records the losses.
#[derive(Clone)]
pub struct StepControl {
    clip: Option<f64>,
    seed: u64,
    interrupter: Interrupter,
    shared: Arc<Mutex<Shared>>,
}

impl fmt::Debug for StepControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepControl")
            .field("clip", &self.clip)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl StepControl {
    /// A control that clips to `clip` (if any) and stops `interrupter` on a bad loss.
    pub fn new(clip: Option<f64>, seed: u64, interrupter: Interrupter) -> Self {
        Self {
            clip,
            seed,
            interrupter,
            shared: Arc::default(),
        }
    }

    /// The interrupter a non-finite loss stops.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Trains on `devices` (data parallel; empty or one: a single device): each device is
    /// reseeded on its own (see [`Self::start_epoch`]) and [`Self::replicas`] is their number.
    pub fn train_on(&self, devices: &[Device]) {
        self.lock().devices = devices.iter().map(|d| (d.clone(), None)).collect();
    }

    /// How many devices compute a step's gradients, each over its share of the batch: each
    /// device's loss is divided by this before the backward pass, so that the gradients burn-train
    /// sums over the devices are those of the mean loss over the whole batch.
    pub fn replicas(&self) -> usize {
        self.lock().devices.len().max(1)
    }

    /// Called with every training batch: the first batch of each epoch on each device reseeds
    /// that device from `(seed, epoch, device's index)`, the others leave the generator running.
    pub fn start_epoch(&self, device: &Device, epoch: usize) {
        let mut shared = self.lock();
        if shared.devices.is_empty() {
            shared.devices.push((device.clone(), None));
        }
        let Some(index) = shared
            .devices
            .iter()
            .position(|(d, _)| d.clone().inner() == device.clone().inner())
        else {
            return;
        };
        if shared.devices[index].1 != Some(epoch) {
            shared.devices[index].1 = Some(epoch);
            device.seed(
                self.seed
                    .wrapping_add((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    .wrapping_add((index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)),
            );
        }
    }

    /// Records `loss` (a mean over `count` targets) for `(epoch, split)`; a non-finite training
    /// loss stops the run with a message naming the epoch.
    pub fn record(&self, loss: &Tensor<1>, count: usize, epoch: usize, split: Split) {
        let value: f64 = loss.clone().into_scalar();
        let mut shared = self.lock();
        if !value.is_finite() {
            if split == Split::Train && shared.failure.is_none() {
                shared.failure = Some(format!(
                    "the training loss became {value} in epoch {} (step {}); training stopped, \
                     the weights from before that step are kept",
                    epoch + 1,
                    shared.history.steps.len() + 1
                ));
                self.interrupter.stop(Some("non-finite loss"));
            }
            return;
        }
        if split == Split::Train {
            shared.history.steps.push((epoch, value));
        }
        let sum = shared.history.sum(epoch, split);
        sum.total += value * count as f64;
        sum.count += count;
    }

    /// Why training stopped early, if it did (a non-finite loss, a checkpoint that could not be
    /// written).
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Stops training with `reason` (the first reason given is kept).
    pub fn fail(&self, reason: String) {
        let mut shared = self.lock();
        if shared.failure.is_none() {
            shared.failure = Some(reason);
            self.interrupter.stop(Some("training failed"));
        }
    }

    /// Mean loss per epoch (from 0) for `split`, in epoch order.
    pub fn epoch_losses(&self, split: Split) -> Vec<(usize, f64)> {
        let mut losses: Vec<(usize, f64)> = self
            .lock()
            .history
            .epochs
            .iter()
            .filter(|(_, s, _)| *s == split)
            .map(|(e, _, sum)| (*e, sum.mean()))
            .collect();
        losses.sort_by_key(|(e, _)| *e);
        losses
    }

    /// The last training batch's loss, if any.
    pub fn last_step_loss(&self) -> Option<f64> {
        self.lock().history.steps.last().map(|s| s.1)
    }

    /// Every training batch's loss, in order.
    pub fn step_losses(&self) -> Vec<f64> {
        self.lock().history.steps.iter().map(|s| s.1).collect()
    }

    /// The losses recorded in the first `epochs` epochs (a checkpoint, written while the next
    /// epoch may have begun, keeps only those of its epochs).
    pub fn history(&self, epochs: usize) -> History {
        self.lock().history.until(epochs)
    }

    /// Continues from the losses `history` of an earlier run (resuming from its checkpoint).
    pub fn restore(&self, history: History) {
        self.lock().history = history;
    }

    /// The optimiser step of every sequent model: skipped after a non-finite loss, otherwise
    /// with the gradients clipped to the global norm first.
    pub fn optimize<M: Module>(
        &self,
        model: M,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> M {
        if self.lock().failure.is_some() {
            return model;
        }
        let grads = match self.clip {
            Some(max_norm) => clip_grad_norm(&model, grads, max_norm).0,
            None => grads,
        };
        optim.step(lr, model, grads)
    }
}
