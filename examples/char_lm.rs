//! `cargo run --release --example char_lm -- [--device D] [--seed S] [--quick] [--out DIR]`:
//! see [`sequent::experiments::char_lm`] for what it measures; the full run's table is in
//! `docs/results.md`.

fn main() -> std::process::ExitCode {
    sequent::experiments::main("char_lm", sequent::experiments::char_lm::run)
}
