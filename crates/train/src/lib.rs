#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod clip;
pub mod data;
pub mod error;
pub mod io;
pub mod learner;
pub mod optim;
