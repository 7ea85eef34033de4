//! `cargo bench --bench train_step [-- DEVICE [STEPS]]`: training-step throughput of the reference
//! char-LM workload (2 x 256, B = 32, T = 35, V = 64, Adam) for sequent's RNN, LSTM and GRU
//! against `burn::nn`'s on the same device, measured side by side in one run.

use sequent::bench::{Implementation, Kind, Workload, train_tokens_per_s};

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
    let device = match sequent::device::parse(name) {
        Ok(d) => d.autodiff(),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "training step, char-LM 2 x 256, B = 32, T = 35, V = 64, Adam; device {name}; {steps} timed steps"
    );
    println!("| kind | sequent tok/s | burn::nn tok/s | sequent / burn::nn |");
    println!("|---|---|---|---|");
    for kind in Kind::ALL {
        let w = Workload::w1(kind);
        let ours = train_tokens_per_s(Implementation::Sequent, &w, &device, steps);
        let theirs = train_tokens_per_s(Implementation::BurnNn, &w, &device, steps);
        println!(
            "| {} | {ours:.0} | {theirs:.0} | {:.2}x |",
            kind.name(),
            ours / theirs
        );
    }
}
