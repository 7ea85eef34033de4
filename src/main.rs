//! The `sequent` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sequent::bench::{Kind, Mode};
use sequent::classify::ClassRun;
use sequent::config::{RunConfig, Schedule};
use sequent::data_source::{DataSource, check_fingerprints};
use sequent::run_dir::{CONFIG_FILE, RunDir, Start, lock_for_reading};
use sequent::series::SeriesRun;
use sequent::text::TextRun;
use sequent_models::generate::Sampling;
use sequent_models::recurrent::{Engine, Kernels};
use sequent_train::data::covariates::Covariate;
use sequent_train::data::text::Partition;
use sequent_train::data::timeseries::Missing;
use sequent_train::data::vocab::Tokenizer;

#[derive(Parser)]
#[command(
    name = "sequent",
    version,
    about = "Sequence models on Burn: RNN, LSTM, GRU and the classics",
    long_about = "Sequence models on Burn: RNN, LSTM, GRU and the classics.\n\n\
                  With no subcommand, `sequent` trains a character-level LSTM on the shipped \
                  Shakespeare text (two epochs, about half a minute on a 2-core CPU), prints a sample and \
                  where the plots are."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on text (language model) or on a series (forecaster).
    Train(Box<TrainArgs>),
    /// Generate text from a trained language model run.
    Generate {
        /// The run directory `sequent train` wrote.
        #[arg(long)]
        run: PathBuf,
        /// Text to start from.
        #[arg(long, default_value = "ROMEO:\n")]
        prefix: String,
        /// Number of tokens to generate.
        #[arg(long, default_value_t = 400)]
        len: usize,
        /// Sampling temperature (0 = greedy).
        #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
        temperature: f64,
        /// Sample among the k most likely tokens only (0 = all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Sampling seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Score a trained run on its held-out data (perplexity / bits per character, or
    /// one-step and k-step errors).
    Evaluate {
        /// The run directory `sequent train` wrote.
        #[arg(long)]
        run: PathBuf,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Forecast a trained series run's data past its end (free-running).
    Forecast {
        /// The run directory `sequent train` wrote.
        #[arg(long)]
        run: PathBuf,
        /// Steps to forecast.
        #[arg(long, default_value_t = 64)]
        steps: usize,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Throughput of sequent's RNN/LSTM/GRU against burn::nn (and PyTorch), side by side.
    Bench(BenchArgs),
    /// Serve this machine's devices to trainers on other machines (`sequent train --devices
    /// ws://HOST:PORT,...`), until stopped; needs a build with `--features remote`.
    Serve {
        /// TCP port to listen on, on every interface (0: a free one, printed).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Devices to serve, comma-separated; a trainer picks the `N`-th as `ws://HOST:PORT/N`.
        #[arg(long, value_delimiter = ',', default_value = sequent::device::default_name())]
        devices: Vec<String>,
    },
}

/// Workloads: every combination of the listed modes, kinds, widths and lengths (default: the
/// reference training workload W1 for the three cells).
#[derive(Args)]
struct BenchArgs {
    /// Modes, comma-separated: train, infer, stream.
    #[arg(long, value_delimiter = ',', default_value = "train")]
    mode: Vec<Mode>,
    /// Cells, comma-separated: lstm, gru, rnn.
    #[arg(long, value_delimiter = ',', default_value = "lstm,gru,rnn")]
    kind: Vec<Kind>,
    /// Hidden widths, comma-separated (e.g. 64,256,1024).
    #[arg(long, value_delimiter = ',', default_value = "256")]
    hidden: Vec<usize>,
    /// Sequence lengths, comma-separated (e.g. 35,350).
    #[arg(long, value_delimiter = ',', default_value = "35")]
    seq: Vec<usize>,
    /// Recurrent layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Bidirectional layers (train and infer modes; generation is causal).
    #[arg(long)]
    bidirectional: bool,
    /// Batch size (streaming always uses 1).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps per implementation (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Rounds per workload, each measuring every implementation once: the table then shows
    /// medians, and each ratio as the median of the rounds' ratios with their range.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Also run benches/torch_reference.py on each workload (needs `python3 -c "import torch"`).
    #[arg(long)]
    with_torch: bool,
    /// Also time sequent's layers on the composed tensor ops, step by step (the path the fused
    /// kernels replace).
    #[arg(long)]
    per_step: bool,
    /// Also time sequent's layers with these options, comma-separated: input-dropout (0.25),
    /// recurrent-dropout (0.25), weight-drop (0.5), zoneout (0.1), layer-norm (lstm, gru),
    /// proj (H/2, lstm).
    #[arg(long = "option", value_delimiter = ',')]
    options: Vec<sequent::bench::LayerOption>,
    /// Print one JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
    /// Time sequent's layers over the embedded sequence (as PyTorch and burn::nn compute it)
    /// instead of folding the embedding into the first layer, as sequent's language model does
    /// where that saves work.
    #[arg(long)]
    no_fold: bool,
    /// After the table, measure the machine's GEMM rate at each training workload's shapes and
    /// print each implementation's training FLOP rate as a share of it.
    #[arg(long)]
    gemm: bool,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Args)]
struct DeviceArg {
    /// Device: flex, ndarray, wgpu or cuda (those compiled in).
    #[arg(long, default_value = sequent::device::default_name())]
    device: String,
}

/// Every hyper-parameter as an optional flag: given flags override the config file, which
/// overrides the defaults.
#[derive(Args, Default)]
struct TrainArgs {
    /// Settings file (TOML if it ends in .toml, JSON otherwise); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model: ar, markov, ngram, latent, rnn, lstm, gru [default: lstm].
    #[arg(long)]
    model: Option<String>,
    /// Data: shakespeare, births, airline, sunspots, sine, japanese_vowels, or a .txt / .csv /
    /// .ts path.
    #[arg(long)]
    data: Option<String>,
    /// CSV column to model (repeat for several); default: the data set's own, or the last.
    #[arg(long = "column")]
    columns: Vec<String>,
    /// Missing values (empty, NaN, infinite) in a series: error, drop (the row) or previous
    /// (repeat the last value) [default: error].
    #[arg(long)]
    missing: Option<Missing>,
    /// Known-future covariate a series model reads at each step (repeat for several): COLUMN
    /// (numeric, standardised), COLUMN:onehot (categorical), or calendar:weekday,
    /// calendar:month, calendar:us_holiday (from --date).
    #[arg(long = "covariate")]
    covariates: Vec<Covariate>,
    /// The series' date for calendar covariates: a column of dates (YYYY-MM-DD or YYYY-MM), or
    /// the year, month and day columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    date: Vec<String>,
    /// Text tokenizer: char or word.
    #[arg(long, value_parser = parse_tokenizer)]
    tokenizer: Option<Tokenizer>,
    /// Hidden width.
    #[arg(long, allow_negative_numbers = true)]
    hidden: Option<usize>,
    /// Recurrent layers (MLP hidden layers for ar/markov on series).
    #[arg(long, allow_negative_numbers = true)]
    layers: Option<usize>,
    /// Token embedding width.
    #[arg(long, allow_negative_numbers = true)]
    embedding: Option<usize>,
    /// Dropout between recurrent layers.
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// Variational dropout on each recurrent layer's input, one mask a sequence (rnn, lstm, gru).
    #[arg(long, allow_negative_numbers = true)]
    input_dropout: Option<f64>,
    /// Variational dropout on h in the recurrent product, one mask a sequence (rnn, lstm, gru).
    #[arg(long, allow_negative_numbers = true)]
    recurrent_dropout: Option<f64>,
    /// DropConnect on the recurrent weights, one mask a step of training (rnn, lstm, gru).
    #[arg(long, allow_negative_numbers = true)]
    weight_drop: Option<f64>,
    /// Zoneout: probability that a unit keeps its previous state at a step (rnn, lstm, gru).
    #[arg(long, allow_negative_numbers = true)]
    zoneout: Option<f64>,
    /// Layer-normalised cell (lstm, gru).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    layer_norm: Option<bool>,
    /// Width of the LSTM's projection of h, smaller than --hidden (lstm; 0: none).
    #[arg(long, allow_negative_numbers = true)]
    proj_size: Option<usize>,
    /// Epochs.
    #[arg(long, allow_negative_numbers = true)]
    epochs: Option<usize>,
    /// Batch size (streams, for the sequential partition).
    #[arg(long, allow_negative_numbers = true)]
    batch: Option<usize>,
    /// Window: tokens per step of truncated BPTT (text) or tau (series).
    #[arg(long, allow_negative_numbers = true)]
    steps: Option<usize>,
    /// Adam learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Global gradient-norm clip (0: off).
    #[arg(long, allow_negative_numbers = true)]
    clip: Option<f64>,
    /// Text partition: sequential (state carried) or random.
    #[arg(long, value_parser = parse_partition)]
    partition: Option<Partition>,
    /// Fraction held out at the end for validation.
    #[arg(long, allow_negative_numbers = true)]
    valid_fraction: Option<f64>,
    /// Fraction held out at the very end for testing (text).
    #[arg(long, allow_negative_numbers = true)]
    test_fraction: Option<f64>,
    /// n-gram order.
    #[arg(long, allow_negative_numbers = true)]
    order: Option<usize>,
    /// n-gram add-epsilon smoothing.
    #[arg(long, allow_negative_numbers = true)]
    smoothing: Option<f64>,
    /// Random seed.
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Early stopping: stop after this many epochs without a better validation loss (0: off).
    #[arg(long, allow_negative_numbers = true)]
    patience: Option<usize>,
    /// Learning-rate schedule: constant or cosine (annealed to 0 over all epochs).
    #[arg(long)]
    schedule: Option<Schedule>,
    /// Run directory (default runs/MODEL-DATA).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in the run directory from its newest checkpoint (with its settings;
    /// only --epochs may grow).
    #[arg(long)]
    resume: bool,
    /// Replace the run the run directory holds (its files are removed first).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    device: Option<DeviceArg>,
    /// Train data parallel on these devices, comma-separated: `cuda:0,cuda:1`, `wgpu:0,wgpu:1`,
    /// or a CPU device repeated (`flex,flex`). Each step gives every device its own batch of
    /// --batch and updates the weights with the gradient of the mean loss over all of them; the
    /// first device validates and checkpoints.
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    devices: Vec<String>,
}

fn parse_tokenizer(s: &str) -> Result<Tokenizer, String> {
    match s {
        "char" => Ok(Tokenizer::Char),
        "word" => Ok(Tokenizer::Word),
        _ => Err(format!("unknown tokenizer `{s}`; expected char or word")),
    }
}

fn parse_partition(s: &str) -> Result<Partition, String> {
    s.parse()
}

impl TrainArgs {
    /// Defaults, then the config file, then the flags given; with the names of the settings the
    /// file or the flags gave.
    fn resolve(&self) -> Result<(RunConfig, Vec<String>), String> {
        let (mut c, mut given) = match &self.config {
            Some(path) => RunConfig::load_with_keys(path)?,
            None => (RunConfig::default(), Vec::new()),
        };
        macro_rules! take {
            ($($f:ident),*) => { $(if let Some(v) = self.$f.clone() {
                c.$f = v;
                given.push(stringify!($f).to_string());
            })* };
        }
        take!(
            model,
            data,
            missing,
            tokenizer,
            hidden,
            layers,
            embedding,
            dropout,
            input_dropout,
            recurrent_dropout,
            weight_drop,
            zoneout,
            layer_norm,
            proj_size,
            epochs,
            batch,
            steps,
            lr,
            clip,
            partition,
            valid_fraction,
            test_fraction,
            order,
            smoothing,
            seed,
            patience,
            schedule
        );
        if !self.columns.is_empty() {
            c.columns = self.columns.clone();
            given.push("columns".into());
        }
        if !self.covariates.is_empty() {
            c.covariates = self.covariates.clone();
            given.push("covariates".into());
        }
        if !self.date.is_empty() {
            c.date = self.date.clone();
            given.push("date".into());
        }
        c.data = sequent::data_source::absolute(&c.data);
        c.model.parse::<sequent::catalog::ModelName>()?;
        c.validate()?;
        Ok((c, given))
    }

    fn start(&self) -> Result<Start, String> {
        match (self.resume, self.overwrite) {
            (true, true) => Err("--resume and --overwrite exclude each other".into()),
            (true, false) => Ok(Start::Resume),
            (false, true) => Ok(Start::Overwrite),
            (false, false) => Ok(Start::Fresh),
        }
    }
}

fn device_name(arg: &Option<DeviceArg>) -> String {
    arg.as_ref()
        .map(|d| d.device.clone())
        .unwrap_or_else(|| sequent::device::default_name().to_string())
}

/// The settings a resumed run trains with: the run's own, with only the number of epochs
/// changed; any other setting given that differs from the run's is an error naming it.
fn resumed_config(out: &Path, resolved: &RunConfig, given: &[String]) -> Result<RunConfig, String> {
    let mut saved = load_config(out)?;
    check_fingerprints(out)?;
    let (old, new) = (
        serde_json::to_value(&saved).expect("config serialises"),
        serde_json::to_value(resolved).expect("config serialises"),
    );
    for key in given.iter().filter(|k| *k != "epochs") {
        if old[key] != new[key] {
            return Err(format!(
                "--resume: {} {} differs from the run's {}; a resumed run keeps its settings \
                 (only --epochs may grow)",
                sequent::config::flag(key),
                new[key],
                old[key]
            ));
        }
    }
    let trained = sequent_train::learner::fit::resume_point(out)?.unwrap_or(0);
    let epochs = if given.iter().any(|k| k == "epochs") {
        resolved.epochs
    } else {
        saved.epochs
    };
    if epochs <= trained {
        return Err(format!(
            "--resume: {} has finished epoch {trained}; pass --epochs above {trained} to \
             continue it",
            out.display()
        ));
    }
    saved.epochs = epochs;
    Ok(saved)
}

fn train(args: &TrainArgs) -> Result<(), String> {
    let (mut cfg, given) = args.resolve()?;
    let start = args.start()?;
    let devices = if args.devices.is_empty() {
        Vec::new()
    } else {
        sequent::device::parse_list(&args.devices)?
    };
    let device = match devices.first() {
        Some(first) => first.clone(),
        None => sequent::device::parse(&device_name(&args.device))?,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let data = Path::new(&cfg.data)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| cfg.data.clone());
        PathBuf::from("runs").join(format!("{}-{data}", cfg.model))
    });
    RunDir::check(&out, start)?;
    if start.is_resume() {
        cfg = resumed_config(&out, &cfg, &given)?;
    }
    cfg.devices = devices;
    let source = DataSource::resolve(&cfg.data)?;
    let model: sequent::catalog::ModelName = cfg.model.parse()?;
    let text = matches!(source, DataSource::Text(_));
    let classes = matches!(source, DataSource::Cases { .. });
    model.check_fits(text, classes)?;
    // Settings at their default values (a shared settings file's) are let through.
    let (defaults, values) = (
        serde_json::to_value(RunConfig::default()).expect("config serialises"),
        serde_json::to_value(&cfg).expect("config serialises"),
    );
    let changed: Vec<String> = given
        .into_iter()
        .filter(|k| values[k] != defaults[k])
        .collect();
    model.check_settings(&changed, text, classes)?;
    match &source {
        DataSource::Text(path) => {
            sequent::text::train(&cfg, path, &device, &out, start)?;
        }
        DataSource::Cases { train, test } => {
            sequent::classify::train(&cfg, train, test.as_deref(), &device, &out, start)?;
        }
        _ => {
            sequent::series::train(&cfg, &source, &device, &out, start)?;
        }
    }
    let plots: Vec<String> = ["loss.svg", "steps.svg", "forecast.svg", "confusion.csv"]
        .iter()
        .filter(|p| out.join(p).is_file())
        .map(|p| out.join(p).display().to_string())
        .collect();
    println!("run directory: {}", out.display());
    if !plots.is_empty() {
        println!("plots: {}", plots.join(", "));
    }
    Ok(())
}

/// A run's settings read back from its `config.json`, checked as the flags are.
fn load_config(run: &Path) -> Result<RunConfig, String> {
    let path = run.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(format!(
            "{} is not a sequent run directory (no {CONFIG_FILE})",
            run.display()
        ));
    }
    let cfg = RunConfig::load(&path)?;
    cfg.model
        .parse::<sequent::catalog::ModelName>()
        .and_then(|_| cfg.validate())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(cfg)
}

enum Run {
    Text(TextRun),
    Series(SeriesRun),
    Classes(ClassRun),
}

impl Run {
    /// What the run is and the commands that fit it, for a command that does not.
    fn misfit(&self, dir: &Path, command: &str) -> String {
        let (what, fits) = match self {
            Run::Text(_) => (
                "a language-model run",
                "`sequent generate` or `sequent evaluate`",
            ),
            Run::Series(_) => (
                "a forecasting run",
                "`sequent forecast` or `sequent evaluate`",
            ),
            Run::Classes(_) => ("a classification run", "`sequent evaluate`"),
        };
        format!(
            "{} is {what}; `sequent {command}` does not apply to it, {fits} does",
            dir.display()
        )
    }
}

/// A run read back from its directory, held under a shared lock (see [`lock_for_reading`]).
struct Opened {
    run: Run,
    _lock: Option<std::fs::File>,
}

fn open_run(dir: &Path) -> Result<Opened, String> {
    let lock = lock_for_reading(dir)?;
    let cfg = load_config(dir)?;
    let run = match DataSource::resolve(&cfg.data)? {
        DataSource::Text(path) => Run::Text(TextRun::new(cfg, dir, path)),
        DataSource::Cases { train, test } => Run::Classes(ClassRun {
            cfg,
            dir: dir.to_path_buf(),
            train,
            test,
        }),
        source => Run::Series(SeriesRun {
            cfg,
            dir: dir.to_path_buf(),
            source,
        }),
    };
    Ok(Opened { run, _lock: lock })
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Train(args) => train(&args),
        Command::Serve { port, devices } => {
            let devices = sequent::device::parse_list(&devices)?;
            sequent::device::serve(port, devices, |port| {
                println!("serving on ws://0.0.0.0:{port}");
                let _ = std::io::stdout().flush();
            })
        }
        Command::Generate {
            run,
            prefix,
            len,
            temperature,
            top_k,
            seed,
            device,
        } => {
            let device = sequent::device::parse(&device.device)?;
            let opened = open_run(&run)?;
            let Run::Text(text) = &opened.run else {
                return Err(opened.run.misfit(&run, "generate"));
            };
            let mut sampling = if temperature == 0.0 {
                Sampling::greedy()
            } else {
                Sampling::temperature(temperature, seed)
            };
            if top_k > 0 {
                sampling = sampling.with_top_k(top_k);
            }
            // Streamed: each piece of text is written as it is generated.
            let mut stdout = std::io::stdout().lock();
            let mut write = |piece: &str| {
                if let Err(e) = stdout.write_all(piece.as_bytes()) {
                    // A reader that stopped reading (`| head`) ends the generation quietly.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        std::process::exit(0);
                    }
                    eprintln!("error: cannot write the generated text: {e}");
                    std::process::exit(1);
                }
            };
            text.generate(&prefix, len, &sampling, &device, &mut write)?;
            write("\n");
            Ok(())
        }
        Command::Evaluate { run, device } => {
            let device = sequent::device::parse(&device.device)?;
            let opened = open_run(&run)?;
            check_fingerprints(&run)?;
            match opened.run {
                Run::Text(t) => t.evaluate(&device).map(drop),
                Run::Series(s) => s.evaluate(&device).map(drop),
                Run::Classes(c) => c.evaluate(&device).map(drop),
            }
        }
        Command::Forecast { run, steps, device } => {
            let device = sequent::device::parse(&device.device)?;
            let opened = open_run(&run)?;
            let Run::Series(s) = &opened.run else {
                return Err(opened.run.misfit(&run, "forecast"));
            };
            check_fingerprints(&run)?;
            let ahead = s.forecast(steps, &device)?;
            for (i, r) in ahead.iter().enumerate() {
                let vals: Vec<String> = r.iter().map(|v| format!("{v:.4}")).collect();
                println!("+{}: {}", i + 1, vals.join(", "));
            }
            println!("written: {}", run.join("future.csv").display());
            Ok(())
        }
        Command::Bench(b) => bench(&b),
    }
}

fn bench(b: &BenchArgs) -> Result<(), String> {
    use sequent::bench;
    let device = sequent::device::parse(&b.device.device)?;
    if b.steps == 0 || b.layers == 0 || b.batch == 0 || b.repeat == 0 {
        return Err("--steps, --layers, --batch and --repeat must be at least 1".into());
    }
    if b.hidden.contains(&0) || b.seq.contains(&0) {
        return Err("every --hidden and --seq must be at least 1".into());
    }
    if b.bidirectional && b.mode.contains(&bench::Mode::Stream) {
        return Err(
            "--bidirectional does not apply to --mode stream (generation runs forward in time)"
                .into(),
        );
    }
    if let Some((option, kind)) = b
        .options
        .iter()
        .flat_map(|o| b.kind.iter().map(move |k| (o, k)))
        .find(|(o, k)| !o.fits(**k))
    {
        return Err(format!(
            "--option {} does not apply to --kind {}",
            option.name(),
            kind.name()
        ));
    }
    if b.with_torch && !bench::torch_available() {
        return Err("--with-torch needs PyTorch: `python3 -c \"import torch\"` fails here".into());
    }
    let layers = (b.layers, b.bidirectional);
    let mut all = bench::workloads(&b.mode, &b.kind, &b.hidden, &b.seq, layers, b.batch);
    for w in &mut all {
        w.fold_embedding = !b.no_fold;
        sequent::footprint::Footprint::recurrent(
            w.kind.gates(),
            w.layers,
            w.hidden,
            if w.bidirectional { 2 } else { 1 },
            w.hidden,
            0,
            w.vocab,
            w.batch.saturating_mul(w.seq),
        )
        .check(&format!(
            "the {} workload with --hidden {} --batch {} --seq {}",
            w.kind_name(),
            w.hidden,
            w.batch,
            w.seq
        ))?;
    }
    let counts_launches = Kernels::Fused.engine(&device) == Engine::Cube;
    let columns = bench::Columns {
        per_step: b.per_step,
        torch: b.with_torch,
        options: b.options.clone(),
    };
    if !b.json {
        println!(
            "device {}; {} {}layers, batch {}, vocabulary 64; {} timed steps{}; {}\n{}",
            b.device.device,
            b.layers,
            if b.bidirectional {
                "bidirectional "
            } else {
                ""
            },
            b.batch,
            b.steps,
            if b.repeat > 1 {
                format!(", medians of {} rounds", b.repeat)
            } else {
                String::new()
            },
            if b.no_fold {
                "sequent's layers over the embedded sequence (--no-fold)"
            } else {
                "sequent folds the embedding into its first layer where that saves work \
                 (unidirectional, 2 V <= T B; --no-fold: not)"
            },
            bench::markdown_header(&columns, counts_launches)
        );
    }
    let mut trained = Vec::new();
    bench::run(&all, &device, (b.steps, b.repeat), &columns, |w, m| {
        if b.json {
            for x in m {
                println!("{}", serde_json::to_string(x).expect("serialises"));
            }
        } else {
            println!("{}", bench::markdown_row(w, m));
        }
        if w.mode == bench::Mode::Train {
            trained.push((*w, m.to_vec()));
        }
    })?;
    if b.gemm {
        for (w, m) in &trained {
            gemm_share(w, m, b.json);
        }
    }
    Ok(())
}

/// Prints the machine's GEMM rate at `w`'s shapes and each measurement's training FLOP rate as
/// a share of the best of them.
fn gemm_share(w: &sequent::bench::Workload, m: &[sequent::bench::Measurement], json: bool) {
    let shapes = w.gemm_shapes();
    let rates: Vec<f64> = shapes
        .iter()
        .map(|&s| sequent::bench::gemm_gflops(s, 5))
        .collect();
    let best = rates.iter().cloned().fold(0.0, f64::max);
    // The FLOPs a token each implementation performs (fewer with the embedding folded), and its
    // training FLOP rate in GFLOP/s.
    let flops = |x: &sequent::bench::Measurement| w.train_flops_per_token(x.embedding_folded);
    let gflops = |x: &sequent::bench::Measurement| x.tokens_per_s * flops(x) / 1e9;
    if json {
        for (s, r) in shapes.iter().zip(&rates) {
            let v = serde_json::json!({"gemm": [s.0, s.1, s.2], "gflops": r});
            println!("{v}");
        }
        for x in m {
            let v = serde_json::json!({
                "impl": x.implementation, "kind": x.kind, "hidden": x.hidden,
                "embedding_folded": x.embedding_folded,
                "train_gflops": gflops(x),
                "share_of_gemm": gflops(x) / best,
            });
            println!("{v}");
        }
        return;
    }
    let shown: Vec<String> = shapes
        .iter()
        .zip(&rates)
        .map(|((a, k, n), r)| format!("[{a} x {k}] x [{k} x {n}] {r:.0} GFLOP/s"))
        .collect();
    println!(
        "\n{} H = {}: GEMM rate (gemm crate on all threads, best of 5): {}",
        w.kind_name(),
        w.hidden,
        shown.join(", ")
    );
    for x in m {
        let rate = gflops(x);
        let mflop = flops(x) / 1e6;
        let digits = if mflop < 10.0 { 3 } else { 0 };
        let folded = if x.embedding_folded {
            " (embedding folded)"
        } else {
            ""
        };
        println!(
            "  {}{folded}: {mflop:.digits$} MFLOP/token x {:.0} tokens/s = {rate:.0} GFLOP/s, {:.0}% of {best:.0}",
            x.implementation,
            x.tokens_per_s,
            100.0 * rate / best
        );
    }
}

fn main() -> ExitCode {
    sequent::memory::retain_freed_memory();
    let cli = Cli::parse();
    let command = cli
        .command
        // The demo job replaces its own earlier run (`runs/lstm-shakespeare`) each time.
        .unwrap_or_else(|| {
            Command::Train(Box::new(TrainArgs {
                overwrite: true,
                ..TrainArgs::default()
            }))
        });
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
