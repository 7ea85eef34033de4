//! `cargo run --release --example long_dependencies -- [--device D] [--seed S] [--quick] [--out DIR]`:
//! see [`sequent::experiments::long_deps`] for what it measures; the full run's table is in
//! `docs/results.md`.

fn main() -> std::process::ExitCode {
    sequent::experiments::main("long_dependencies", sequent::experiments::long_deps::run)
}
