//! Training a recurrent language model with truncated back-propagation through time.

use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Int, Tensor};
use burn::train::metric::{LossMetric, PerplexityMetric};
use burn::train::{SequenceOutput, SupervisedTraining};
use sequent_models::classical::MarkovLm;
use sequent_models::generate::Sampling;
use sequent_models::heads::LanguageModel;
use sequent_models::loss::sequence_cross_entropy;
use sequent_models::recurrent::{CellKind, RecurrentState};

use crate::data::text::{StateFlow, TokenBatch};
use crate::learner::control::{Split, StepControl};
use crate::learner::fit::TaskMetrics;
use crate::learner::metrics::BitsPerCharMetric;

/// The state one batch hands to the next (sequential partition).
#[derive(Clone, Debug, Default)]
pub struct StateCarry(Arc<Mutex<Option<RecurrentState>>>);

impl StateCarry {
    /// The state a batch starts from: zero (`None`) unless it continues the previous batch.
    pub fn take(&self, flow: StateFlow) -> Option<RecurrentState> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match flow {
            StateFlow::Continue => slot.take(),
            StateFlow::Zero | StateFlow::Start => {
                *slot = None;
                None
            }
        }
    }

    /// Keeps the batch's final state, cut from the graph, for the next batch.
    pub fn keep(&self, flow: StateFlow, state: RecurrentState) {
        if flow != StateFlow::Zero {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(state.detach());
        }
    }
}

/// A model of `p(x_{t+1} | x_1..x_t)`: logits `[B, T, V]` for tokens `[B, T]`, from a carried state
/// if it has one.
pub trait TokenModel: Module + ModuleDisplay + 'static {
    /// Logits for `tokens` starting from `state` (`None`: zero), and the state after the last
    /// token (`None` for stateless models).
    fn next_token_logits(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, Option<RecurrentState>);

    /// Continues `prefix` by `len` tokens chosen by `sampling` (seeded, reproducible).
    fn generate(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
    ) -> sequent_models::Result<Vec<u32>>;
}

impl<C: CellKind> TokenModel for LanguageModel<C> {
    fn next_token_logits(
        &self,
        tokens: Tensor<2, Int>,
        state: Option<RecurrentState>,
    ) -> (Tensor<3>, Option<RecurrentState>) {
        let (logits, state) = self.forward(tokens, state);
        (logits, Some(state))
    }

    fn generate(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
    ) -> sequent_models::Result<Vec<u32>> {
        LanguageModel::generate(self, prefix, len, sampling)
    }
}

/// The neural first-order Markov model has no state: `x_{t+1}` depends on `x_t` only.
impl TokenModel for MarkovLm {
    fn next_token_logits(
        &self,
        tokens: Tensor<2, Int>,
        _state: Option<RecurrentState>,
    ) -> (Tensor<3>, Option<RecurrentState>) {
        (self.forward(tokens), None)
    }

    fn generate(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
    ) -> sequent_models::Result<Vec<u32>> {
        MarkovLm::generate(self, prefix, len, sampling)
    }
}

/// A [`TokenModel`] as burn-train trains it: next-token cross-entropy
/// `L = -(1 / BT) sum_{b,t} log softmax(logits_{b,t})[y_{b,t}]`, the state carried and detached
/// between consecutive blocks of the sequential partition (truncated BPTT: gradients flow through
/// the `T` steps of a block only), reset at each epoch's first block, zero for the random partition.
#[derive(Module, Debug)]
pub struct LanguageLearner<M: TokenModel> {
    /// The model being trained.
    pub model: M,
    #[module(skip)]
    carry: StateCarry,
    #[module(skip)]
    control: StepControl,
}

impl<M: TokenModel> LanguageLearner<M> {
    /// Wraps `model` for training under `control`.
    pub fn new(model: M, control: StepControl) -> Self {
        Self {
            model,
            carry: StateCarry::default(),
            control,
        }
    }

    /// Loss and logits of a batch; records the loss under `split`.
    fn run(&self, batch: TokenBatch, split: Split) -> SequenceOutput {
        let [b, t] = batch.input.dims();
        if split == Split::Train {
            self.control.start_epoch(&batch.input.device(), batch.epoch);
        }
        let state = self.carry.take(batch.flow);
        let (logits, state) = self.model.next_token_logits(batch.input, state);
        if let Some(state) = state {
            self.carry.keep(batch.flow, state);
        }
        let loss = sequence_cross_entropy(logits.clone(), batch.target.clone());
        self.control.record(&loss, b * t, batch.epoch, split);
        SequenceOutput::new(loss, logits, None, batch.target)
    }
}

steps_from_run!(LanguageLearner<M: TokenModel>, TokenBatch, SequenceOutput);

impl<M: TokenModel> TaskMetrics for LanguageLearner<M> {
    fn register(training: SupervisedTraining<Self>) -> SupervisedTraining<Self> {
        training.metrics((
            LossMetric::new(),
            PerplexityMetric::new(),
            BitsPerCharMetric::new(),
        ))
    }
}
