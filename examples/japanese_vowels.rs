//! `cargo run --release --example japanese_vowels -- [--device D] [--seed S] [--quick] [--out DIR]`:
//! see [`sequent::experiments::vowels`] for what it measures; the full run's table is in
//! `docs/results.md`.

fn main() -> std::process::ExitCode {
    sequent::experiments::main("japanese_vowels", sequent::experiments::vowels::run)
}
