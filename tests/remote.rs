//! Training on devices other processes serve, as across machines but on loopback: two
//! `sequent serve` processes each serve the CPU device over WebSocket (Burn's remote backend), one
//! trainer trains data parallel on both (`--devices ws://127.0.0.1:P,ws://127.0.0.1:Q`), and its
//! losses equal those of the same run on two local replicas of the CPU device (the served devices
//! run Burn's tensor operations, the local ones sequent's fused ops: equal within float
//! tolerance).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;

/// A `sequent serve` process, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `sequent serve --port 0` and reads the port it bound from its first line.
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sequent"))
            .args(["serve", "--port", "0", "--devices", "flex"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the server's first line {line:?}"));
        Self { child, port }
    }

    fn address(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every batch's loss, sorted (each step records one loss a device, in the order they finish,
/// and an epoch with an odd number of batches ends with a step on one device), and each epoch's
/// training and validation loss.
fn losses(run: &str) -> (Vec<f64>, Vec<f64>) {
    let read = |file: &str| std::fs::read_to_string(Path::new(run).join(file)).unwrap();
    let column = |csv: &str, at: usize| -> Vec<f64> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(at).unwrap().parse().unwrap())
            .collect()
    };
    let mut steps = column(&read("steps.csv"), 1);
    steps.sort_by(f64::total_cmp);
    let metrics = read("metrics.csv");
    let epochs = [column(&metrics, 1), column(&metrics, 2)].concat();
    (steps, epochs)
}

#[test]
fn training_on_served_devices_equals_training_on_local_ones() {
    let s = Scratch::new("remote");
    let data = s.file("tiny.txt", &tiny_text());
    let (a, b) = (Server::start(), Server::start());
    let train = |run: &str, devices: &str| {
        let mut args = vec!["train", "--model", "gru", "--data", &data, "--out", run];
        args.extend_from_slice(SMALL);
        args.extend_from_slice(&["--devices", devices]);
        ok(&args)
    };
    let (local, remote) = (s.path("local"), s.path("remote"));
    train(&local, "flex,flex");
    let served = format!("{},{}", a.address(), b.address());
    assert!(train(&remote, &served).contains("perplexity"));
    let ((local_steps, local_epochs), (remote_steps, remote_epochs)) =
        (losses(&local), losses(&remote));
    assert!(local_steps.len() >= 8, "{local_steps:?}");
    assert_eq!(local_steps.len(), remote_steps.len());
    for (l, r) in local_steps.iter().zip(&remote_steps) {
        assert!((l - r).abs() < 1e-4, "a batch: local {l}, remote {r}");
    }
    assert_eq!(local_epochs.len(), 4);
    for (l, r) in local_epochs.iter().zip(&remote_epochs) {
        assert!((l - r).abs() < 1e-4, "an epoch: local {l}, remote {r}");
    }
    // The trained model runs on a served device too.
    let generated = ok(&[
        "generate",
        "--run",
        &remote,
        "--prefix",
        "to",
        "--len",
        "5",
        "--device",
        &a.address(),
    ]);
    assert!(generated.starts_with("to"), "{generated}");
}

#[test]
fn an_unreachable_server_is_a_one_line_error() {
    let s = Scratch::new("remote-errors");
    let data = s.file("tiny.txt", &tiny_text());
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let device = format!("ws://127.0.0.1:{port}");
    let line = fails(&["train", "--data", &data, "--devices", &device]);
    assert!(
        line.contains(&format!("remote device `{device}`")),
        "{line}"
    );
    let line = fails(&["train", "--data", &data, "--devices", "ws://127.0.0.1:1/x"]);
    assert!(line.contains("is not an index"), "{line}");
}
