//! The learner: burn-train's `SupervisedTraining` loop with what sequent adds — truncated BPTT
//! for language models, global-norm clipping, a NaN/Inf guard, atomic resumable checkpoints and a
//! progress bar.

pub mod checkpoint;
pub mod classify;
pub mod control;
pub mod fit;
pub mod language;
pub mod logs;
pub mod metrics;
pub mod progress;
pub mod series;
pub mod task;

pub use classify::Classification;
pub use control::{Split, StepControl};
pub use fit::{FitOptions, Fitted, LrSchedule, fit, train};
pub use language::{LanguageModeling, TokenModel};
pub use series::{Forecasting, SeriesModel};
pub use task::{Step, Task, TaskBatch, TaskLearner};
