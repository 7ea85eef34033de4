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

/// Owned arguments, for tables that mix them with built ones.
fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
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
    let with = |extra: &[&str], out: &str| {
        argv(
            &[
                &["train", "--model", "gru", "--data", &data, "--out", out],
                extra,
            ]
            .concat(),
        )
    };
    let resume = |extra: &[&str]| argv(&[&["train", "--out", &run, "--resume"], extra].concat());
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
    args.extend_from_slice(SMALL_SERIES);
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
    args.extend_from_slice(SMALL_SERIES);
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

#[test]
fn data_is_read_exactly_or_refused() {
    let s = Scratch::new("data");
    let text = s.file("tiny.txt", &tiny_text());
    let series = s.file("tiny.csv", &tiny_series());
    let cases = s.file("toy_TRAIN.ts", &tiny_cases(30));
    let rows = |row: &str| format!("t,value\n{}{row}\n", "1,2\n".repeat(60));
    let quoted = s.file("quoted.csv", &rows("2,\"1,000\""));
    let ragged = s.file("ragged.csv", &rows("2,3,4"));
    let short = s.file("short.csv", &rows("2"));
    let nan = s.file("nan.csv", &rows("2,NaN"));
    let inf = s.file("inf.csv", &rows("2,-inf"));
    let twice = s.file("twice.csv", "t,value,value\n1,2,3\n");
    let header_only = s.file("header.csv", "t,value\n");
    let latin1 = s.0.join("latin1.csv");
    std::fs::write(&latin1, b"t,value\n1,2\n2,\xe9\n").unwrap();
    let latin1 = latin1.display().to_string();
    let blank = s.file("blank.txt", " \n\t\n  ");
    let folder = s.path("folder.txt");
    std::fs::create_dir(&folder).unwrap();
    let fifo = s.path("fifo.txt");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let unlabelled = s.file("bare_TRAIN.ts", "@classLabel true a b\n@data\n1,2,3\n");
    let cut = s.file(
        "cut_TRAIN.ts",
        "@classLabel true a b\n@data\n1,2:3,4:a\n1,2:3,4\n",
    );
    let ts_nan = s.file("nan_TRAIN.ts", "@classLabel true a b\n@data\n1,NaN:a\n");
    let never = s.path("never");
    let train = |data: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "--model", "gru", "--data", data, "--out", &never];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect()
    };
    let value = ["--column", "value"];
    refused(&[
        (
            train(&quoted, &value),
            "`1,000` in column `value` is not a number",
        ),
        (
            train(&ragged, &value),
            "line 62: 3 cells where the header has 2",
        ),
        (
            train(&short, &value),
            "line 62: 1 cells where the header has 2",
        ),
        (
            train(&nan, &value),
            "line 62: `NaN` in column `value` is a missing value",
        ),
        (train(&inf, &value), "line 62: `-inf`"),
        (
            train(&twice, &value),
            "names column `value` 2 times (columns 2 and 3)",
        ),
        (train(&header_only, &value), "has no data rows"),
        (train(&latin1, &value), "line 3: not valid UTF-8"),
        (
            train(&series, &["--column", "value", "--column", "value"]),
            "--column `value` is given twice",
        ),
        (train(&series, &["--column", "nope"]), "no column `nope`"),
        (
            train(&text, &["--column", "value"]),
            "--column does not apply to text",
        ),
        (
            train(&series, &["--tokenizer", "word"]),
            "--tokenizer does not apply to a series",
        ),
        (
            train(&text, &["--missing", "drop"]),
            "--missing does not apply to text",
        ),
        (
            train(&series, &["--test-fraction", "0.2"]),
            "--test-fraction does not apply to a series",
        ),
        (
            train(&cases, &["--embedding", "8"]),
            "--embedding does not apply to labelled cases",
        ),
        (
            train(&text, &["--order", "4"]),
            "--order does not apply to model `gru`",
        ),
        (
            argv(&[
                "train", "--model", "ngram", "--data", &text, "--hidden", "8", "--out", &never,
            ]),
            "--hidden does not apply to model `ngram`",
        ),
        (train(&blank, &[]), "holds only whitespace"),
        (train(&folder, &[]), "is not a regular file"),
        (train(&fifo, &[]), "is not a regular file"),
        (
            train(&unlabelled, &[]),
            "line 3: `1,2,3` ends without a class label",
        ),
        (
            train(&cut, &[]),
            "line 4: `1,2:3,4` ends without a class label",
        ),
        (
            train(&ts_nan, &[]),
            "`NaN` in dimension 1 is not a finite number",
        ),
        (
            train(&text, &["--lr", "-1"]),
            "--lr must be positive, got -1",
        ),
        (
            train(&text, &["--dropout", "-0.5"]),
            "--dropout must be in [0, 1)",
        ),
        (
            train(&text, &["--valid-fraction", "1.5"]),
            "--valid-fraction",
        ),
        (train(&text, &["--hidden", "100000000"]), "GiB"),
        (train(&text, &["--embedding", "100000000"]), "GiB"),
        (argv(&["bench", "--batch", "100000000"]), "GiB"),
    ]);
    // None of them left a run directory behind.
    assert!(!Path::new(&never).exists());
    // The valid neighbours: missing values dropped or carried forward when asked...
    for policy in ["drop", "previous"] {
        let run = s.path(policy);
        let mut args = vec![
            "train", "--model", "gru", "--data", &nan, "--column", "value",
        ];
        args.extend_from_slice(&["--missing", policy, "--out", &run]);
        args.extend_from_slice(SMALL_SERIES);
        ok(&args);
    }
    // ...and a byte-order mark, CRLF and quoted numbers read as written.
    let mut clean = String::from("\u{feff}t,\"value\"\r\n");
    for line in tiny_series().lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        clean.push_str(&format!("{},\"{}\"\r\n", cells[0], cells[1]));
    }
    let clean = s.file("clean.csv", &clean);
    let run = s.path("clean");
    let mut args = vec![
        "train", "--model", "gru", "--data", &clean, "--column", "value", "--out", &run,
    ];
    args.extend_from_slice(SMALL_SERIES);
    ok(&args);
}

#[test]
fn a_run_works_from_anywhere_and_notices_changed_data() {
    let s = Scratch::new("moved");
    let data = s.file("tiny.txt", &tiny_text());
    let run = s.path("run");
    // Trained with a relative data path from the scratch directory...
    let status = Command::new(env!("CARGO_BIN_EXE_sequent"))
        .current_dir(&s.0)
        .args([
            "train", "--model", "gru", "--data", "tiny.txt", "--out", "run",
        ])
        .args(SMALL)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // ...and read back from elsewhere.
    ok(&["evaluate", "--run", &run]);
    ok(&["generate", "--run", &run, "--len", "5"]);
    std::fs::write(&data, tiny_text().replace("question", "answer")).unwrap();
    refused(&[
        (vec!["evaluate", "--run", &run], "changed since the run"),
        (
            vec!["train", "--out", &run, "--resume", "--epochs", "3"],
            "changed since the run",
        ),
        (
            vec!["generate", "--run", &run, "--temperature", "-1"],
            "temperature",
        ),
    ]);
    // Generation does not read the data, so it still works; restoring the data restores the rest.
    ok(&["generate", "--run", &run, "--len", "5"]);
    std::fs::write(&data, tiny_text()).unwrap();
    ok(&["evaluate", "--run", &run]);
}

/// A small tmpfs mounted over a directory, unmounted when dropped (root only).
struct Tmpfs(String);

impl Tmpfs {
    fn mount(dir: &str, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_string()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_training_with_the_last_checkpoint_kept() {
    let s = Scratch::new("full");
    let data = s.file("tiny.txt", &tiny_text());
    let disk = s.path("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, "700k") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let run = format!("{disk}/run");
    // About 250 kB of checkpoints an epoch; the disk fills in the third or fourth epoch.
    let mut args = vec!["train", "--model", "lstm", "--data", &data, "--out", &run];
    args.extend_from_slice(&[
        "--hidden",
        "64",
        "--embedding",
        "8",
        "--steps",
        "8",
        "--batch",
        "4",
    ]);
    args.extend_from_slice(&["--epochs", "50"]);
    let line = fails(&args);
    assert!(
        line.contains("No space left on device") && line.contains(&run),
        "{line}"
    );
    // The newest complete checkpoint reads back, and the run resumes from it once there is room.
    let ckpt = Path::new(&run).join("checkpoint");
    let epoch = latest_epoch(&ckpt).expect("a checkpoint was kept");
    sequent::train::learner::fit::resume_point(Path::new(&run))
        .expect("the kept checkpoint is complete");
    assert!(epoch >= 1);
}

#[test]
fn an_unwritable_file_in_the_run_stops_training_with_its_name() {
    let s = Scratch::new("unwritable");
    let data = s.file("tiny.txt", &tiny_text());
    let run = s.path("run");
    train_text(&data, &run, &[]);
    // A directory where the next checkpoint's temporary file goes: that write fails.
    let blocked = Path::new(&run).join("checkpoint/model-3.bpk.tmp");
    std::fs::create_dir(&blocked).unwrap();
    // Restoring a checkpoint opens the wgpu runtime in a build with the wgpu feature (Vulkan is
    // loaded right after the optimiser's record is read), and Mesa's driver writes an error line
    // where there is no runtime directory.
    let runtime = s.path("xdg");
    std::fs::create_dir(&runtime).unwrap();
    let env = [("XDG_RUNTIME_DIR", runtime.as_str())];
    let fails = |args: &[&str]| fails_with(&env, args);
    let line = fails(&["train", "--out", &run, "--resume", "--epochs", "4"]);
    assert!(line.contains("model-3.bpk.tmp"), "{line}");
    let ckpt = Path::new(&run).join("checkpoint");
    // Epoch 3 has no complete checkpoint. Checkpoints are written in the background, so epoch 4
    // may have finished (and been checkpointed) before training stopped.
    let kept = latest_epoch(&ckpt).expect("a checkpoint is kept");
    assert!(
        kept == 2 || kept == 4,
        "newest complete checkpoint: epoch {kept}"
    );
    sequent::train::learner::fit::resume_point(Path::new(&run)).expect("it reads back");
    // A directory where metrics.csv goes: the run ends with an error naming it.
    std::fs::remove_dir(&blocked).unwrap();
    std::fs::remove_file(Path::new(&run).join("metrics.csv")).unwrap();
    std::fs::create_dir(Path::new(&run).join("metrics.csv")).unwrap();
    let next = (kept + 1).to_string();
    let line = fails(&["train", "--out", &run, "--resume", "--epochs", &next]);
    assert!(line.contains("metrics.csv"), "{line}");
    // Once the path is free again the run continues from its last checkpoint.
    std::fs::remove_dir(Path::new(&run).join("metrics.csv")).unwrap();
    let last = (kept + 2).to_string();
    ok(&["train", "--out", &run, "--resume", "--epochs", &last]);
    assert_eq!(
        read(Path::new(&run).join("metrics.csv")).lines().count(),
        kept + 3
    );
}

#[test]
fn a_vocabulary_of_many_types_warns_before_training() {
    let s = Scratch::new("vocabulary");
    let words: String = (0..60_000).map(|i| format!("w{i} ")).collect();
    let data = s.file("words.txt", &words);
    let run = s.path("run");
    let out = sequent(&[
        "train",
        "--model",
        "ngram",
        "--order",
        "2",
        "--tokenizer",
        "word",
        "--data",
        &data,
        "--out",
        &run,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr.find("warning: a vocabulary of 60001 types");
    let training = stderr.find("ngram on");
    assert!(
        warning.is_some() && warning < training,
        "no warning before training:\n{stderr}"
    );
}
