//! The small demo the README's first command runs until the full learner exists: a character-level
//! LSTM on the shipped Shakespeare text, trained for a fixed time with Adam, then sampled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use sequent_models::generate::Sampling;
use sequent_models::heads::LanguageModelConfig;
use sequent_models::recurrent::LstmConfig;
use sequent_models::rng::SplitMix64;
use sequent_train::data::vocab::{Tokenizer, Vocab};

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The text file to learn.
    pub data: PathBuf,
    /// Training time budget.
    pub time: Duration,
    /// Random seed (weights, batches, sampling).
    pub seed: u64,
    /// Where the loss log goes.
    pub out: PathBuf,
    /// Number of characters to generate.
    pub generate: usize,
}

/// Runs the demo; returns a one-line error for bad input.
pub fn run(opts: &DemoOptions, device: &Device) -> Result<(), String> {
    let text = read_text(&opts.data)?;
    let vocab = Vocab::build(&text, Tokenizer::Char, 1);
    let ids = vocab.encode(&text);
    let (batch, steps) = (32usize, 64usize);
    if ids.len() < steps + 2 {
        return Err(format!(
            "{}: the text is too short ({} characters, need at least {})",
            opts.data.display(),
            ids.len(),
            steps + 2
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;

    device.seed(opts.seed);
    let train = device.clone().autodiff();
    let lstm = LstmConfig::new(64, 256).with_num_layers(2).init(&train);
    let mut model = LanguageModelConfig::new(vocab.len())
        .init(lstm, &train)
        .map_err(|e| e.to_string())?;
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train);
    let mut rng = SplitMix64::new(opts.seed);
    let mut log = String::from("step,loss\n");
    println!(
        "demo: character LSTM (2 x 256) on {} ({} chars, vocabulary {}), device {:?}, {} s of training",
        opts.data.display(),
        ids.len(),
        vocab.len(),
        device,
        opts.time.as_secs()
    );
    let start = Instant::now();
    let mut step = 0usize;
    while start.elapsed() < opts.time {
        let mut rows = Vec::with_capacity(batch * (steps + 1));
        for _ in 0..batch {
            let s = rng.below(ids.len() - steps - 1);
            rows.extend(ids[s..s + steps + 1].iter().map(|&t| t as i64));
        }
        let all = Tensor::<2, Int>::from_data(TensorData::new(rows, [batch, steps + 1]), &train);
        let (logits, _) = model.forward(all.clone().narrow(1, 0, steps), None);
        let v = vocab.len();
        let loss = loss_fn.forward(
            logits.reshape([batch * steps, v]),
            all.narrow(1, 1, steps).reshape([batch * steps]),
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
        let value: f64 = loss.into_scalar();
        step += 1;
        log.push_str(&format!("{step},{value}\n"));
        let elapsed = start.elapsed().as_secs_f64();
        print!(
            "\r  step {step:5}  loss {value:.3}  {:.0} tokens/s  {:3.0}% ",
            (step * batch * steps) as f64 / elapsed,
            100.0 * (elapsed / opts.time.as_secs_f64()).min(1.0)
        );
        std::io::stdout().flush().ok();
    }
    println!();
    let log_path = opts.out.join("demo_loss.csv");
    std::fs::write(&log_path, log).map_err(|e| format!("{}: {e}", log_path.display()))?;

    let model = model.valid();
    let prefix = vocab.encode("ROMEO:\n");
    let sampled = model
        .generate(
            &prefix,
            opts.generate,
            &Sampling::temperature(0.8, opts.seed),
        )
        .map_err(|e| e.to_string())?;
    let out = vocab.decode(&sampled);
    println!("\n--- sample (temperature 0.8) ---\n{out}\n---");
    println!("loss log: {}", log_path.display());
    Ok(())
}

fn read_text(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}
