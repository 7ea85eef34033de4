//! Language modelling from the command line: train, generate, evaluate.
//!
//! A text run directory holds `config.json`, `vocab.json`, `model.bpk` (neural models),
//! `checkpoint/`, `metrics.csv` (per epoch), `steps.csv` (per batch), `loss.svg`, `steps.svg`
//! and `sample.txt`. Loss is the mean next-token cross-entropy in nats; perplexity is
//! `exp(loss)` and bits per token (bits per character for the char tokenizer) `loss / ln 2`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sequent_models::classical::NgramConfig;
use sequent_models::generate::Sampling;
use sequent_train::data::text::{Partition, split_by_position, token_loader};
use sequent_train::data::vocab::{Tokenizer, UNK, Vocab};
use sequent_train::learner::{self, LanguageModeling, Split, StepControl, TaskLearner, TokenModel};

use crate::catalog::{ModelName, TokenModelFn, with_token_model};
use crate::config::RunConfig;
use crate::footprint::Footprint;
use crate::run::{fit_and_report, model_device};
use crate::run_dir::Start;

/// Vocabularies larger than this get a warning before training (a word vocabulary of a large
/// text: its embedding and output layers dominate the model).
const LARGE_VOCABULARY: usize = 50_000;

/// What training or evaluation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct TextScores {
    /// Mean cross-entropy (nats per token) on the validation part.
    pub valid_loss: f64,
    /// Same on the test part, if there is one.
    pub test_loss: Option<f64>,
}

impl TextScores {
    fn report(&self, tokens: &str) -> String {
        let line = |name: &str, l: f64| {
            format!(
                "{name}: loss {l:.4} nats, perplexity {:.3}, {:.4} bits per {tokens}\n",
                l.exp(),
                l / std::f64::consts::LN_2
            )
        };
        let mut s = line("validation", self.valid_loss);
        if let Some(t) = self.test_loss {
            s.push_str(&line("test", t));
        }
        s
    }
}

/// The text, its vocabulary and the split, as a run sees them.
struct Corpus {
    vocab: Vocab,
    train: Vec<u32>,
    valid: Vec<u32>,
    test: Vec<u32>,
}

fn read_text(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    if text.trim().is_empty() {
        return Err(format!(
            "{} holds only whitespace: nothing to model",
            path.display()
        ));
    }
    Ok(text)
}

fn corpus(cfg: &RunConfig, path: &Path, vocab: Option<Vocab>) -> Result<Corpus, String> {
    let text = read_text(path)?;
    let vocab = vocab.unwrap_or_else(|| Vocab::build(&text, cfg.tokenizer, 1));
    let ids = vocab.encode(&text);
    let split = split_by_position(&ids, cfg.valid_fraction, cfg.test_fraction)?;
    if split.valid.len() < 2 {
        return Err(format!(
            "{}: the validation part has {} tokens; use more text or a larger --valid-fraction",
            path.display(),
            split.valid.len()
        ));
    }
    Ok(Corpus {
        vocab,
        train: split.train,
        valid: split.valid,
        test: split.test,
    })
}

fn token_word(cfg: &RunConfig) -> &'static str {
    match cfg.tokenizer {
        sequent_train::data::vocab::Tokenizer::Char => "character",
        sequent_train::data::vocab::Tokenizer::Word => "word",
    }
}

/// Trains `cfg.model` on the text at `path` into `out`, resuming from the newest checkpoint when
/// `start` says so; prints the scores and a sample.
pub fn train(
    cfg: &RunConfig,
    path: &Path,
    device: &Device,
    out: &Path,
    start: Start,
) -> Result<TextScores, String> {
    let vocab_path = out.join("vocab.json");
    let saved_vocab = if start.is_resume() && vocab_path.is_file() {
        Some(load_vocab(out)?)
    } else {
        None
    };
    let corpus = corpus(cfg, path, saved_vocab)?;
    let model: ModelName = cfg.model.parse()?;
    if model != ModelName::Ngram {
        Footprint::of_run(cfg, model, corpus.vocab.len(), true).check("this model")?;
    }
    if corpus.vocab.len() > LARGE_VOCABULARY {
        eprintln!(
            "warning: a vocabulary of {} types: the embedding and output layers alone hold {:.3e} \
             parameters; --tokenizer char keeps it small",
            corpus.vocab.len(),
            (corpus.vocab.len() * (cfg.embedding + cfg.hidden + 1)) as f64
        );
    }
    let _run = cfg.start_run(out, start)?;
    sequent_train::io::write_atomic(&vocab_path, corpus.vocab.to_json().as_bytes())?;
    eprintln!(
        "{} on {}: {} train / {} validation / {} test tokens, vocabulary {}",
        cfg.model,
        path.display(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.test.len(),
        corpus.vocab.len()
    );
    let scores = if model == ModelName::Ngram {
        let model = fit_ngram(cfg, &corpus)?;
        let scores = TextScores {
            valid_loss: model
                .perplexity(&corpus.valid)
                .map_err(|e| e.to_string())?
                .ln(),
            test_loss: (!corpus.test.is_empty())
                .then(|| model.perplexity(&corpus.test).map(f64::ln))
                .transpose()
                .map_err(|e| e.to_string())?,
        };
        let sample = model
            .generate(&prefix(&corpus), 300, &Sampling::temperature(0.8, cfg.seed))
            .map_err(|e| e.to_string())?;
        write_sample(out, &corpus.vocab.decode(&sample))?;
        scores
    } else {
        let resume_after = if start.is_resume() {
            learner::fit::resume_point(out)?
        } else {
            None
        };
        if let Some(k) = resume_after {
            eprintln!(
                "resuming after epoch {k} from {}",
                out.join("checkpoint").display()
            );
        }
        let train_device = device.clone().autodiff();
        train_device.seed(cfg.seed);
        with_token_model(
            cfg,
            corpus.vocab.len(),
            &train_device,
            TrainLm {
                cfg,
                corpus: &corpus,
                out,
                resume_after,
            },
        )??
    };
    print!("{}", scores.report(token_word(cfg)));
    Ok(scores)
}

fn fit_ngram(
    cfg: &RunConfig,
    corpus: &Corpus,
) -> Result<sequent_models::classical::NgramModel, String> {
    let mut model = NgramConfig::new(cfg.order, corpus.vocab.len())
        .with_smoothing(cfg.smoothing)
        .try_init()
        .map_err(|e| e.to_string())?;
    model.fit(&corpus.train).map_err(|e| e.to_string())?;
    Ok(model)
}

/// The generation prefix used after training: the first 16 validation tokens.
fn prefix(corpus: &Corpus) -> Vec<u32> {
    corpus.valid[..corpus.valid.len().min(16)].to_vec()
}

fn write_sample(out: &Path, text: &str) -> Result<(), String> {
    println!("--- sample (temperature 0.8) ---\n{text}\n---");
    sequent_train::io::write_atomic(&out.join("sample.txt"), text.as_bytes()).map_err(String::from)
}

fn load_vocab(out: &Path) -> Result<Vocab, String> {
    let path = out.join("vocab.json");
    let json = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Vocab::from_json(&json).map_err(|e| format!("{}: {e}", path.display()))
}

/// Streams for the sequential partition of `tokens`: `batch`, fewer if the part is short.
fn streams(tokens: usize, batch: usize, steps: usize) -> usize {
    batch.min(tokens.saturating_sub(1) / steps).max(1)
}

struct TrainLm<'a> {
    cfg: &'a RunConfig,
    corpus: &'a Corpus,
    out: &'a Path,
    resume_after: Option<usize>,
}

impl TokenModelFn for TrainLm<'_> {
    type Out = Result<TextScores, String>;

    fn call<M: TokenModel>(self, model: M) -> Self::Out {
        let (cfg, corpus) = (self.cfg, self.corpus);
        let start = self.resume_after.unwrap_or(0);
        let steps = cfg.steps.min(corpus.valid.len() - 1);
        let train = token_loader(
            &corpus.train,
            cfg.partition,
            cfg.batch,
            cfg.steps,
            cfg.seed,
            start,
        )?;
        let valid_streams = streams(corpus.valid.len(), cfg.batch, steps);
        let valid = token_loader(
            &corpus.valid,
            Partition::Sequential,
            valid_streams,
            steps,
            cfg.seed,
            start,
        )?;
        let (fitted, rows) = fit_and_report(
            |control| TaskLearner::new(model, LanguageModeling::default(), control),
            match cfg.partition {
                Partition::Sequential => 1,
                Partition::Random => cfg.batch,
            },
            train,
            valid,
            cfg,
            self.out,
            self.resume_after,
            "cross-entropy (nats)",
        )?;
        let model = fitted.model;
        learner::fit::save_model(model.clone(), &self.out.join("model.bpk"))?;
        let test_loss = (corpus.test.len() > steps + 1)
            .then(|| mean_loss(&model, &corpus.test, cfg))
            .transpose()?;
        let sample = model
            .generate(&prefix(corpus), 300, &Sampling::temperature(0.8, cfg.seed))
            .map_err(|e| e.to_string())?;
        write_sample(self.out, &corpus.vocab.decode(&sample))?;
        let valid_loss = rows.last().map(|r| r.2).unwrap_or(f64::NAN);
        Ok(TextScores {
            valid_loss,
            test_loss,
        })
    }
}

/// Mean next-token cross-entropy of `model` over `tokens`, state carried through the streams.
fn mean_loss<M: TokenModel>(model: &M, tokens: &[u32], cfg: &RunConfig) -> Result<f64, String> {
    use burn::train::InferenceStep;
    let steps = cfg.steps.min(tokens.len().saturating_sub(1)).max(1);
    let device = model_device(model)?;
    let loader = token_loader(
        tokens,
        Partition::Sequential,
        streams(tokens.len(), cfg.batch, steps),
        steps,
        cfg.seed,
        0,
    )?
    .to_device(&device);
    let control = StepControl::new(None, cfg.seed, burn::train::Interrupter::new());
    let learner = TaskLearner::new(model.clone(), LanguageModeling::default(), control.clone());
    for batch in loader.iter() {
        let batch = batch.map_err(|e| e.to_string())?;
        InferenceStep::step(&learner, batch);
    }
    control
        .epoch_losses(Split::Valid)
        .first()
        .map(|&(_, l)| l)
        .ok_or_else(|| "no complete window to evaluate".to_string())
}

/// A trained text run read back from its directory.
pub struct TextRun {
    /// The run's settings.
    pub cfg: RunConfig,
    /// Where it lives.
    pub dir: PathBuf,
    data: PathBuf,
}

impl TextRun {
    /// A text run in `dir` whose data is the text file `data`.
    pub fn new(cfg: RunConfig, dir: &Path, data: PathBuf) -> Self {
        Self {
            cfg,
            dir: dir.to_path_buf(),
            data,
        }
    }

    /// Generates `len` tokens after `prefix` (text in the run's tokenization), handing the text
    /// to `write` as it is produced: the prefix (as the vocabulary reads it), then each token.
    pub fn generate(
        &self,
        prefix: &str,
        len: usize,
        sampling: &Sampling,
        device: &Device,
        write: &mut dyn FnMut(&str),
    ) -> Result<(), String> {
        let vocab = load_vocab(&self.dir)?;
        let ids = vocab.encode(prefix);
        if ids.is_empty() {
            return Err("the prefix is empty".into());
        }
        let unk = vocab.id(UNK);
        let unknown = ids.iter().filter(|&&id| id == unk).count();
        if unknown > 0 {
            eprintln!(
                "note: {unknown} of the prefix's {} tokens are not in the run's vocabulary and \
                 read as {UNK}",
                ids.len()
            );
        }
        let separator = match self.cfg.tokenizer {
            Tokenizer::Char => "",
            Tokenizer::Word => " ",
        };
        let ngram = if self.cfg.model.parse::<ModelName>()? == ModelName::Ngram {
            let corpus = corpus(&self.cfg, &self.data, Some(vocab.clone()))?;
            Some(fit_ngram(&self.cfg, &corpus)?)
        } else {
            None
        };
        // The prefix is written with the first token, so a run whose weights fail to load writes
        // nothing but its error.
        let mut pending = Some(vocab.decode(&ids));
        let mut each = |token: u32| {
            if let Some(prefix) = pending.take() {
                write(&prefix);
            }
            write(separator);
            write(&vocab.decode(&[token]));
        };
        let generated = match ngram {
            Some(model) => model.generate_each(&ids, len, sampling, &mut each),
            None => {
                let weights = self.dir.join("model.bpk");
                with_token_model(
                    &self.cfg,
                    vocab.len(),
                    device,
                    Generate {
                        weights: &weights,
                        prefix: &ids,
                        len,
                        sampling,
                        each: &mut each,
                    },
                )??
            }
        };
        generated.map_err(|e| e.to_string())?;
        if let Some(prefix) = pending {
            write(&prefix);
        }
        Ok(())
    }

    /// Scores the trained model on the validation and test parts of its data.
    pub fn evaluate(&self, device: &Device) -> Result<TextScores, String> {
        let vocab = load_vocab(&self.dir)?;
        let corpus = corpus(&self.cfg, &self.data, Some(vocab))?;
        let scores = if self.cfg.model.parse::<ModelName>()? == ModelName::Ngram {
            let model = fit_ngram(&self.cfg, &corpus)?;
            let ppl = |t: &[u32]| model.perplexity(t).map(f64::ln).map_err(|e| e.to_string());
            TextScores {
                valid_loss: ppl(&corpus.valid)?,
                test_loss: (!corpus.test.is_empty())
                    .then(|| ppl(&corpus.test))
                    .transpose()?,
            }
        } else {
            let weights = self.dir.join("model.bpk");
            with_token_model(
                &self.cfg,
                corpus.vocab.len(),
                device,
                Evaluate {
                    weights: &weights,
                    corpus: &corpus,
                    cfg: &self.cfg,
                },
            )??
        };
        print!("{}", scores.report(token_word(&self.cfg)));
        Ok(scores)
    }
}

struct Generate<'a> {
    weights: &'a Path,
    prefix: &'a [u32],
    len: usize,
    sampling: &'a Sampling,
    each: &'a mut dyn FnMut(u32),
}

impl TokenModelFn for Generate<'_> {
    type Out = Result<sequent_models::Result<()>, String>;

    fn call<M: TokenModel>(self, model: M) -> Self::Out {
        let model = learner::fit::load_model(model, self.weights)?;
        Ok(model.generate_each(self.prefix, self.len, self.sampling, self.each))
    }
}

struct Evaluate<'a> {
    weights: &'a Path,
    corpus: &'a Corpus,
    cfg: &'a RunConfig,
}

impl TokenModelFn for Evaluate<'_> {
    type Out = Result<TextScores, String>;

    fn call<M: TokenModel>(self, model: M) -> Self::Out {
        let model = learner::fit::load_model(model, self.weights)?.valid();
        Ok(TextScores {
            valid_loss: mean_loss(&model, &self.corpus.valid, self.cfg)?,
            test_loss: (self.corpus.test.len() > 1)
                .then(|| mean_loss(&model, &self.corpus.test, self.cfg))
                .transpose()?,
        })
    }
}
