//! Data sets: vocabularies, token windows, time series and seeded synthetic generators.

pub mod calendar;
pub mod covariates;
pub mod epoch;
pub mod synthetic;
pub mod text;
pub mod timeseries;
pub mod ts;
pub mod vocab;
