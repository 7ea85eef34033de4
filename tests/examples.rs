//! The `--quick` run of every example: its table has the expected rows and finite numbers.

use sequent::experiments::Table;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sequent-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the example program `name` (built by `cargo test` beside the test binaries) with
/// `--quick --out out` and reads back the table it wrote (`out/name.csv`).
/// The example program `name`, built beside the test.
fn example(name: &str) -> std::process::Command {
    let deps = std::env::current_exe().unwrap();
    let examples = deps.parent().unwrap().parent().unwrap().join("examples");
    std::process::Command::new(examples.join(name))
}

fn run_example(name: &str, out: &std::path::Path) -> Table {
    run_example_with(name, out, &[])
}

/// Runs example `name` with `--quick --out OUT` and the flags `extra`; reads its table.
fn run_example_with(name: &str, out: &std::path::Path, extra: &[&str]) -> Table {
    let status = example(name)
        .args(["--quick", "--out"])
        .arg(out)
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(status.success(), "{name} exited with {status}");
    let mut reader = csv::Reader::from_path(out.join(format!("{name}.csv"))).unwrap();
    let columns: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let mut table = Table::new(&columns.iter().map(String::as_str).collect::<Vec<_>>());
    for row in reader.records() {
        table.push(row.unwrap().iter().map(String::from).collect());
    }
    table
}

fn check(table: &Table, rows: &[&str], numeric: &[&str]) {
    let names: Vec<&str> = table.rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, rows, "{}", table.markdown());
    for i in 0..rows.len() {
        for c in numeric {
            let v = table.number(i, c);
            assert!(v.is_some_and(f64::is_finite), "row {i} column {c}: {:?}", v);
        }
    }
}

#[test]
fn sine_forecast_quick() {
    let out = scratch("sine");
    let t = run_example("sine_forecast", &out);
    check(
        &t,
        &[
            "ar",
            "markov",
            "latent",
            "rnn",
            "lstm",
            "gru",
            "gru, direct",
        ],
        &["one-step MSE", "k=1", "k=4", "k=16", "k=64"],
    );
    assert!(out.join("sine_forecast.md").is_file() && out.join("k_step.svg").is_file());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn births_forecast_quick() {
    let out = scratch("births");
    let t = run_example("births_forecast", &out);
    check(
        &t,
        &[
            "seasonal naive (t - 7)",
            "ar",
            "lstm",
            "gru",
            "gru, direct",
            "ar",
            "lstm",
            "gru",
            "gru, direct",
        ],
        &[
            "MAE h=1",
            "MAE / naive h=1",
            "MAE h=7",
            "MAE h=28",
            "MAE / naive h=28",
        ],
    );
    let covariates: Vec<&str> = t.rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(covariates[1..].iter().filter(|c| **c == "none").count(), 4);
    for file in ["births_forecast.csv", "forecast.svg", "horizons.svg"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn japanese_vowels_quick() {
    let out = scratch("vowels");
    let t = run_example("japanese_vowels", &out);
    check(&t, &["lstm", "gru"], &["test accuracy"]);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn regularisation_quick() {
    let out = scratch("regularisation");
    let t = run_example("regularisation", &out);
    check(
        &t,
        &[
            "none, lr 2e-3",
            "none, lr 1e-3",
            "dropout 0.25 between layers, weight drop 0.25",
            "input and recurrent dropout 0.2, zoneout 0.05",
        ],
        &[
            "best validation perplexity",
            "final validation perplexity",
            "final training perplexity",
        ],
    );
    for i in 0..t.rows.len() {
        let (best, last) = (
            t.number(i, "best validation perplexity").unwrap(),
            t.number(i, "final validation perplexity").unwrap(),
        );
        assert!(best <= last && best > 1.0, "{}", t.markdown());
    }
    for plot in ["valid_loss.svg", "train_loss.svg"] {
        assert!(out.join(plot).is_file(), "{plot}");
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn char_lm_quick() {
    let out = scratch("charlm");
    let t = run_example("char_lm", &out);
    check(
        &t,
        &[
            "1-gram", "2-gram", "3-gram", "4-gram", "5-gram", "rnn", "gru", "lstm",
        ],
        &["validation perplexity", "bits per char"],
    );
    // The neural models share one parameter budget to within a few percent.
    let p: Vec<f64> = (5..8).map(|i| t.number(i, "parameters").unwrap()).collect();
    for x in &p {
        assert!((x / p[2] - 1.0).abs() < 0.05, "{p:?}");
    }
    assert!(out.join("samples.md").is_file() && out.join("valid_loss.svg").is_file());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn long_dependencies_quick() {
    let out = scratch("longdeps");
    let t = run_example("long_dependencies", &out);
    let cells: Vec<&str> = t.rows.iter().map(|r| r[2].as_str()).collect();
    // The three cells, the LSTM ablation, and on the adding problem the layer-normalised LSTM.
    assert_eq!(
        cells,
        [
            "rnn", "lstm", "gru", "lstm", "lstm", "rnn", "lstm", "gru", "lstm"
        ]
    );
    let settings: Vec<&str> = t.rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(settings[1], "chrono, T_max = 10");
    assert_eq!(settings[3], "PyTorch init (ablation)");
    assert_eq!(settings[4], "layer norm, chrono, T_max = 10");
    assert_eq!(settings[6], "chrono, T_max = 15");
    for i in 0..t.rows.len() {
        for c in [
            "final error",
            "memoryless (same examples)",
            "error / memoryless",
        ] {
            assert!(
                t.number(i, c).is_some_and(f64::is_finite),
                "{}",
                t.markdown()
            );
        }
    }
    // The baselines are the analytic ones: 1/6 and 10 ln 8 / (T + 20) at T = 10.
    assert!((t.number(0, "baseline (analytic)").unwrap() - 1.0 / 6.0).abs() < 1e-4);
    assert!((t.number(5, "baseline (analytic)").unwrap() - 10.0 * 8f64.ln() / 30.0).abs() < 1e-4);
    // The memoryless error on 2,048 examples is near its expectation 1/6.
    assert!((t.number(0, "memoryless (same examples)").unwrap() - 1.0 / 6.0).abs() < 0.02);
    for plot in [
        "input_gradients.svg",
        "curves_adding_10.svg",
        "curves_copy_10.svg",
    ] {
        assert!(out.join(plot).is_file(), "{plot}");
    }
    // `--only` runs one task and length; its runs' outcomes are read back, not trained again.
    let again = run_example_with("long_dependencies", &out, &["--only", "copy:10"]);
    assert_eq!(again.rows, t.rows[5..], "{}", again.markdown());
    let bad = example("long_dependencies")
        .args(["--quick", "--out"])
        .arg(&out)
        .args(["--only", "copy:7"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert_eq!(
        stderr.trim(),
        "error: --only copy:7: not a task and length of this run (one of adding:10, copy:10)"
    );
    let _ = std::fs::remove_dir_all(out);
}
