//! A run's settings: defaults, then a config file (TOML or JSON), then command-line flags. The
//! resolved settings are saved as `config.json` in the run directory, which `generate`,
//! `evaluate`, `forecast` and `--resume` read back.

use std::path::Path;

use sequent_train::data::covariates::{Covariate, CovariateEncoder};
use sequent_train::data::text::Partition;
use sequent_train::data::timeseries::Missing;
use sequent_train::data::vocab::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::data_source::{DataSource, write_fingerprints};
use crate::run_dir::{CONFIG_FILE, RunDir, Start};

/// Every setting of a training run. Fields missing from a config file keep their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Model name: `ar`, `markov`, `ngram`, `latent`, `rnn`, `lstm` or `gru`.
    pub model: String,
    /// A shipped data set name (see `sequent train --help`) or a path (`.txt` text, `.csv` series).
    pub data: String,
    /// CSV column(s) to model (series); empty means the last column.
    pub columns: Vec<String>,
    /// What a missing value (empty, NaN, infinite) in a series does: `error`, `drop` the row,
    /// or repeat the `previous` value.
    pub missing: Missing,
    /// Known-future covariates a series model reads at each step (`--covariate`).
    pub covariates: Vec<Covariate>,
    /// The series' date: one column of dates or the year, month and day columns (`--date`), for
    /// calendar covariates.
    pub date: Vec<String>,
    /// Text tokenizer: characters or whitespace-separated words.
    pub tokenizer: Tokenizer,
    /// Hidden width `H` of recurrent layers and MLP hidden layers.
    pub hidden: usize,
    /// Number of recurrent layers (or MLP hidden layers for `ar`).
    pub layers: usize,
    /// Token embedding width (text models).
    pub embedding: usize,
    /// Dropout between recurrent layers.
    pub dropout: f64,
    /// Variational dropout on each recurrent layer's input (`rnn`, `lstm`, `gru`).
    pub input_dropout: f64,
    /// Variational dropout on `h_{t-1}` in the recurrent product (`rnn`, `lstm`, `gru`).
    pub recurrent_dropout: f64,
    /// DropConnect on the recurrent weights `W_hh` (`rnn`, `lstm`, `gru`).
    pub weight_drop: f64,
    /// Zoneout probability of the state keeping its previous value (`rnn`, `lstm`, `gru`).
    pub zoneout: f64,
    /// Layer-normalised cell (`lstm`, `gru`).
    pub layer_norm: bool,
    /// Width of the LSTM's projection of `h` (`lstm`; 0: none).
    pub proj_size: usize,
    /// Epochs of training.
    pub epochs: usize,
    /// Batch size (number of streams for the sequential partition).
    pub batch: usize,
    /// Steps per training window: `T` for text, the window `tau` for series.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Global gradient-norm clip (0 turns it off).
    pub clip: f64,
    /// Text partition: `sequential` (state carried, truncated BPTT) or `random`.
    pub partition: Partition,
    /// Fraction held out at the end for validation.
    pub valid_fraction: f64,
    /// Fraction held out at the very end for testing (text).
    pub test_fraction: f64,
    /// Order of the n-gram model (`ngram`).
    pub order: usize,
    /// Add-epsilon smoothing of the n-gram model (1 = Laplace).
    pub smoothing: f64,
    /// Random seed (weights, data order, dropout, sampling).
    pub seed: u64,
    /// Early stopping: epochs without a better validation loss before training stops (0: off).
    pub patience: usize,
    /// Learning-rate schedule: `constant` or `cosine` (annealed to 0 over all epochs).
    pub schedule: Schedule,
    /// Devices to train on, data parallel (`--devices`); empty: the one device the model is
    /// made on. Where a run trains is not one of its settings: it is not saved, and a resumed
    /// run may continue on other devices.
    #[serde(skip)]
    pub devices: Vec<burn::tensor::Device>,
}

/// The learning-rate schedules the command line offers (burn's schedulers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The learning rate throughout.
    #[default]
    Constant,
    /// Cosine annealing from the learning rate to 0.
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            _ => Err(format!(
                "unknown schedule `{s}`; expected constant or cosine"
            )),
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            model: "lstm".into(),
            data: "shakespeare".into(),
            columns: Vec::new(),
            missing: Missing::Error,
            covariates: Vec::new(),
            date: Vec::new(),
            tokenizer: Tokenizer::Char,
            hidden: 256,
            layers: 1,
            embedding: 64,
            dropout: 0.0,
            input_dropout: 0.0,
            recurrent_dropout: 0.0,
            weight_drop: 0.0,
            zoneout: 0.0,
            layer_norm: false,
            proj_size: 0,
            epochs: 2,
            batch: 32,
            steps: 64,
            lr: 2e-3,
            clip: 1.0,
            partition: Partition::Sequential,
            valid_fraction: 0.1,
            test_fraction: 0.0,
            order: 3,
            smoothing: 0.1,
            seed: 42,
            patience: 0,
            schedule: Schedule::Constant,
            devices: Vec::new(),
        }
    }
}

impl RunConfig {
    /// Reads a config file: TOML for `.toml`, JSON otherwise. It must be a table (object) of
    /// settings; unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self, String> {
        Self::load_with_keys(path).map(|(c, _)| c)
    }

    /// [`RunConfig::load`], and the names of the settings the file gives.
    pub fn load_with_keys(path: &Path) -> Result<(Self, Vec<String>), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let toml = path.extension().is_some_and(|e| e == "toml");
        let fail = |e: String| format!("config {}: {}", path.display(), one_line(&e));
        let value: serde_json::Value = if toml {
            toml::from_str(&text).map_err(|e| fail(e.to_string()))?
        } else {
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?
        };
        let Some(keys) = value.as_object().map(|o| o.keys().cloned().collect()) else {
            return Err(fail(format!(
                "must be a {} of settings, not {}",
                if toml { "table" } else { "JSON object" },
                kind(&value)
            )));
        };
        // Parsed from the text again so that a type error names its line and column.
        let parsed = if toml {
            toml::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map(|c| (c, keys)).map_err(fail)
    }

    /// Takes the run directory `out` for this run (see [`RunDir::train`]) and saves the settings
    /// there as `config.json` and the data files' fingerprints as `data.json`; called once the data has loaded, so a run that fails on its input
    /// leaves no run directory behind.
    pub fn start_run(&self, out: &Path, start: Start) -> Result<RunDir, String> {
        let dir = RunDir::train(out, start)?;
        let json = serde_json::to_string_pretty(self).expect("config serialises");
        sequent_train::io::write_atomic(&out.join(CONFIG_FILE), json.as_bytes())?;
        write_fingerprints(out, &DataSource::resolve(&self.data)?)?;
        Ok(dir)
    }

    /// Checks the numbers a run needs, one message for the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("embedding", self.embedding),
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("steps", self.steps),
            ("order", self.order),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("--{name} must be at least 1"));
        }
        let mut columns = self.columns.iter().enumerate();
        if let Some((_, c)) = columns.find(|(i, c)| self.columns[..*i].contains(c)) {
            return Err(format!("--column `{c}` is given twice"));
        }
        CovariateEncoder::check(&self.covariates, &self.date).map_err(|e| e.to_string())?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be positive, got {}", self.lr));
        }
        let probabilities = [
            ("dropout", self.dropout),
            ("input-dropout", self.input_dropout),
            ("recurrent-dropout", self.recurrent_dropout),
            ("weight-drop", self.weight_drop),
            ("zoneout", self.zoneout),
        ];
        if let Some((name, p)) = probabilities.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
            return Err(format!("--{name} must be in [0, 1), got {p}"));
        }
        if self.proj_size >= self.hidden {
            return Err(format!(
                "--proj-size ({}) must be smaller than --hidden ({})",
                self.proj_size, self.hidden
            ));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return Err(format!("--clip must be >= 0, got {}", self.clip));
        }
        if !(self.valid_fraction > 0.0 && self.valid_fraction + self.test_fraction < 1.0)
            || self.test_fraction < 0.0
        {
            return Err(format!(
                "--valid-fraction ({}) must be > 0 and with --test-fraction ({}) sum below 1",
                self.valid_fraction, self.test_fraction
            ));
        }
        Ok(())
    }
}

/// The command-line flag of a setting (`valid_fraction` -> `--valid-fraction`; the `columns`
/// and `covariates` lists are given by repeating `--column` and `--covariate`).
pub fn flag(key: &str) -> String {
    let name = match key {
        "columns" => "column",
        "covariates" => "covariate",
        _ => key,
    };
    format!("--{}", name.replace('_', "-"))
}

/// What a JSON value is, for messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
