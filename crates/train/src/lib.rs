//! # sequent-train
//!
//! Data for sequent's sequence models: vocabularies and synthetic tasks with known baselines.
//! The learner loop (burn-train, truncated BPTT, checkpoints) builds on these.

pub mod clip;
pub mod data;
