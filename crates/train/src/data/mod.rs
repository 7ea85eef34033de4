//! Data sets: vocabularies and seeded synthetic generators.

pub mod synthetic;
pub mod timeseries;
pub mod vocab;
