//! The `sequent` binary against bad inputs and faults: each one ends with exit code 1 or 2, one
//! clear line on standard error and no panic, and leaves the run directory consistent (the
//! commands that read it still work) or never creates it. The valid input next to each bad one
//! still works.

mod common;

use common::*;
use sequent::train::learner::checkpoint::latest_epoch;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs every `(arguments, expected words)` case, each of which must fail with one error line
/// holding the words.
fn refused<A: AsRef<str>>(cases: &[(Vec<A>, &str)]) {
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let line = fails(&args);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
}

/// `extra`, then each flag of [`SMALL`] that `extra` does not give.
fn small<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = extra.to_vec();
    for pair in SMALL.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend_from_slice(pair);
        }
    }
    args
}

/// Trains a small GRU language model on `data` into `run` (`extra` flags added).
fn train_text(data: &str, run: &str, extra: &[&str]) -> String {
    let mut args = vec!["train", "--model", "gru", "--data", data, "--out", run];
    args.extend(small(extra));
    ok(&args)
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

#[test]
fn a_run_directory_holds_one_run() {
    let s = Scratch::new("one-run");
    let data = s.file("tiny.txt", &tiny_text());
    let other = s.file("other.txt", &tiny_text().to_uppercase());
    let run = s.path("run");
    train_text(&data, &run, &[]);
    let config = read(Path::new(&run).join("config.json"));
    let mine = s.path("mine");
    std::fs::create_dir(&mine).unwrap();
    s.file("mine/notes.txt", "keep me");
    let file = s.file("plain.txt", "not a directory");
    let nowhere = s.path("nowhere");
    let owned = |parts: &[&str]| -> Vec<String> { parts.iter().map(|p| p.to_string()).collect() };
    let with = |extra: &[&str], out: &str| {
        owned(
            &[
                &["train", "--model", "gru", "--data", &data, "--out", out],
                extra,
            ]
            .concat(),
        )
    };
    let resume = |extra: &[&str]| owned(&[&["train", "--out", &run, "--resume"], extra].concat());
    refused(&[
        (with(&[], &run), "already holds a run"),
        (with(&[], &mine), "holds no sequent run"),
        (with(&["--overwrite"], &mine), "holds no sequent run"),
        (with(&[], &file), "is not a directory"),
        (with(&["--resume"], &nowhere), "no run to resume"),
        (
            with(&["--resume", "--overwrite"], &run),
            "exclude each other",
        ),
        (
            resume(&["--hidden", "9", "--epochs", "3"]),
            "--hidden 9 differs from the run's 8",
        ),
        (resume(&["--lr", "0.5", "--epochs", "3"]), "--lr"),
        (
            resume(&["--model", "rnn", "--epochs", "3"]),
            "--model \"rnn\"",
        ),
        (resume(&["--seed", "7", "--epochs", "3"]), "--seed"),
        (resume(&["--batch", "2", "--epochs", "3"]), "--batch"),
        (resume(&["--steps", "4", "--epochs", "3"]), "--steps"),
        (
            resume(&["--tokenizer", "word", "--epochs", "3"]),
            "--tokenizer",
        ),
        (resume(&["--data", &other, "--epochs", "3"]), "--data"),
        (resume(&["--epochs", "1"]), "has finished epoch 2"),
        (resume(&[]), "pass --epochs above 2"),
    ]);
    // Nothing was touched: the run reads back as before, and the user's files are where they were.
    assert_eq!(read(Path::new(&run).join("config.json")), config);
    ok(&["evaluate", "--run", &run]);
    assert_eq!(read(Path::new(&mine).join("notes.txt")), "keep me");
    assert!(!Path::new(&nowhere).exists());
    // The valid neighbours: resuming with its own settings, and replacing the run.
    ok(&[
        "train", "--out", &run, "--resume", "--hidden", "8", "--epochs", "3",
    ]);
    assert_eq!(read(Path::new(&run).join("metrics.csv")).lines().count(), 4);
    train_text(
        &data,
        &run,
        &["--overwrite", "--hidden", "6", "--epochs", "1"],
    );
    assert!(read(Path::new(&run).join("config.json")).contains("\"hidden\": 6"));
    assert_eq!(read(Path::new(&run).join("metrics.csv")).lines().count(), 2);
    let checkpoints: Vec<String> = std::fs::read_dir(Path::new(&run).join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        checkpoints
            .iter()
            .all(|c| c.ends_with("-1.bpk") || c.ends_with("-1.json")),
        "the old run's checkpoints survived: {checkpoints:?}"
    );
    ok(&["generate", "--run", &run, "--len", "5"]);
}

#[test]
fn settings_files_are_checked_like_flags() {
    let s = Scratch::new("settings");
    let data = s.file("tiny.txt", &tiny_text());
    let run = s.path("run");
    train_text(&data, &run, &[]);
    let array = s.file("array.json", "[]");
    let number = s.file("number.json", "3");
    let null = s.file("null.json", "null");
    let typo = s.file("typo.toml", "hiden = 3\n");
    let wrong_type = s.file("type.json", "{\"hidden\": \"many\"}");
    refused(&[
        (
            vec!["train", "--config", &array],
            "must be a JSON object of settings, not an array",
        ),
        (vec!["train", "--config", &number], "not a number"),
        (vec!["train", "--config", &null], "not null"),
        (vec!["train", "--config", &typo], "hiden"),
        (vec!["train", "--config", &wrong_type], "line 1"),
    ]);
    // A run's config.json edited by hand is validated like the flags when it is read back.
    let path = Path::new(&run).join("config.json");
    let saved = read(&path);
    for (from, to, says) in [
        (
            "\"hidden\": 8",
            "\"hidden\": 0",
            "--hidden must be at least 1",
        ),
        (
            "\"layers\": 1",
            "\"layers\": 0",
            "--layers must be at least 1",
        ),
        ("\"steps\": 8", "\"steps\": 0", "--steps must be at least 1"),
        ("\"model\": \"gru\"", "\"model\": \"gpt\"", "unknown model"),
        ("{", "[", "config.json"),
    ] {
        assert!(saved.contains(from), "{saved}");
        std::fs::write(&path, saved.replacen(from, to, 1)).unwrap();
        for command in ["generate", "evaluate"] {
            let line = fails(&[command, "--run", &run]);
            assert!(
                line.contains(says) && line.contains("config.json"),
                "{line}"
            );
        }
        let line = fails(&["train", "--out", &run, "--resume", "--epochs", "3"]);
        assert!(line.contains(says), "{line}");
    }
    std::fs::write(&path, &saved).unwrap();
    ok(&["evaluate", "--run", &run]);
}

#[test]
fn each_command_names_the_run_it_needs() {
    let s = Scratch::new("kinds");
    let text = s.file("tiny.txt", &tiny_text());
    let series = s.file("tiny.csv", &tiny_series());
    let cases = s.file("toy_TRAIN.ts", &tiny_cases(30));
    let (lm, forecaster, classifier) = (s.path("lm"), s.path("series"), s.path("classes"));
    train_text(&text, &lm, &[]);
    let mut args = vec![
        "train",
        "--model",
        "gru",
        "--data",
        &series,
        "--out",
        &forecaster,
    ];
    args.extend_from_slice(SMALL);
    ok(&args);
    let mut args = vec![
        "train",
        "--model",
        "gru",
        "--data",
        &cases,
        "--out",
        &classifier,
    ];
    args.extend_from_slice(SMALL);
    ok(&args);
    refused(&[
        (
            vec!["generate", "--run", &forecaster],
            "is a forecasting run; `sequent generate` does not apply to it, `sequent forecast` or `sequent evaluate` does",
        ),
        (
            vec!["forecast", "--run", &lm],
            "is a language-model run; `sequent forecast` does not apply to it, `sequent generate` or `sequent evaluate` does",
        ),
        (
            vec!["generate", "--run", &classifier],
            "is a classification run; `sequent generate` does not apply to it, `sequent evaluate` does",
        ),
        (
            vec!["forecast", "--run", &classifier],
            "is a classification run; `sequent forecast` does not apply to it, `sequent evaluate` does",
        ),
    ]);
    for run in [&lm, &forecaster, &classifier] {
        ok(&["evaluate", "--run", run]);
    }
}

/// Waits until `run` has a complete checkpoint of `epoch` or a later one (false after a minute,
/// or if `child` has exited).
fn wait_for_checkpoint(run: &Path, epoch: usize, child: &mut std::process::Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none() {
        if latest_epoch(&run.join("checkpoint")).is_some_and(|e| e >= epoch) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn one_process_trains_a_directory_and_a_killed_run_resumes_its_history() {
    let s = Scratch::new("kill");
    let data = s.file("tiny.txt", &tiny_text().repeat(4));
    let (run, full) = (s.path("run"), s.path("full"));
    let mut args = vec!["train", "--model", "gru", "--data", &data, "--out", &run];
    args.extend(small(&["--epochs", "500"]));
    let mut first = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for_checkpoint(Path::new(&run), 2, &mut first),
        "no checkpoint of epoch 2 while training"
    );
    // While it trains, a second trainer and a reader are turned away.
    refused(&[
        (args.clone(), "already holds a run"),
        (
            [&args[..], &["--overwrite"]].concat(),
            "another sequent process is using",
        ),
        (
            vec!["train", "--out", &run, "--resume", "--epochs", "600"],
            "another sequent process is using",
        ),
        (
            vec!["evaluate", "--run", &run],
            "is being trained by another sequent process",
        ),
    ]);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let trained =
        sequent_train::learner::checkpoint::latest_epoch(&Path::new(&run).join("checkpoint"))
            .expect("a checkpoint survives the kill");
    let epochs = (trained + 2).to_string();
    ok(&["train", "--out", &run, "--resume", "--epochs", &epochs]);
    let mut args = vec!["train", "--model", "gru", "--data", &data, "--out", &full];
    args.extend(small(&["--epochs", &epochs]));
    ok(&args);
    // The resumed run's history is the whole run's, and equal to the uninterrupted run's.
    for file in ["metrics.csv", "steps.csv"] {
        let (resumed, whole) = (
            read(Path::new(&run).join(file)),
            read(Path::new(&full).join(file)),
        );
        assert_eq!(resumed.lines().count(), whole.lines().count(), "{file}");
        for (a, b) in resumed.lines().zip(whole.lines()).skip(1) {
            let values =
                |l: &str| -> Vec<f64> { l.split(',').map(|v| v.parse().unwrap()).collect() };
            for (x, y) in values(a).iter().zip(values(b)) {
                assert!((x - y).abs() < 1e-5, "{file}: {a} vs {b}");
            }
        }
    }
    assert_eq!(
        read(Path::new(&run).join("metrics.csv")).lines().count(),
        trained + 3
    );
}
