//! Training a recurrent language model with truncated back-propagation through time.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Device, Int, Tensor};
use burn::train::metric::{LossMetric, PerplexityMetric};
use burn::train::{SequenceOutput, SupervisedTraining};
use sequent_models::classical::MarkovLm;
use sequent_models::generate::Sampling;
use sequent_models::heads::LanguageModel;
use sequent_models::loss::sequence_cross_entropy;
use sequent_models::recurrent::{CellKind, RecurrentState};

use crate::data::text::{StateFlow, TokenBatch};
use crate::learner::control::Split;
use crate::learner::metrics::BitsPerCharMetric;
use crate::learner::task::{Step, Task, TaskBatch, TaskLearner};

/// Where a kept state continues: the split, the epoch and the position of the block it starts.
type Slot = (Split, usize, usize);

/// The states blocks hand to the blocks after them (sequential partition), keyed by the block
/// that continues them. Block `j` continues only block `j - 1`'s state of the same epoch and
/// split, so when data-parallel training gives each device its own contiguous run of blocks, each
/// device carries its own streams' state and starts its first block from zero.
#[derive(Clone, Debug, Default)]
pub struct StateCarry(Arc<Mutex<HashMap<Slot, RecurrentState>>>);

impl StateCarry {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Slot, RecurrentState>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state `batch` starts from: zero (`None`) unless it continues a block that has run. The
    /// first block of an epoch forgets the states kept in other epochs and splits.
    pub fn take(&self, split: Split, batch: &TokenBatch) -> Option<RecurrentState> {
        let mut slots = self.slots();
        match batch.flow {
            StateFlow::Continue => slots.remove(&(split, batch.epoch, batch.position)),
            StateFlow::Zero => None,
            StateFlow::Start => {
                slots.retain(|&(s, e, _), _| (s, e) == (split, batch.epoch));
                None
            }
        }
    }

    /// Keeps the final state of `batch`, cut from the graph, for the block after it.
    pub fn keep(&self, split: Split, batch: &TokenBatch, state: RecurrentState) {
        if batch.flow != StateFlow::Zero {
            self.slots()
                .insert((split, batch.epoch, batch.position + 1), state.detach());
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

    /// Continues `prefix` by `len` tokens chosen by `sampling` (seeded, reproducible), handing
    /// each to `each` as soon as it is chosen.
    fn generate_each(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
        each: &mut dyn FnMut(u32),
    ) -> sequent_models::Result<()>;

    /// Continues `prefix` by `len` tokens chosen by `sampling` (seeded, reproducible); returns
    /// prefix + continuation.
    fn generate(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
    ) -> sequent_models::Result<Vec<u32>> {
        sequent_models::generate::collect_after(prefix, |each| {
            self.generate_each(prefix, len, sampling, each)
        })
    }
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

    fn generate_each(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
        each: &mut dyn FnMut(u32),
    ) -> sequent_models::Result<()> {
        LanguageModel::generate_each(self, prefix, len, sampling, each)
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

    fn generate_each(
        &self,
        prefix: &[u32],
        len: usize,
        sampling: &Sampling,
        each: &mut dyn FnMut(u32),
    ) -> sequent_models::Result<()> {
        MarkovLm::generate_each(self, prefix, len, sampling, each)
    }
}

/// Next-token prediction with truncated BPTT: the cross-entropy
/// `L = -(1 / BT) sum_{b,t} log softmax(logits_{b,t})[y_{b,t}]`, the state carried and detached
/// between consecutive blocks of the sequential partition (gradients flow through the `T` steps
/// of a block only), reset at each epoch's first block, zero for the random partition.
#[derive(Clone, Debug)]
pub struct LanguageModeling<M> {
    carry: StateCarry,
    model: PhantomData<fn() -> M>,
}

impl<M> Default for LanguageModeling<M> {
    fn default() -> Self {
        Self {
            carry: StateCarry::default(),
            model: PhantomData,
        }
    }
}

impl TaskBatch for TokenBatch {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn device(&self) -> Device {
        self.input.device()
    }
}

impl<M: TokenModel> Task for LanguageModeling<M> {
    type Model = M;
    type Batch = TokenBatch;
    type Output = SequenceOutput;

    fn step(&self, model: &M, batch: TokenBatch, split: Split) -> Step<SequenceOutput> {
        let [b, t] = batch.input.dims();
        let state = self.carry.take(split, &batch);
        let (logits, state) = model.next_token_logits(batch.input.clone(), state);
        if let Some(state) = state {
            self.carry.keep(split, &batch, state);
        }
        let loss = sequence_cross_entropy(logits.clone(), batch.target.clone());
        Step {
            loss: loss.clone(),
            targets: b * t,
            output: SequenceOutput::new(loss, logits, None, batch.target),
        }
    }

    fn metrics(
        training: SupervisedTraining<TaskLearner<Self>>,
    ) -> SupervisedTraining<TaskLearner<Self>> {
        training.metrics((
            LossMetric::new(),
            PerplexityMetric::new(),
            BitsPerCharMetric::new(),
        ))
    }
}
