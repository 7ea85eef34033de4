//! The `sequent` binary end to end on tiny data: every subcommand and every model name runs and
//! writes its run directory; bad input gives a one-line error and a non-zero exit, never a panic.

#[path = "../crates/models/tests/common/trials.rs"]
mod trials;

mod common;

use common::*;
use std::path::Path;

fn text_models_train_generate_and_evaluate() {
    let s = Scratch::new("text");
    let data = s.file("tiny.txt", &tiny_text());
    for model in ["rnn", "lstm", "gru", "markov", "ngram"] {
        let run = s.path(model);
        let mut args = vec!["train", "--model", model, "--data", &data, "--out", &run];
        // The n-gram model has none of the neural settings.
        if model != "ngram" {
            args.extend_from_slice(SMALL);
        }
        args.extend_from_slice(&["--test-fraction", "0.1"]);
        let out = ok(&args);
        assert!(out.contains("perplexity"), "{out}");
        exists(&run, &["config.json", "vocab.json", "sample.txt"]);
        if model != "ngram" {
            exists(
                &run,
                &[
                    "model.bpk",
                    "metrics.csv",
                    "steps.csv",
                    "loss.svg",
                    "steps.svg",
                ],
            );
            let metrics = std::fs::read_to_string(Path::new(&run).join("metrics.csv")).unwrap();
            assert_eq!(metrics.lines().count(), 3, "{metrics}");
            // burn-train's logs carry the metrics sequent adds.
            exists(
                &run,
                &[
                    "valid/epoch-2/Bits_per_char.log",
                    "valid/epoch-2/Perplexity.log",
                ],
            );
        }
        let generated = ok(&[
            "generate", "--run", &run, "--prefix", "to be", "--len", "20",
        ]);
        assert!(generated.starts_with("to be"), "{generated}");
        // Seeded sampling is reproducible.
        let again = ok(&[
            "generate", "--run", &run, "--prefix", "to be", "--len", "20",
        ]);
        assert_eq!(generated, again);
        // A prefix outside the vocabulary is read as <unk>, with a note saying so.
        for (prefix, note) in [("to be\u{1F600}", true), ("to be", false)] {
            let out = sequent(&["generate", "--run", &run, "--prefix", prefix, "--len", "5"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert_eq!(
                stderr.contains("1 of the prefix's"),
                note,
                "{prefix}: {stderr}"
            );
        }
        let scores = ok(&["evaluate", "--run", &run]);
        assert!(
            scores.contains("validation") && scores.contains("test"),
            "{scores}"
        );
    }
}

fn series_models_train_forecast_and_evaluate() {
    let s = Scratch::new("series");
    let data = s.file("tiny.csv", &tiny_series());
    for model in ["ar", "markov", "latent", "rnn", "lstm", "gru"] {
        let run = s.path(model);
        let mut args = vec![
            "train", "--model", model, "--data", &data, "--column", "value", "--out", &run,
        ];
        args.extend_from_slice(SMALL_SERIES);
        let out = ok(&args);
        assert!(out.contains("k-step-ahead MSE"), "{out}");
        exists(
            &run,
            &[
                "normalizer.json",
                "model.bpk",
                "metrics.csv",
                "forecast.csv",
                "forecast.svg",
                "loss.svg",
                "valid/epoch-2/MSE.log",
                "valid/epoch-2/MAE.log",
            ],
        );
        let future = ok(&["forecast", "--run", &run, "--steps", "5"]);
        assert_eq!(future.lines().filter(|l| l.starts_with('+')).count(), 5);
        exists(&run, &["future.csv", "future.svg"]);
        assert!(ok(&["evaluate", "--run", &run]).contains("one-step MSE"));
    }
}

/// 120 days of a weekly series with a temperature and a shop column, then 6 future days whose
/// value is empty.
fn series_with_covariates() -> String {
    let mut csv = String::from("date,value,temp,shop\n");
    let start = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    for t in 0..126 {
        let (temp, shop) = (10.0 + (t % 30) as f64, ["a", "b"][t % 2]);
        let value = if t < 120 {
            format!("{}", (t % 7) as f64 + 0.05 * temp)
        } else {
            String::new()
        };
        let date = start + chrono::Days::new(t as u64);
        csv.push_str(&format!("{date},{value},{temp},{shop}\n"));
    }
    csv
}

fn series_covariates_are_saved_and_used_to_forecast() {
    let s = Scratch::new("covariates");
    let data = s.file("shop.csv", &series_with_covariates());
    let run = s.path("gru");
    let mut args = vec![
        "train", "--model", "gru", "--data", &data, "--column", "value",
    ];
    args.extend_from_slice(&["--covariate", "temp", "--covariate", "shop:onehot"]);
    args.extend_from_slice(&[
        "--covariate",
        "calendar:weekday",
        "--covariate",
        "calendar:us_holiday",
    ]);
    args.extend_from_slice(&["--date", "date", "--out", &run]);
    args.extend_from_slice(SMALL_SERIES);
    assert!(ok(&args).contains("k-step-ahead MSE"));
    exists(&run, &["covariates.json", "forecast.csv"]);
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(Path::new(&run).join(file)).unwrap()).unwrap()
    };
    let config = read("config.json");
    assert_eq!(
        config["covariates"],
        serde_json::json!([
            "temp",
            "shop:onehot",
            "calendar:weekday",
            "calendar:us_holiday"
        ])
    );
    assert_eq!(config["date"], serde_json::json!(["date"]));
    assert_eq!(
        read("covariates.json")["covariates"][1][1]["one_hot"]["categories"],
        serde_json::json!(["a", "b"])
    );
    // The file knows 6 future days of the CSV covariates.
    let future = ok(&["forecast", "--run", &run, "--steps", "6"]);
    assert_eq!(future.lines().filter(|l| l.starts_with('+')).count(), 6);
    let err = fails(&["forecast", "--run", &run, "--steps", "7"]);
    assert!(
        err.contains("covariate `temp` is known for 126 rows") && err.contains("needs 127"),
        "{err}"
    );
    assert!(ok(&["evaluate", "--run", &run]).contains("one-step MSE"));
    // Calendar covariates continue past the file.
    let calendar = s.path("ar");
    let mut args = vec![
        "train", "--model", "ar", "--data", &data, "--column", "value",
    ];
    args.extend_from_slice(&[
        "--covariate",
        "calendar:weekday",
        "--date",
        "date",
        "--out",
        &calendar,
    ]);
    args.extend_from_slice(SMALL_SERIES);
    ok(&args);
    let future = ok(&["forecast", "--run", &calendar, "--steps", "20"]);
    assert_eq!(future.lines().filter(|l| l.starts_with('+')).count(), 20);
    // The shipped births with the calendar from its year, month and day columns.
    let births = s.path("births");
    let mut args = vec![
        "train", "--model", "latent", "--data", "births", "--epochs", "1",
    ];
    args.extend_from_slice(&[
        "--covariate",
        "calendar:weekday",
        "--covariate",
        "calendar:month",
    ]);
    args.extend_from_slice(&[
        "--date",
        "year,month,date_of_month",
        "--hidden",
        "8",
        "--out",
        &births,
    ]);
    assert!(ok(&args).contains("k-step-ahead MSE"));
}

fn classifiers_train_and_evaluate_on_ts_files() {
    let s = Scratch::new("classes");
    let train = s.file("toy_TRAIN.ts", &tiny_cases(40));
    s.file("toy_TEST.ts", &tiny_cases(12));
    for model in ["rnn", "lstm", "gru"] {
        let run = s.path(model);
        let mut args = vec!["train", "--model", model, "--data", &train, "--out", &run];
        args.extend_from_slice(SMALL_SERIES);
        let out = ok(&args);
        assert!(
            out.contains("test accuracy") && out.contains("confusion"),
            "{out}"
        );
        exists(
            &run,
            &[
                "model.bpk",
                "metrics.csv",
                "loss.svg",
                "confusion.csv",
                "classes.json",
            ],
        );
        assert!(ok(&["evaluate", "--run", &run]).contains("test accuracy"));
    }
    let bad = s.file("bad.ts", "@classLabel true a\n@data\n1,2:x\n");
    assert!(fails(&["train", "--data", &bad]).contains("line 3"));
    assert!(fails(&["train", "--model", "ar", "--data", &train]).contains("does not classify"));
}

fn config_file_and_resume() {
    let s = Scratch::new("config");
    let data = s.file("tiny.txt", &tiny_text());
    let config = s.file(
        "run.toml",
        &format!(
            "model = \"gru\"\ndata = \"{data}\"\nhidden = 8\nembedding = 8\nsteps = 8\nbatch = 4\nepochs = 1\n"
        ),
    );
    let run = s.path("run");
    ok(&["train", "--config", &config, "--out", &run]);
    let saved = std::fs::read_to_string(Path::new(&run).join("config.json")).unwrap();
    assert!(
        saved.contains("\"gru\"") && saved.contains("\"hidden\": 8"),
        "{saved}"
    );
    // Flags override the file; --resume continues to epoch 2 from the checkpoint of epoch 1.
    let out = ok(&[
        "train", "--config", &config, "--out", &run, "--resume", "--epochs", "2",
    ]);
    assert!(out.contains("perplexity"));
    let metrics = std::fs::read_to_string(Path::new(&run).join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    // Early stopping: at a learning rate this high the validation loss soon stops improving.
    let early = s.path("early");
    let mut args = vec![
        "train", "--config", &config, "--out", &early, "--epochs", "30",
    ];
    args.extend_from_slice(&["--lr", "0.5", "--patience", "1"]);
    ok(&args);
    let metrics = std::fs::read_to_string(Path::new(&early).join("metrics.csv")).unwrap();
    let valid: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(valid.len() < 30, "{metrics}");
    let best_before = valid[..valid.len() - 1]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    assert!(valid[valid.len() - 1] >= best_before, "{metrics}");
    let bad = s.file("bad.json", "{\"model\": \"gru\", \"hiden\": 3}");
    assert!(fails(&["train", "--config", &bad]).contains("hiden"));
}

/// `--devices` trains data parallel (here on the CPU device twice), resumes on other devices
/// and does not save them with the run's settings.
fn several_devices_train_and_resume() {
    let s = Scratch::new("devices");
    let text = s.file("tiny.txt", &tiny_text());
    let run = s.path("lstm");
    let train = |epochs: &str, devices: &[&str]| {
        let mut args = vec!["train", "--model", "lstm", "--data", &text, "--out", &run];
        args.extend_from_slice(&["--hidden", "8", "--embedding", "8", "--steps", "8"]);
        args.extend_from_slice(&["--batch", "4", "--epochs", epochs]);
        if epochs != "1" {
            args.push("--resume");
        }
        args.extend_from_slice(devices);
        ok(&args)
    };
    assert!(train("1", &["--devices", "flex,flex"]).contains("perplexity"));
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&run).join("config.json")).unwrap(),
    )
    .unwrap();
    assert!(saved.get("devices").is_none(), "{saved}");
    // Resumed on one device, then on three: the epochs follow on.
    train("2", &[]);
    train("3", &["--devices", "flex,flex,flex"]);
    let metrics = std::fs::read_to_string(Path::new(&run).join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "{metrics}");
    assert!(ok(&["evaluate", "--run", &run]).contains("validation"));

    let series = s.file("tiny.csv", &tiny_series());
    let run = s.path("gru");
    let mut args = vec![
        "train", "--model", "gru", "--data", &series, "--column", "value", "--out", &run,
    ];
    args.extend_from_slice(SMALL_SERIES);
    args.extend_from_slice(&["--devices", "flex,flex"]);
    let out = ok(&args);
    assert!(out.contains("k-step-ahead MSE"), "{out}");
}

/// The recurrent layers' options beyond PyTorch's train, are saved with the run and are used by
/// `generate` and `evaluate`.
fn regularised_layers_train_and_keep_their_settings() {
    let s = Scratch::new("regularised");
    let data = s.file("tiny.txt", &tiny_text());
    let run = s.path("lstm");
    let mut args = vec!["train", "--model", "lstm", "--data", &data, "--out", &run];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--proj-size",
        "4",
        "--layer-norm",
        "--input-dropout",
        "0.1",
        "--recurrent-dropout",
        "0.2",
        "--weight-drop",
        "0.3",
        "--zoneout",
        "0.1",
    ]);
    assert!(ok(&args).contains("perplexity"));
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&run).join("config.json")).unwrap(),
    )
    .unwrap();
    for (key, value) in [
        ("proj_size", serde_json::json!(4)),
        ("layer_norm", serde_json::json!(true)),
        ("input_dropout", serde_json::json!(0.1)),
        ("recurrent_dropout", serde_json::json!(0.2)),
        ("weight_drop", serde_json::json!(0.3)),
        ("zoneout", serde_json::json!(0.1)),
    ] {
        assert_eq!(config[key], value, "{key}");
    }
    let generated = ok(&["generate", "--run", &run, "--prefix", "to", "--len", "10"]);
    assert!(generated.starts_with("to"), "{generated}");
    assert!(ok(&["evaluate", "--run", &run]).contains("validation"));
}

fn bad_input_is_a_one_line_error() {
    let s = Scratch::new("errors");
    let text = s.file("tiny.txt", &tiny_text());
    let empty = s.file("empty.txt", "");
    let series = s.file("tiny.csv", &tiny_series());
    let shop = s.file("shop.csv", &series_with_covariates());
    let out = s.path("out");
    let on_shop = |more: &[&'static str]| {
        let mut args = vec![
            "train",
            "--model",
            "ar",
            "--data",
            shop.as_str(),
            "--column",
            "value",
        ];
        args.extend_from_slice(&["--out", out.as_str()]);
        args.extend_from_slice(more);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (on_shop(&["--covariate", "nosuch"]), "no column `nosuch`"),
        (
            on_shop(&["--covariate", "shop"]),
            "`a` in covariate column `shop` is not a finite number",
        ),
        (
            on_shop(&["--covariate", "calendar:weekday"]),
            "calendar covariates need the date",
        ),
        (
            on_shop(&["--covariate", "calendar:weekday", "--date", "temp"]),
            "`10` is not a date",
        ),
        (
            on_shop(&["--covariate", "calendar:easter"]),
            "unknown calendar covariate `easter`",
        ),
        (
            vec!["train", "--data", &text, "--covariate", "temp"],
            "--covariate does not apply to text",
        ),
        (
            vec![
                "train",
                "--model",
                "gru",
                "--data",
                "sine",
                "--covariate",
                "x",
                "--out",
                &out,
            ],
            "the sine series has no columns",
        ),
        (
            vec!["train", "--model", "transformer", "--data", &text],
            "unknown model",
        ),
        (
            vec!["train", "--device", "tpu", "--data", &text],
            "unknown device",
        ),
        (
            vec!["train", "--devices", "flex,tpu", "--data", &text],
            "unknown device `tpu`",
        ),
        (
            vec!["train", "--devices", "cuda:first", "--data", &text],
            "an index goes after wgpu or cuda only",
        ),
        (
            vec!["train", "--data", "/no/such/file.txt"],
            "does not exist",
        ),
        (
            vec!["train", "--data", "nonsense"],
            "neither a shipped data set",
        ),
        (vec!["train", "--data", &empty, "--out", &out], "is empty"),
        (
            vec!["train", "--model", "ar", "--data", &text, "--out", &out],
            "forecasts series",
        ),
        (
            vec![
                "train", "--model", "ngram", "--data", &series, "--out", &out,
            ],
            "models tokens",
        ),
        (
            vec![
                "train", "--model", "ar", "--data", &series, "--column", "nope", "--out", &out,
            ],
            "no column `nope`",
        ),
        (
            vec!["train", "--hidden", "0", "--data", &text],
            "--hidden must be at least 1",
        ),
        (
            vec!["train", "--recurrent-dropout", "1", "--data", &text],
            "--recurrent-dropout must be in [0, 1)",
        ),
        (
            vec![
                "train",
                "--hidden",
                "8",
                "--proj-size",
                "8",
                "--data",
                &text,
            ],
            "--proj-size (8) must be smaller than --hidden (8)",
        ),
        (
            vec![
                "train",
                "--model",
                "rnn",
                "--layer-norm",
                "--data",
                &text,
                "--out",
                &out,
            ],
            "--layer-norm does not apply to model `rnn`",
        ),
        (
            vec![
                "train",
                "--model",
                "ar",
                "--zoneout",
                "0.1",
                "--data",
                &series,
                "--out",
                &out,
            ],
            "--zoneout does not apply to model `ar`",
        ),
        (
            vec!["generate", "--run", &out],
            "not a sequent run directory",
        ),
        (
            vec!["evaluate", "--run", "/no/such/run"],
            "not a sequent run directory",
        ),
    ];
    for (args, expected) in cases {
        let line = fails(&args);
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    // A damaged model file is reported by name.
    let run = s.path("gru");
    let mut args = vec!["train", "--model", "gru", "--data", &text, "--out", &run];
    args.extend_from_slice(SMALL);
    ok(&args);
    std::fs::write(Path::new(&run).join("model.bpk"), b"garbage").unwrap();
    assert!(fails(&["generate", "--run", &run]).contains("model.bpk"));
    // An unparsable flag value is clap's one-line error (exit code 2).
    let out = sequent(&["train", "--epochs", "many"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `sequent bench` on a tiny workload (1 timed step, H = 8, 1 layer, T = 5) with `extra` flags.
fn tiny_bench(extra: &[&str]) -> String {
    let tiny = [
        "bench", "--steps", "1", "--hidden", "8", "--layers", "1", "--seq", "5",
    ];
    ok(&[&tiny[..], extra].concat())
}

fn bench_prints_the_ratio_table_and_json() {
    let table = ok(&["bench", "--steps", "1", "--hidden", "16", "--layers", "1"]);
    for kind in ["lstm", "gru", "rnn"] {
        assert!(
            table.contains(&format!("| train | {kind} | 16 | 35 |")),
            "{table}"
        );
    }
    assert!(table.contains("sequent / burn::nn"));
    // Rounds: medians, and each ratio with its range over the rounds.
    let rounds = tiny_bench(&["--kind", "rnn", "--repeat", "2"]);
    assert!(rounds.contains("medians of 2 rounds"), "{rounds}");
    let row = rounds
        .lines()
        .find(|l| l.starts_with("| train | rnn |"))
        .unwrap();
    assert!(row.ends_with("x) |") && row.contains("x ("), "{row}");
    assert!(fails(&["bench", "--repeat", "0"]).contains("--repeat"));
    // Options beyond PyTorch's: a column each, timed against the plain layer.
    let options = tiny_bench(&["--kind", "lstm", "--option", "weight-drop,proj"]);
    assert!(
        options.contains("| +weight-drop tok/s | sequent / +weight-drop | +proj tok/s |"),
        "{options}"
    );
    let row = options
        .lines()
        .find(|l| l.starts_with("| train | lstm |"))
        .unwrap();
    assert_eq!(row.matches('|').count(), 12, "{row}");
    assert!(
        fails(&["bench", "--kind", "gru", "--option", "proj"])
            .contains("--option proj does not apply to --kind gru")
    );
    for zero in ["--hidden", "--seq"] {
        assert!(fails(&["bench", zero, "64,0"]).contains("--hidden and --seq"));
    }
    let json = tiny_bench(&["--mode", "infer,stream", "--kind", "gru", "--json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{json}");
    for v in &lines {
        assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["kind"], "gru");
    }
    assert_eq!(lines[2]["mode"], "stream");
    assert_eq!(lines[2]["batch"], 1);
    assert!(fails(&["bench", "--mode", "fly"]).contains("unknown mode"));
    // Bidirectional layers: training and inference, not generation.
    let bi = ok(&[
        "bench",
        "--steps",
        "1",
        "--hidden",
        "8",
        "--seq",
        "5",
        "--kind",
        "lstm",
        "--mode",
        "train,infer",
        "--bidirectional",
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = bi
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{bi}");
    assert!(
        lines
            .iter()
            .all(|v| v["bidirectional"] == true && v["tokens_per_s"].as_f64().unwrap() > 0.0)
    );
    assert!(fails(&["bench", "--bidirectional", "--mode", "stream"]).contains("does not apply"),);
    // --gemm: the machine's GEMM rate at the workload's shapes, and each training FLOP rate's
    // share of it.
    let gemm = tiny_bench(&["--kind", "rnn", "--gemm"]);
    assert!(gemm.contains("rnn H = 8: GEMM rate"), "{gemm}");
    assert!(gemm.contains("[160 x 8] x [8 x 8]"), "{gemm}");
    // T B = 160 tokens of a 64-token vocabulary: sequent folds the embedding into the layer,
    // and counts the FLOPs it performs.
    assert!(
        gemm.contains("  sequent (embedding folded): ") && gemm.contains("% of "),
        "{gemm}"
    );
    let unfolded = tiny_bench(&["--kind", "rnn", "--json", "--no-fold"]);
    let first: serde_json::Value = serde_json::from_str(unfolded.lines().next().unwrap()).unwrap();
    assert_eq!(first["impl"], "sequent", "{unfolded}");
    assert_eq!(first["embedding_folded"], false, "{unfolded}");
}

/// The same command line on the wgpu backend (Mesa's lavapipe on CI machines).
#[cfg(feature = "wgpu")]
fn trains_and_generates_on_wgpu(_device: burn::tensor::Device) {
    let s = Scratch::new("wgpu");
    let data = s.file("tiny.txt", &tiny_text());
    let run = s.path("gru");
    let mut args = vec![
        "train", "--model", "gru", "--data", &data, "--out", &run, "--device", "wgpu",
    ];
    args.extend_from_slice(SMALL);
    assert!(ok(&args).contains("perplexity"));
    let text = ok(&[
        "generate", "--run", &run, "--prefix", "to", "--len", "10", "--device", "wgpu",
    ]);
    assert!(text.starts_with("to"));
}

/// `--device wgpu` where no adapter answers (the Vulkan drivers hidden, and a default device that
/// no machine has) is a one-line error that names the driver to install.
#[cfg(feature = "wgpu")]
fn a_missing_wgpu_adapter_is_a_one_line_error() {
    let s = Scratch::new("no-adapter");
    let data = s.file("tiny.txt", &tiny_text());
    let env = [
        ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
        ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
        ("CUBECL_WGPU_DEFAULT_DEVICE", "VirtualGpu(99)"),
    ];
    let line = fails_with(&env, &["train", "--data", &data, "--device", "wgpu"]);
    assert!(
        line.contains("device `wgpu`: no adapter answered") && line.contains("mesa-vulkan-drivers"),
        "{line}"
    );
}

fn main() {
    #[allow(unused_mut)] // pushed to behind the wgpu feature
    let mut tests = vec![
        trials::test(
            "text_models_train_generate_and_evaluate",
            text_models_train_generate_and_evaluate,
        ),
        trials::test(
            "series_models_train_forecast_and_evaluate",
            series_models_train_forecast_and_evaluate,
        ),
        trials::test(
            "series_covariates_are_saved_and_used_to_forecast",
            series_covariates_are_saved_and_used_to_forecast,
        ),
        trials::test(
            "classifiers_train_and_evaluate_on_ts_files",
            classifiers_train_and_evaluate_on_ts_files,
        ),
        trials::test("config_file_and_resume", config_file_and_resume),
        trials::test(
            "several_devices_train_and_resume",
            several_devices_train_and_resume,
        ),
        trials::test(
            "regularised_layers_train_and_keep_their_settings",
            regularised_layers_train_and_keep_their_settings,
        ),
        trials::test(
            "bad_input_is_a_one_line_error",
            bad_input_is_a_one_line_error,
        ),
        trials::test(
            "bench_prints_the_ratio_table_and_json",
            bench_prints_the_ratio_table_and_json,
        ),
    ];
    #[cfg(feature = "wgpu")]
    tests.extend([
        trials::wgpu_test("trains_and_generates_on_wgpu", trains_and_generates_on_wgpu),
        trials::test(
            "a_missing_wgpu_adapter_is_a_one_line_error",
            a_missing_wgpu_adapter_is_a_one_line_error,
        ),
    ]);
    trials::run(tests);
}
