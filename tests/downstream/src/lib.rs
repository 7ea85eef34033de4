//! `crates/models/README.md` as the documentation of a crate outside the workspace's own, which
//! depends on `burn` and `sequent-models` (default features off but `flex`) as that page says:
//! `cargo test --workspace` compiles and runs the page's program as this crate's doctest.
#![doc = include_str!("../../../crates/models/README.md")]
