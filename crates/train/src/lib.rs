//! # sequent-train
//!
//! Data and training for sequent's sequence models: vocabularies, token windows (sequential and
//! random partitions), time series, synthetic tasks with known baselines, and a learner built on
//! burn-train with truncated BPTT, global-norm clipping, a NaN guard and resumable checkpoints.

#![warn(missing_docs)]

pub mod clip;
pub mod data;
pub mod error;
pub mod io;
pub mod learner;
pub mod optim;
