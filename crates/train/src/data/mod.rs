//! Data sets: vocabularies and seeded synthetic generators.

pub mod synthetic;
pub mod vocab;
