//! `cargo run --release --example births_forecast -- [--device D] [--seed S] [--quick] [--out DIR]`:
//! see [`sequent::experiments::births`] for what it measures; the full run's table is in
//! `docs/results.md`.

fn main() -> std::process::ExitCode {
    sequent::experiments::main("births_forecast", sequent::experiments::births::run)
}
