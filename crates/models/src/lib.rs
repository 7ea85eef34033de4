#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod classical;
pub mod device;
pub mod error;
pub mod forecast;
pub mod generate;
pub mod heads;
mod host;
pub mod loss;
pub mod recurrent;
pub mod rng;
pub mod time_major;

pub use error::{ErrorSource, Result, SequentError};
pub use recurrent::{Gru, GruConfig, Lstm, LstmConfig, RecurrentState, Rnn, RnnConfig};
