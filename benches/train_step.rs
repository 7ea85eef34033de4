//! `cargo bench --bench train_step [-- DEVICE [STEPS]]`: training-step throughput of the reference
//! char-LM workload (2 x 256, B = 32, T = 35, V = 64, Adam) for sequent's RNN, LSTM and GRU
//! against `burn::nn`'s on the same device, measured side by side in one run (sequent's model folds
//! its embedding into the first layer, as `LanguageModel` does). `sequent bench` covers the other
//! workloads (inference, streaming, other widths and lengths, PyTorch, `--no-fold`).

use sequent::bench::{Columns, Kind, Mode, markdown_header, markdown_row, run, workloads};
use sequent_models::recurrent::{Engine, Kernels};

fn main() {
    sequent::memory::retain_freed_memory();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let name = args
        .first()
        .map(String::as_str)
        .unwrap_or(sequent::device::default_name());
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let device = match sequent::device::parse(name) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "device {name}; {steps} timed steps\n{}",
        markdown_header(
            &Columns::default(),
            Kernels::Fused.engine(&device) == Engine::Cube
        )
    );
    let all = workloads(&[Mode::Train], &Kind::ALL, &[256], &[35], (2, false), 32);
    if let Err(e) = run(&all, &device, (steps, 1), &Columns::default(), |w, m| {
        println!("{}", markdown_row(w, m))
    }) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
