//! Sequence classification from the command line (`.ts` data): train and evaluate.
//!
//! Validation cases are a seeded random `valid_fraction` of the training file (cases have no
//! time order between them); the test file, if any, is only used for the final scores. A
//! classification run directory holds `config.json`, `classes.json`, `model.bpk`, `checkpoint/`,
//! `metrics.csv`, `steps.csv`, `loss.svg` and `confusion.csv` (rows: true class, columns:
//! predicted).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sequent_models::heads::SequenceModel;
use sequent_models::recurrent::CellKind;
use sequent_models::rng::SplitMix64;
use sequent_train::data::ts::{Case, TsData};
use sequent_train::learner::classify::case_loader;
use sequent_train::learner::{self, Classification, TaskLearner};

use crate::catalog::{ClassifierFn, with_classifier};
use crate::config::RunConfig;
use crate::footprint::Footprint;
use crate::run::{fit_and_report, model_device};
use crate::run_dir::Start;

/// Accuracy and confusion matrix on a set of cases.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScores {
    /// Fraction of cases classified correctly.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

fn read(path: &Path) -> Result<TsData, String> {
    TsData::read(path).map_err(|e| e.to_string())
}

/// Splits the training cases into (train, validation) with a seeded shuffle.
fn split_cases(data: &TsData, fraction: f64, seed: u64) -> Result<(Vec<Case>, Vec<Case>), String> {
    let mut cases = data.cases();
    let mut rng = SplitMix64::new(seed);
    for i in (1..cases.len()).rev() {
        cases.swap(i, rng.below(i + 1));
    }
    let n_valid = ((cases.len() as f64 * fraction).round() as usize).max(1);
    if n_valid >= cases.len() {
        return Err(format!(
            "{} cases are too few to hold out {n_valid} for validation",
            cases.len()
        ));
    }
    let valid = cases.split_off(cases.len() - n_valid);
    Ok((cases, valid))
}

/// Trains `cfg.model` on the cases of `train` into `out`; scores validation and `test`.
pub fn train(
    cfg: &RunConfig,
    train: &Path,
    test: Option<&Path>,
    device: &Device,
    out: &Path,
    start: Start,
) -> Result<ClassScores, String> {
    let data = read(train)?;
    let test_cases = test.map(read).transpose()?;
    if let Some(t) = &test_cases
        && (t.classes != data.classes || t.features() != data.features())
    {
        return Err("the test file's classes or dimensions differ from the training file's".into());
    }
    let (train_cases, valid_cases) = split_cases(&data, cfg.valid_fraction, cfg.seed)?;
    Footprint::of_run(cfg, cfg.model.parse()?, data.features(), false).check("this model")?;
    let _run = cfg.start_run(out, start)?;
    let json = serde_json::to_string(&data.classes).expect("serialises");
    sequent_train::io::write_atomic(&out.join("classes.json"), json.as_bytes())?;
    eprintln!(
        "{} on {}: {} train / {} validation / {} test cases, {} features, {} classes",
        cfg.model,
        train.display(),
        train_cases.len(),
        valid_cases.len(),
        test_cases.as_ref().map_or(0, |t| t.series.len()),
        data.features(),
        data.classes.len()
    );
    let resume_after = if start.is_resume() {
        learner::fit::resume_point(out)?
    } else {
        None
    };
    let train_device = device.clone().autodiff();
    train_device.seed(cfg.seed);
    let scores = with_classifier(
        cfg,
        data.features(),
        data.classes.len(),
        &train_device,
        TrainClassifier {
            cfg,
            train: train_cases,
            valid: valid_cases,
            test: test_cases.map(|t| t.cases()),
            out,
            resume_after,
        },
    )??;
    let set = if test.is_some() { "test" } else { "validation" };
    print_scores(&scores, &data.classes, set);
    write_confusion(out, &scores, &data.classes)?;
    Ok(scores)
}

struct TrainClassifier<'a> {
    cfg: &'a RunConfig,
    train: Vec<Case>,
    valid: Vec<Case>,
    test: Option<Vec<Case>>,
    out: &'a Path,
    resume_after: Option<usize>,
}

impl ClassifierFn for TrainClassifier<'_> {
    type Out = Result<ClassScores, String>;

    fn call<C: CellKind>(self, model: SequenceModel<C>) -> Self::Out {
        let cfg = self.cfg;
        let start = self.resume_after.unwrap_or(0);
        let train = case_loader(self.train, cfg.batch, Some(cfg.seed), start)?;
        let valid_cases = self.valid.clone();
        let valid = case_loader(self.valid, cfg.batch, None, start)?;
        let (fitted, _) = fit_and_report(
            |control| TaskLearner::new(model, Classification::default(), control),
            cfg.batch,
            train,
            valid,
            cfg,
            self.out,
            self.resume_after,
            "cross-entropy (nats)",
        )?;
        let model = fitted.model;
        learner::fit::save_model(model.clone(), &self.out.join("model.bpk"))?;
        let valid = score(&model, &valid_cases, cfg.batch)?;
        println!("validation accuracy {:.4}", valid.accuracy);
        match self.test {
            Some(test) => score(&model, &test, cfg.batch),
            None => Ok(valid),
        }
    }
}

/// Accuracy and confusion of `model` on `cases`.
fn score<C: CellKind>(
    model: &SequenceModel<C>,
    cases: &[Case],
    batch: usize,
) -> Result<ClassScores, String> {
    let device = model_device(model)?;
    let classes = model.head.weight.dims()[1];
    let mut confusion = vec![vec![0usize; classes]; classes];
    let loader = case_loader(cases.to_vec(), batch, None, 0)?.to_device(&device);
    for b in loader.iter() {
        let b = b.map_err(|e| e.to_string())?;
        let logits = model.forward(b.inputs, Some(&b.lengths));
        let predicted = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        let truth = b
            .labels
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        for (t, p) in truth.iter().zip(&predicted) {
            confusion[*t as usize][*p as usize] += 1;
        }
    }
    let total: usize = confusion.iter().flatten().sum();
    let right: usize = (0..classes).map(|k| confusion[k][k]).sum();
    Ok(ClassScores {
        accuracy: right as f64 / total.max(1) as f64,
        confusion,
    })
}

fn print_scores(scores: &ClassScores, classes: &[String], set: &str) {
    println!("{set} accuracy {:.4}", scores.accuracy);
    println!("confusion matrix (rows: true class, columns: predicted):");
    println!(
        "      {}",
        classes
            .iter()
            .map(|c| format!("{c:>4}"))
            .collect::<String>()
    );
    for (c, row) in classes.iter().zip(&scores.confusion) {
        println!(
            "{c:>5} {}",
            row.iter().map(|n| format!("{n:>4}")).collect::<String>()
        );
    }
}

fn write_confusion(out: &Path, scores: &ClassScores, classes: &[String]) -> Result<(), String> {
    let mut csv = format!("true\\predicted,{}\n", classes.join(","));
    for (c, row) in classes.iter().zip(&scores.confusion) {
        let cells: Vec<String> = row.iter().map(usize::to_string).collect();
        csv.push_str(&format!("{c},{}\n", cells.join(",")));
    }
    sequent_train::io::write_atomic(&out.join("confusion.csv"), csv.as_bytes())
        .map_err(String::from)
}

/// A trained classification run read back from its directory.
pub struct ClassRun {
    /// The run's settings.
    pub cfg: RunConfig,
    /// Where it lives.
    pub dir: PathBuf,
    /// Training cases (for validation) and the test file.
    pub train: PathBuf,
    /// The test file, if any.
    pub test: Option<PathBuf>,
}

impl ClassRun {
    /// Scores the trained model on the test file (or the validation cases without one).
    pub fn evaluate(&self, device: &Device) -> Result<ClassScores, String> {
        let data = read(&self.train)?;
        let cases = match &self.test {
            Some(t) => read(t)?.cases(),
            None => split_cases(&data, self.cfg.valid_fraction, self.cfg.seed)?.1,
        };
        let weights = self.dir.join("model.bpk");
        let scores = with_classifier(
            &self.cfg,
            data.features(),
            data.classes.len(),
            device,
            Evaluate {
                weights: &weights,
                cases: &cases,
                batch: self.cfg.batch,
            },
        )??;
        let set = if self.test.is_some() {
            "test"
        } else {
            "validation"
        };
        print_scores(&scores, &data.classes, set);
        write_confusion(&self.dir, &scores, &data.classes)?;
        Ok(scores)
    }
}

struct Evaluate<'a> {
    weights: &'a Path,
    cases: &'a [Case],
    batch: usize,
}

impl ClassifierFn for Evaluate<'_> {
    type Out = Result<ClassScores, String>;

    fn call<C: CellKind>(self, model: SequenceModel<C>) -> Self::Out {
        use burn::module::Module;
        let model = learner::fit::load_model(model, self.weights)?.valid();
        score(&model, self.cases, self.batch)
    }
}
