//! Training a recurrent language model with truncated back-propagation through time.

use std::sync::{Arc, Mutex};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::train::{InferenceStep, SequenceOutput, TrainOutput, TrainStep};
use sequent_models::heads::LanguageModel;
use sequent_models::recurrent::{CellKind, RecurrentState};

use crate::data::text::{StateFlow, TokenBatch};
use crate::learner::control::{Split, StepControl};

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

/// A [`LanguageModel`] as burn-train trains it: next-token cross-entropy
/// `L = -(1 / BT) sum_{b,t} log softmax(logits_{b,t})[y_{b,t}]`, the state carried and detached
/// between consecutive blocks of the sequential partition (truncated BPTT: gradients flow through
/// the `T` steps of a block only), reset at each epoch's first block, zero for the random partition.
#[derive(Module, Debug)]
pub struct LanguageLearner<C: CellKind> {
    /// The model being trained.
    pub model: LanguageModel<C>,
    #[module(skip)]
    carry: StateCarry,
    #[module(skip)]
    control: StepControl,
}

impl<C: CellKind> LanguageLearner<C> {
    /// Wraps `model` for training under `control`.
    pub fn new(model: LanguageModel<C>, control: StepControl) -> Self {
        Self {
            model,
            carry: StateCarry::default(),
            control,
        }
    }

    /// Loss and logits of a batch; records the loss under `split`.
    fn run(&self, batch: TokenBatch, split: Split) -> SequenceOutput {
        let [b, t] = batch.input.dims();
        if split == Split::Train && batch.flow != StateFlow::Continue {
            self.control.start_epoch(&batch.input.device(), batch.epoch);
        }
        let state = self.carry.take(batch.flow);
        let (logits, state) = self.model.forward(batch.input, state);
        self.carry.keep(batch.flow, state);
        let v = logits.dims()[2];
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(
                logits.clone().reshape([b * t, v]),
                batch.target.clone().reshape([b * t]),
            );
        self.control.record(&loss, b * t, batch.epoch, split);
        SequenceOutput::new(loss, logits, None, batch.target)
    }
}

impl<C: CellKind> TrainStep for LanguageLearner<C> {
    type Input = TokenBatch;
    type Output = SequenceOutput;

    fn step(&self, batch: TokenBatch) -> TrainOutput<SequenceOutput> {
        let out = self.run(batch, Split::Train);
        let grads = out.loss.backward();
        TrainOutput::new(self, grads, out)
    }

    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let control = self.control.clone();
        control.optimize(self, optim, lr, grads)
    }
}

impl<C: CellKind> InferenceStep for LanguageLearner<C> {
    type Input = TokenBatch;
    type Output = SequenceOutput;

    fn step(&self, batch: TokenBatch) -> SequenceOutput {
        self.run(batch, Split::Valid)
    }
}
