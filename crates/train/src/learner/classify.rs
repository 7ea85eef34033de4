//! Training sequence classifiers on padded batches of variable-length series.

use crate::error::TrainError;
use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{ClassificationOutput, SupervisedTraining};
use sequent_models::heads::SequenceModel;
use sequent_models::loss::cross_entropy;
use sequent_models::recurrent::CellKind;

use crate::data::epoch::EpochDataset;
use crate::data::ts::{Case, CaseBatch, CaseBatcher};
use crate::learner::control::{Split, StepControl};
use crate::learner::fit::TaskMetrics;

/// A loader of padded [`CaseBatch`]es, reshuffled each epoch from `(seed, epoch)` when `shuffle`
/// is set.
pub fn case_loader(
    cases: Vec<Case>,
    batch: usize,
    shuffle: Option<u64>,
    start_epoch: usize,
) -> Result<Arc<dyn DataLoader<CaseBatch>>, TrainError> {
    if cases.is_empty() || batch == 0 {
        return Err(TrainError::Invalid(
            "no cases to load, or a batch size of 0".into(),
        ));
    }
    let data = EpochDataset::new(cases, shuffle);
    Ok(DataLoaderBuilder::new(CaseBatcher)
        .batch_size(batch)
        .build(data.starting_at_epoch(start_epoch)))
}

/// A [`SequenceModel`] classifier as burn-train trains it: cross-entropy of the logits its readout
/// gives for each case's valid steps (padding never reaches the state).
#[derive(Module, Debug)]
pub struct ClassifierLearner<C: CellKind> {
    /// The model being trained.
    pub model: SequenceModel<C>,
    #[module(skip)]
    control: StepControl,
}

impl<C: CellKind> ClassifierLearner<C> {
    /// Wraps `model` for training under `control`.
    pub fn new(model: SequenceModel<C>, control: StepControl) -> Self {
        Self { model, control }
    }

    fn run(&self, batch: CaseBatch, split: Split) -> ClassificationOutput {
        if split == Split::Train {
            self.control
                .start_epoch(&batch.inputs.device(), batch.epoch);
        }
        let logits = self.model.forward(batch.inputs, Some(&batch.lengths));
        let loss = cross_entropy(logits.clone(), batch.labels.clone());
        self.control
            .record(&loss, batch.lengths.len(), batch.epoch, split);
        ClassificationOutput::new(loss, logits, batch.labels)
    }
}

steps_from_run!(ClassifierLearner<C: CellKind>, CaseBatch, ClassificationOutput);

impl<C: CellKind> TaskMetrics for ClassifierLearner<C> {
    fn register(training: SupervisedTraining<Self>) -> SupervisedTraining<Self> {
        training.metrics((LossMetric::new(), AccuracyMetric::new()))
    }
}
