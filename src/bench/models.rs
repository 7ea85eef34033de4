//! The benchmark's char-LM around any recurrent stack: sequent's layers, or `burn::nn`'s stacked
//! by hand.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};
use sequent_models::loss::sequence_cross_entropy;
use sequent_models::recurrent::{CellKind, Recurrent};
use sequent_models::time_major::{embed_steps, every_step};

use super::workload::Workload;

/// A recurrent stack `[B, T, H] -> [B, T, H]` that can carry its state.
pub trait SeqLayer: Module + burn::module::ModuleDisplay {
    /// The state carried between calls.
    type State;
    /// Runs the stack from `state` (zero if `None`).
    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State);
    /// Runs the stack over `embedding.forward(tokens)` from `state`, folding the embedding into
    /// the first layer where the stack can ([`Self::folds_embedding`]).
    fn run_embedded(
        &self,
        embedding: &Embedding,
        tokens: Tensor<2, Int>,
        state: Option<Self::State>,
    ) -> (Tensor<3>, Self::State) {
        self.run(embedding.forward(tokens), state)
    }
    /// Whether [`Self::run_embedded`] folds an embedding of `vocab` rows over `steps` x `batch`
    /// tokens on `device`.
    fn folds_embedding(&self, _vocab: usize, _steps: usize, _batch: usize, _: &Device) -> bool {
        false
    }
    /// Width of the outputs for workload `w`: `D * H`, unless the layers project them.
    fn output_width(&self, w: &Workload) -> usize {
        w.directions() * w.hidden
    }
    /// Greedy generation of `n` tokens from the token `first` `[1, 1]`, each fed back as the
    /// next call's input with the state carried, through `embedding` and `head`; returns the
    /// last token.
    fn stream(
        &self,
        embedding: &Embedding,
        head: &Linear,
        first: Tensor<2, Int>,
        n: usize,
    ) -> Tensor<2, Int> {
        greedy(first, n, |token, state| {
            let (h, s) = self.run(embed_steps(embedding, token), state);
            (
                every_step(h, |h| head.forward(h)).argmax(2).reshape([1, 1]),
                s,
            )
        })
    }
}

/// `n` tokens from `first`, each the input of the next `step` (a token and the carried state to
/// the next token and state); returns the last.
fn greedy<S>(
    first: Tensor<2, Int>,
    n: usize,
    mut step: impl FnMut(Tensor<2, Int>, Option<S>) -> (Tensor<2, Int>, S),
) -> Tensor<2, Int> {
    let (mut token, mut state) = (first, None);
    for _ in 0..n {
        let (next, s) = step(token, state);
        (token, state) = (next, Some(s));
    }
    token
}

impl<C: CellKind> SeqLayer for Recurrent<C> {
    type State = sequent_models::recurrent::RecurrentState;

    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
        self.forward(x, state)
    }

    fn run_embedded(
        &self,
        embedding: &Embedding,
        tokens: Tensor<2, Int>,
        state: Option<Self::State>,
    ) -> (Tensor<3>, Self::State) {
        self.try_forward_embedded(embedding, tokens, state)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn folds_embedding(&self, vocab: usize, steps: usize, batch: usize, device: &Device) -> bool {
        Recurrent::folds_embedding(self, vocab, steps, batch, device)
    }

    fn output_width(&self, _: &Workload) -> usize {
        self.output_size()
    }

    /// Through the stack's [`sequent_models::recurrent::Stepper`], as generation runs.
    fn stream(
        &self,
        embedding: &Embedding,
        head: &Linear,
        first: Tensor<2, Int>,
        n: usize,
    ) -> Tensor<2, Int> {
        let stepper = self.stepper();
        greedy(first, n, |token, state| {
            let x = embedding.forward(token).reshape([1, self.input_size]);
            let (h, s) = stepper.step(x, state);
            (head.forward(h).argmax(1), s)
        })
    }
}

/// A stack of `burn::nn` layers `$layer` (which has no `num_layers`), and, given the state type
/// its `forward(x, state)` returns, its [`SeqLayer`] impl.
macro_rules! burn_nn_stack {
    ($name:ident, $layer:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Module, Debug)]
        pub struct $name {
            /// The layers, first to last.
            pub(super) layers: Vec<$layer>,
        }
    };
    ($name:ident, $layer:ty, $doc:literal, $state:ty) => {
        burn_nn_stack!($name, $layer, $doc);

        impl SeqLayer for $name {
            type State = Vec<$state>;

            fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
                stacked(&self.layers, x, state, |l, x, s| l.forward(x, s))
            }
        }
    };
}

burn_nn_stack!(
    BurnLstmStack,
    burn::nn::Lstm,
    "`burn::nn` LSTM layers stacked by hand.",
    burn::nn::LstmState<2>
);
burn_nn_stack!(
    BurnGruStack,
    burn::nn::Gru,
    "`burn::nn` GRU layers stacked by hand."
);
burn_nn_stack!(
    BurnRnnStack,
    burn::nn::Rnn,
    "`burn::nn` RNN layers stacked by hand.",
    burn::nn::RnnState<2>
);
burn_nn_stack!(
    BurnBiLstmStack,
    burn::nn::BiLstm,
    "`burn::nn` bidirectional LSTM layers stacked by hand.",
    burn::nn::LstmState<3>
);
burn_nn_stack!(
    BurnBiGruStack,
    burn::nn::BiGru,
    "`burn::nn` bidirectional GRU layers stacked by hand.",
    Tensor<3>
);
burn_nn_stack!(
    BurnBiRnnStack,
    burn::nn::BiRnn,
    "`burn::nn` bidirectional RNN layers stacked by hand.",
    burn::nn::RnnState<3>
);

/// Runs `layers` one after the other, each from its own carried state.
fn stacked<L, S>(
    layers: &[L],
    x: Tensor<3>,
    state: Option<Vec<S>>,
    step: impl Fn(&L, Tensor<3>, Option<S>) -> (Tensor<3>, S),
) -> (Tensor<3>, Vec<S>) {
    let previous: Vec<Option<S>> = match state {
        Some(v) => v.into_iter().map(Some).collect(),
        None => layers.iter().map(|_| None).collect(),
    };
    let mut states = Vec::with_capacity(layers.len());
    let mut x = x;
    for (layer, s) in layers.iter().zip(previous) {
        let (y, s) = step(layer, x, s);
        states.push(s);
        x = y;
    }
    (x, states)
}

impl SeqLayer for BurnGruStack {
    type State = Vec<Tensor<2>>;

    fn run(&self, x: Tensor<3>, state: Option<Self::State>) -> (Tensor<3>, Self::State) {
        stacked(&self.layers, x, state, |l, x, s| {
            let y = l.forward(x, s);
            let [b, t, h] = y.dims();
            let last = y.clone().narrow(1, t - 1, 1).reshape([b, h]);
            (y, last)
        })
    }
}

/// The char-LM of the workload around any recurrent stack.
#[derive(Module, Debug)]
pub struct CharLm<R: SeqLayer> {
    embedding: Embedding,
    rnn: R,
    head: Linear,
    /// Run the stack with [`SeqLayer::run_embedded`] ([`Workload::fold_embedding`]).
    #[module(skip)]
    fold: bool,
}

impl<R: SeqLayer> CharLm<R> {
    pub(super) fn new(rnn: R, w: &Workload, device: &Device) -> Self {
        Self {
            embedding: EmbeddingConfig::new(w.vocab, w.hidden).init(device),
            head: LinearConfig::new(rnn.output_width(w), w.vocab).init(device),
            rnn,
            fold: w.fold_embedding,
        }
    }

    /// Whether a call over `steps` steps of `batch` rows folds the embedding into the first
    /// layer: [`Workload::fold_embedding`] asked for it and the stack can
    /// ([`SeqLayer::folds_embedding`]).
    pub(super) fn folds_embedding(
        &self,
        vocab: usize,
        steps: usize,
        batch: usize,
        device: &Device,
    ) -> bool {
        self.fold && self.rnn.folds_embedding(vocab, steps, batch, device)
    }

    pub(super) fn logits(
        &self,
        inputs: Tensor<2, Int>,
        state: Option<R::State>,
    ) -> (Tensor<3>, R::State) {
        let (h, state) = if self.fold {
            self.rnn.run_embedded(&self.embedding, inputs, state)
        } else {
            self.rnn.run(embed_steps(&self.embedding, inputs), state)
        };
        (every_step(h, |h| self.head.forward(h)), state)
    }

    /// Greedy generation of `n` tokens from `first` `[1, 1]` ([`SeqLayer::stream`]).
    pub(super) fn stream(&self, first: Tensor<2, Int>, n: usize) -> Tensor<2, Int> {
        self.rnn.stream(&self.embedding, &self.head, first, n)
    }

    /// Mean cross-entropy of predicting `targets` `[B, T]` from `inputs` `[B, T]`.
    pub(super) fn loss(&self, inputs: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
        let (logits, _) = self.logits(inputs, None);
        sequence_cross_entropy(logits, targets)
    }
}
