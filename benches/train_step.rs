//! `cargo bench --bench train_step [-- DEVICE [STEPS]]`: training-step throughput of the reference
//! char-LM workload (2 x 256, B = 32, T = 35, V = 64, Adam) for sequent's RNN, LSTM and GRU
//! against `burn::nn`'s on the same device, measured side by side in one run.

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let name = args
        .first()
        .map(String::as_str)
        .unwrap_or(sequent::device::default_name());
    let steps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    match sequent::bench::train_table(name, steps) {
        Ok(table) => print!("{table}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
