//! `char_lm`: character-level language models on the shipped Shakespeare text (90/10 split by
//! position). Count-based n-grams of orders 1 to 5 against RNN, GRU and LSTM language models
//! with (as nearly as integer widths allow) the same number of parameters: validation perplexity
//! and bits per character, loss curves, and samples at two temperatures.
//! `examples/torch/char_lm.py` trains the same configuration in PyTorch.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use sequent_models::generate::Sampling;
use sequent_train::learner::TokenModel;

use crate::catalog::{TokenModelFn, with_token_model};
use crate::config::RunConfig;
use crate::experiments::{ExampleOptions, Table, fmt};
use crate::plot::{Line, line_chart};
use crate::text::{self, TextRun};

/// Counts a model's parameters.
struct CountParams;

impl TokenModelFn for CountParams {
    type Out = usize;

    fn call<M: TokenModel>(self, model: M) -> usize {
        Module::num_params(&model)
    }
}

fn params(cfg: &RunConfig, vocab: usize, device: &Device) -> Result<usize, String> {
    with_token_model(cfg, vocab, device, CountParams)
}

/// The hidden width of `model` whose parameter count is closest to `budget`.
fn width_for(
    base: &RunConfig,
    model: &str,
    budget: usize,
    vocab: usize,
    device: &Device,
) -> Result<usize, String> {
    let count = |h: usize| {
        let cfg = RunConfig {
            model: model.into(),
            hidden: h,
            ..base.clone()
        };
        params(&cfg, vocab, device)
    };
    let (mut lo, mut hi) = (1usize, 4 * base.hidden.max(8));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if count(mid)? < budget {
            lo = mid + 1
        } else {
            hi = mid
        }
    }
    // lo is the first width at or above the budget; take the nearer of it and lo - 1.
    if lo > 1 && budget - count(lo - 1)? < count(lo)? - budget {
        Ok(lo - 1)
    } else {
        Ok(lo)
    }
}

/// The settings shared by every neural model (the LSTM's width sets the budget).
pub fn base_config(quick: bool, seed: u64, data: &Path) -> RunConfig {
    RunConfig {
        model: "lstm".into(),
        data: data.display().to_string(),
        hidden: if quick { 32 } else { 128 },
        layers: 1,
        embedding: 32,
        epochs: if quick { 1 } else { 3 },
        batch: 32,
        steps: 64,
        lr: 2e-3,
        clip: 1.0,
        valid_fraction: 0.1,
        test_fraction: 0.0,
        order: 1,
        smoothing: 0.1,
        seed,
        ..RunConfig::default()
    }
}

fn data_file(o: &ExampleOptions, out: &Path) -> Result<PathBuf, String> {
    let crate::data_source::DataSource::Text(full) =
        crate::data_source::DataSource::resolve("shakespeare")?
    else {
        unreachable!("shakespeare is text")
    };
    if !o.quick {
        return Ok(full);
    }
    // Quick: the first 60,000 characters.
    let text = std::fs::read_to_string(&full).map_err(|e| e.to_string())?;
    let cut: String = text.chars().take(60_000).collect();
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let path = out.join("quick.txt");
    sequent_train::io::write_atomic(&path, cut.as_bytes())?;
    Ok(path)
}

/// Fits n-grams of orders 1-5 and trains RNN, GRU and LSTM at the LSTM's parameter budget.
pub fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("char_lm");
    let device = crate::device::parse(&o.device)?;
    let data = data_file(o, &out)?;
    let base = base_config(o.quick, o.seed, &data);
    let mut table = Table::new(&[
        "model",
        "hidden",
        "parameters",
        "validation perplexity",
        "bits per char",
    ]);
    let mut samples = String::from("# Samples\n");
    for order in 1..=5 {
        let cfg = RunConfig {
            model: "ngram".into(),
            order,
            ..base.clone()
        };
        let dir = out.join(format!("ngram{order}"));
        let scores = text::train(&cfg, &data, &device, &dir, false)?;
        table.push(vec![
            format!("{order}-gram"),
            "-".into(),
            "-".into(),
            fmt(scores.valid_loss.exp()),
            fmt(scores.valid_loss / std::f64::consts::LN_2),
        ]);
        if order == 5 {
            samples.push_str(&sample_section(&cfg, &dir, &data, &device)?);
        }
    }
    let vocab = vocab_size(&base, &data)?;
    let budget = params(&base, vocab, &device)?;
    let mut curves = Vec::new();
    for model in ["rnn", "gru", "lstm"] {
        let hidden = width_for(&base, model, budget, vocab, &device)?;
        let cfg = RunConfig {
            model: model.into(),
            hidden,
            ..base.clone()
        };
        let dir = out.join(model);
        let scores = text::train(&cfg, &data, &device, &dir, false)?;
        table.push(vec![
            model.into(),
            hidden.to_string(),
            params(&cfg, vocab, &device)?.to_string(),
            fmt(scores.valid_loss.exp()),
            fmt(scores.valid_loss / std::f64::consts::LN_2),
        ]);
        curves.push(valid_curve(model, &dir)?);
        samples.push_str(&sample_section(&cfg, &dir, &data, &device)?);
    }
    line_chart(
        &out.join("valid_loss.svg"),
        "Validation cross-entropy per epoch",
        "epoch",
        "nats per character",
        &curves,
    )?;
    sequent_train::io::write_atomic(&out.join("samples.md"), samples.as_bytes())?;
    table.write(&out, "char_lm")?;
    Ok(table)
}

fn vocab_size(cfg: &RunConfig, data: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(data).map_err(|e| e.to_string())?;
    Ok(sequent_train::data::vocab::Vocab::build(&text, cfg.tokenizer, 1).len())
}

fn valid_curve(model: &str, dir: &Path) -> Result<Line, String> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).map_err(|e| e.to_string())?;
    let points = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?))
        })
        .collect();
    Ok(Line::new(model, points))
}

/// 200 characters after "ROMEO:" at temperatures 0.5 and 1.0.
fn sample_section(
    cfg: &RunConfig,
    dir: &Path,
    data: &Path,
    device: &Device,
) -> Result<String, String> {
    let run = TextRun::new(cfg.clone(), dir, data.to_path_buf());
    let mut s = format!("\n## {} (order {} for n-grams)\n", cfg.model, cfg.order);
    for t in [0.5, 1.0] {
        let text = run.generate("ROMEO:", 200, &Sampling::temperature(t, cfg.seed), device)?;
        s.push_str(&format!("\ntemperature {t}:\n\n```text\n{text}\n```\n"));
    }
    Ok(s)
}
