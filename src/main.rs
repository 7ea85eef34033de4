//! The `sequent` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod demo;

#[derive(Parser)]
#[command(
    name = "sequent",
    version,
    about = "Sequence models on Burn: RNN, LSTM, GRU and the classics"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a small character-level LSTM on the shipped Shakespeare text, then sample from it
    /// (what `sequent` does with no subcommand).
    Demo {
        /// Text file to learn.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/text/shakespeare.txt"))]
        data: PathBuf,
        /// Training time in seconds.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// Device: flex, ndarray, wgpu or cuda (those compiled in).
        #[arg(long, default_value = sequent::device::default_name())]
        device: String,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Characters to generate.
        #[arg(long, default_value_t = 400)]
        generate: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // No subcommand: the demo with its defaults.
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["sequent", "demo"])
            .command
            .expect("demo parses"),
    };
    let result = match command {
        Command::Demo {
            data,
            seconds,
            device,
            seed,
            out,
            generate,
        } => sequent::device::parse(&device).and_then(|d| {
            let opts = demo::DemoOptions {
                data,
                time: Duration::from_secs(seconds),
                seed,
                out,
                generate,
            };
            demo::run(&opts, &d)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
