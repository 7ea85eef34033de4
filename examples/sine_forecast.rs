//! `cargo run --release --example sine_forecast -- [--device D] [--seed S] [--quick] [--out DIR]`:
//! see [`sequent::experiments::sine`] for what it measures; the full run's table is in
//! `docs/results.md`.

fn main() -> std::process::ExitCode {
    sequent::experiments::main("sine_forecast", sequent::experiments::sine::run)
}
