//! The learner: burn-train's `SupervisedTraining` loop with what sequent adds — truncated BPTT
//! for language models, global-norm clipping, a NaN/Inf guard, atomic resumable checkpoints and a
//! progress bar.

/// burn-train's `TrainStep` (forward, backward, then [`StepControl::optimize`]: NaN guard and
/// global-norm clipping) and `InferenceStep` for a learner with a `control: StepControl` field
/// and a `run(&self, batch, Split) -> Output` method that computes and records the loss.
macro_rules! steps_from_run {
    ($ty:ident<$g:ident: $bound:path>, $input:ty, $output:ty) => {
        impl<$g: $bound> burn::train::TrainStep for $ty<$g> {
            type Input = $input;
            type Output = $output;

            fn step(&self, batch: $input) -> burn::train::TrainOutput<$output> {
                let out = self.run(batch, $crate::learner::Split::Train);
                let grads = out.loss.backward();
                burn::train::TrainOutput::new(self, grads, out)
            }

            fn optimize(
                self,
                optim: &mut burn::optim::ModuleOptimizer,
                lr: burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate,
                grads: burn::optim::GradientsParams,
            ) -> Self {
                let control = self.control.clone();
                control.optimize(self, optim, lr, grads)
            }
        }

        impl<$g: $bound> burn::train::InferenceStep for $ty<$g> {
            type Input = $input;
            type Output = $output;

            fn step(&self, batch: $input) -> $output {
                self.run(batch, $crate::learner::Split::Valid)
            }
        }
    };
}

pub mod checkpoint;
pub mod classify;
pub mod control;
pub mod fit;
pub mod language;
pub mod metrics;
pub mod progress;
pub mod series;

pub use classify::ClassifierLearner;
pub use control::{Split, StepControl};
pub use fit::{FitOptions, Fitted, LrSchedule, TaskMetrics, fit};
pub use language::{LanguageLearner, TokenModel};
pub use series::{SeriesLearner, SeriesModel};
