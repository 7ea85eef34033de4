//! # sequent-models
//!
//! Recurrent layers at PyTorch parity (`Rnn`, `Lstm`, `Gru`, their single-step cells) and the
//! classic sequence models, as Burn modules with configs. The code is backend-agnostic: it uses
//! `Tensor<D>` and the run-time `Device` of Burn 0.22.
//!
//! ```no_run
//! use burn::tensor::{Device, Tensor, Distribution};
//! use sequent_models::recurrent::LstmConfig;
//!
//! let device = Device::flex();
//! let lstm = LstmConfig::new(8, 32).with_num_layers(2).with_bidirectional(true).init(&device);
//! let x = Tensor::<3>::random([4, 10, 8], Distribution::Normal(0.0, 1.0), &device); // [B, T, I]
//! let (out, state) = lstm.forward(x, None);
//! assert_eq!(out.dims(), [4, 10, 64]);                  // [B, T, D * H]
//! assert_eq!(state.hidden.dims(), [4, 4, 32]);          // [L * D, B, H], like PyTorch's h_n
//! ```

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
