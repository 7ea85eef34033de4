//! # sequent
//!
//! Sequence models on Burn: the recurrent layers and classic models of [`models`]
//! (`sequent-models`), the data and training machinery of [`train`] (`sequent-train`), and the
//! `sequent` command line.

#![warn(missing_docs)]

pub mod bench;
pub mod catalog;
pub mod classify;
pub mod config;
pub mod data_source;
pub mod device;
pub mod experiments;
pub mod footprint;
pub mod memory;
pub mod plot;
pub mod run;
pub mod run_dir;
pub mod series;
pub mod text;

pub use sequent_models as models;
pub use sequent_train as train;
