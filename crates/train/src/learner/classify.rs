//! Training sequence classifiers on padded batches of variable-length series.

use crate::error::TrainError;
use std::marker::PhantomData;
use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::tensor::Device;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{ClassificationOutput, SupervisedTraining};
use sequent_models::heads::SequenceModel;
use sequent_models::loss::cross_entropy;
use sequent_models::recurrent::CellKind;

use crate::data::epoch::EpochDataset;
use crate::data::ts::{Case, CaseBatch, CaseBatcher};
use crate::learner::control::Split;
use crate::learner::task::{Step, Task, TaskBatch, TaskLearner};

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

/// Sequence classification: the cross-entropy of the logits a [`SequenceModel`]'s readout gives
/// for each case's valid steps (padding never reaches the state).
#[derive(Clone, Debug)]
pub struct Classification<C>(PhantomData<fn() -> C>);

impl<C> Default for Classification<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl TaskBatch for CaseBatch {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn device(&self) -> Device {
        self.inputs.device()
    }
}

impl<C: CellKind> Task for Classification<C> {
    type Model = SequenceModel<C>;
    type Batch = CaseBatch;
    type Output = ClassificationOutput;

    fn step(
        &self,
        model: &SequenceModel<C>,
        batch: CaseBatch,
        _split: Split,
    ) -> Step<ClassificationOutput> {
        let logits = model.forward(batch.inputs, Some(&batch.lengths));
        let loss = cross_entropy(logits.clone(), batch.labels.clone());
        Step {
            loss: loss.clone(),
            targets: batch.lengths.len(),
            output: ClassificationOutput::new(loss, logits, batch.labels),
        }
    }

    fn metrics(
        training: SupervisedTraining<TaskLearner<Self>>,
    ) -> SupervisedTraining<TaskLearner<Self>> {
        training.metrics((LossMetric::new(), AccuracyMetric::new()))
    }
}
