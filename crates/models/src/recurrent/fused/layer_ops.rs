//! The bodies of the whole-sequence ops of [`super::FusedCellOps`] on the host: one layer
//! direction, or both directions of a bidirectional layer at once, and their backward under
//! `Autodiff`.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Shape;

use super::host::{HostValues, device_tensor, host, host_indices};
use super::sequence::{
    self, Direction, FusedCell, LayerGrads, LayerInput, LayerInputs, Trace, join_rows, split_rows,
};

/// A layer direction's weights as the ops take them: `[W_ih, b_ih, W_hh, b_hh]`.
pub(super) type DirectionWeights<B> = [FloatTensor<B>; 4];

/// What the bidirectional op keeps for its backward: each direction's trace and inputs.
type BidirectionalState<B> = ([Trace; 2], [HostLayer<B>; 2]);

/// A layer's initial state as the ops take it: `h0` and, for the LSTM, `c0`.
pub(super) type InitialState<B> = (FloatTensor<B>, Option<FloatTensor<B>>);

/// A layer direction's input on the host: features `[T, B, I]`, or token ids `[T, B]`.
#[derive(Clone, Debug)]
pub(super) enum HostInput<B: Backend> {
    /// Features, read in place or copied.
    Features(HostValues<B>),
    /// Token ids, each below the vocabulary's size.
    Tokens(Vec<usize>),
}

impl<B: Backend> HostInput<B> {
    /// The features `x` on the host, and their shape.
    pub(super) fn features(x: FloatTensor<B>) -> (Self, Shape) {
        let (x, shape) = host::<B>(x);
        (HostInput::Features(x), shape)
    }

    /// The token ids `tokens` (each below `vocab`, the columns of `W_ih`) on the host, and their
    /// shape.
    ///
    /// # Panics
    /// On a token outside `0..vocab`, naming it.
    pub(super) fn tokens(tokens: IntTensor<B>, vocab: usize) -> (Self, Shape) {
        let (ids, shape) = host_indices::<B>(tokens, vocab, "token");
        (HostInput::Tokens(ids), shape)
    }
}

/// A layer direction's inputs on the host, its dimensions `(T, B, H)` and a tensor of its device;
/// the sequence ops keep it for their backward.
#[derive(Clone, Debug)]
pub(super) struct HostLayer<B: Backend> {
    x: HostInput<B>,
    weights: [HostValues<B>; 4],
    dims: (usize, usize, usize),
    like: FloatTensor<B>,
}

impl<B: Backend> HostLayer<B> {
    /// From the layer's input `x` on the host (`[T, B, ..]`) and the direction's weights.
    fn new((x, shape): (HostInput<B>, Shape), weights: DirectionWeights<B>) -> Self {
        let h = weights[2].shape()[1];
        let like = weights[0].clone();
        Self {
            x,
            weights: weights.map(|w| host::<B>(w).0),
            dims: (shape[0], shape[1], h),
            like,
        }
    }

    fn inputs(&self) -> LayerInputs<'_> {
        let [w_ih, b_ih, w_hh, b_hh] = &self.weights;
        LayerInputs {
            x: match &self.x {
                HostInput::Features(x) => LayerInput::Features(x),
                HostInput::Tokens(ids) => LayerInput::Tokens(ids),
            },
            w_ih,
            b_ih,
            w_hh,
            b_hh,
        }
    }

    /// The gradients with their shapes, in the ops' argument order: `x, W_ih, b_ih, W_hh, b_hh,
    /// h0, c0` (`c0` empty but for the LSTM).
    fn shaped(&self, d: LayerGrads) -> [(Vec<f32>, Shape); 7] {
        let (t, b, h) = self.dims;
        let gh = self.weights[1].len();
        let width = self.weights[0].len() / gh;
        [
            (d.x, Shape::new([t, b, width])),
            (d.w_ih, Shape::new([gh, width])),
            (d.b_ih, Shape::new([gh])),
            (d.w_hh, Shape::new([gh, h])),
            (d.b_hh, Shape::new([gh])),
            (d.h0, Shape::new([b, h])),
            (d.c0, Shape::new([b, h])),
        ]
    }

    /// [`Self::shaped`] for the op's parents: from `W_ih` on for token ids (which have no
    /// gradient, and are no parent).
    fn parent_grads(&self, d: LayerGrads) -> impl Iterator<Item = (Vec<f32>, Shape)> {
        let skip = usize::from(matches!(self.x, HostInput::Tokens(_)));
        self.shaped(d).into_iter().skip(skip)
    }
}

/// The initial state on the host: `h0`, and `c0` (empty without one).
fn host_state<B: Backend>((h0, c0): InitialState<B>) -> (HostValues<B>, HostValues<B>) {
    let c0 = c0.map_or(HostValues::Copied(Vec::new()), |c| host::<B>(c).0);
    (host::<B>(h0).0, c0)
}

/// Time slabs of an op's output: the `T` outputs, and for the LSTM one more with the final cell
/// state.
fn output_slabs(cell: FusedCell, steps: usize) -> usize {
    steps + usize::from(cell == FusedCell::Lstm)
}

/// A layer direction's input as the whole-sequence ops take it.
pub(super) enum OpInput<B: Backend> {
    /// Features `[T, B, I]` (a parent of the op under autodiff).
    Features(FloatTensor<B>),
    /// Token ids `[T, B]`, each a column of `W_ih` (no gradient).
    Tokens(IntTensor<B>),
}

/// One layer direction over `x` (features `[T, B, I]` or tokens `[T, B]`) from `state` (`[B, H]`
/// each); returns the trace and inputs kept for the backward, and the output `[T, B, H]` (LSTM:
/// `[T + 1, B, H]`, the final cell state last).
pub(super) fn sequence_host<B: Backend>(
    cell: FusedCell,
    x: OpInput<B>,
    weights: DirectionWeights<B>,
    state: InitialState<B>,
    direction: Direction,
) -> ((Trace, HostLayer<B>), FloatTensor<B>) {
    let x = match x {
        OpInput::Features(x) => HostInput::features(x),
        OpInput::Tokens(ids) => HostInput::tokens(ids, weights[0].shape()[1]),
    };
    let layer = HostLayer::new(x, weights);
    let (h0, c0) = host_state::<B>(state);
    let dims @ (t, b, h) = layer.dims;
    let inputs = layer.inputs();
    // The output is copied out of the trace on the pool too (its threads share the copy).
    let (trace, out) = sequence::forward_in_pool(b, || {
        let trace = cell.forward(&inputs, (&h0, &c0), dims, direction);
        let out = trace.output(dims);
        (trace, out)
    });
    let shape = Shape::new([output_slabs(cell, t), b, h]);
    let out = device_tensor::<B>(out, shape, &layer.like);
    ((trace, layer), out)
}

/// Both directions of a bidirectional layer over `x` `[T, B, I]`, at the same time, from `state`
/// (`[2, B, H]` each, the forward direction first). The output is `[T, B, 2H]` (LSTM:
/// `[T + 1, B, 2H]`, the final cell states last), each row the forward direction's values, then
/// the reverse direction's: the next layer's input as it is.
pub(super) fn bidirectional_host<B: Backend>(
    cell: FusedCell,
    x: FloatTensor<B>,
    [forward, reverse]: [DirectionWeights<B>; 2],
    state: InitialState<B>,
) -> (BidirectionalState<B>, FloatTensor<B>) {
    let x = HostInput::features(x);
    let layers = [
        HostLayer::new(x.clone(), forward),
        HostLayer::new(x, reverse),
    ];
    let (h0, c0) = host_state::<B>(state);
    let dims @ (t, b, h) = layers[0].dims;
    let [fwd, rev] = [0, 1].map(|d| {
        let (h0, c0) = (direction_part(&h0, d, b * h), direction_part(&c0, d, b * h));
        (layers[d].inputs(), h0, c0)
    });
    let run = |(inputs, h0, c0): (LayerInputs<'_>, &[f32], &[f32]), direction| {
        cell.forward(&inputs, (h0, c0), dims, direction)
    };
    let traces = sequence::both(
        b,
        || run(fwd, Direction::Forward),
        || run(rev, Direction::Reverse),
    );
    let out = join_rows(&traces.0.output(dims), h, &traces.1.output(dims), h);
    let shape = Shape::new([output_slabs(cell, t), b, 2 * h]);
    let out = device_tensor::<B>(out, shape, &layers[0].like);
    (([traces.0, traces.1], layers), out)
}

/// Direction `d`'s `[B, H]` part (`bh` values) of a stacked `[2, B, H]` state, or nothing from
/// an empty one (the cell state of a cell without one).
fn direction_part(v: &[f32], d: usize, bh: usize) -> &[f32] {
    if v.is_empty() { v } else { &v[d * bh..][..bh] }
}

/// Registers `values` as the gradients of the op's `parents`, in order.
fn register<B: Backend>(
    parents: impl IntoIterator<Item = Option<NodeId>>,
    values: impl IntoIterator<Item = (Vec<f32>, Shape)>,
    like: &FloatTensor<B>,
    grads: &mut Gradients,
) {
    for (id, (values, shape)) in parents.into_iter().zip(values) {
        if let Some(id) = id {
            grads.register::<B>(id, device_tensor::<B>(values, shape, like));
        }
    }
}

/// The backward of [`sequence_host`]: BPTT inside the op; the parents are `x` (features only:
/// token ids are no parent), `W_ih, b_ih, W_hh, b_hh, h0` and (LSTM) `c0`.
#[derive(Debug)]
pub(super) struct SequenceBackward;

impl<B: Backend, const N: usize> Backward<B, N> for SequenceBackward {
    /// The trace and the layer's inputs.
    type State = (Trace, HostLayer<B>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (trace, layer) = ops.state;
        let (g, _) = host::<B>(grad);
        let d = sequence::in_pool(|| trace.backward(&layer.inputs(), &g, layer.dims));
        let parents = ops.parents.map(|n| n.map(|n| n.id));
        register::<B>(parents, layer.parent_grads(d), &layer.like, grads);
    }
}

/// The backward of [`bidirectional_host`]: both directions' BPTT at the same time; the parents
/// are `x`, the forward direction's `W_ih, b_ih, W_hh, b_hh`, the reverse direction's, `h0` and
/// (LSTM) `c0`.
#[derive(Debug)]
pub(super) struct BidirectionalBackward;

impl<B: Backend, const N: usize> Backward<B, N> for BidirectionalBackward {
    type State = BidirectionalState<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let ([fwd, rev], [lf, lr]) = ops.state;
        let (g, _) = host::<B>(grad);
        let (_, b, h) = lf.dims;
        let (gf, gr) = split_rows(&g, 2 * h, h);
        let (df, dr) = sequence::in_pool(|| {
            rayon::join(
                || fwd.backward(&lf.inputs(), &gf, lf.dims),
                || rev.backward(&lr.inputs(), &gr, lr.dims),
            )
        });
        let [x, f_w_ih, f_b_ih, f_w_hh, f_b_hh, f_h0, f_c0] = lf.shaped(df);
        let [x_r, r_w_ih, r_b_ih, r_w_hh, r_b_hh, r_h0, r_c0] = lr.shaped(dr);
        // Both directions read x (their gradients add up); the initial states are stacked.
        let dx = x.0.iter().zip(&x_r.0).map(|(a, b)| a + b).collect();
        let both = |a: Vec<f32>, c: Vec<f32>| ([a, c].concat(), Shape::new([2, b, h]));
        let values = [
            (dx, x.1),
            f_w_ih,
            f_b_ih,
            f_w_hh,
            f_b_hh,
            r_w_ih,
            r_b_ih,
            r_w_hh,
            r_b_hh,
            both(f_h0.0, r_h0.0),
            both(f_c0.0, r_c0.0),
        ];
        let parents = ops.parents.map(|n| n.map(|n| n.id));
        register::<B>(parents, values, &lf.like, grads);
    }
}

/// Runs `op` under autodiff: with `backward` recorded over `nodes` when a parent needs a gradient.
pub(super) fn tracked<B: Backend, C: CheckpointStrategy, T: Backward<B, N>, const N: usize>(
    backward: T,
    nodes: [NodeGuard; N],
    op: impl FnOnce() -> (T::State, FloatTensor<B>),
) -> FloatTensor<Autodiff<B, C>> {
    match backward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (state, out) = op();
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(op().1),
    }
}

/// The tensors of an autodiff op on the inner backend (an autodiff tensor's type does not depend
/// on the checkpointing strategy).
fn primitives<B: Backend, const N: usize>(
    tensors: [FloatTensor<Autodiff<B>>; N],
) -> [FloatTensor<B>; N] {
    tensors.map(|t| t.into_primitive())
}

/// [`sequence_host`] under autodiff.
pub(super) fn sequence_autodiff<B: Backend, C: CheckpointStrategy>(
    cell: FusedCell,
    x: OpInput<Autodiff<B, C>>,
    weights: DirectionWeights<Autodiff<B, C>>,
    (h0, c0): InitialState<Autodiff<B, C>>,
    direction: Direction,
) -> FloatTensor<Autodiff<B, C>> {
    // The parents in the op's argument order: x (features only), the weights, h0, c0 (LSTM).
    let (x_node, x) = match x {
        OpInput::Features(x) => (Some(x.node()), OpInput::Features(x.into_primitive())),
        OpInput::Tokens(ids) => (None, OpInput::Tokens(ids)),
    };
    let nodes: Vec<NodeGuard> = x_node
        .into_iter()
        .chain(weights.each_ref().map(|w| w.node()))
        .chain([h0.node()])
        .chain(c0.as_ref().map(|c| c.node()))
        .collect();
    let state = (h0.into_primitive(), c0.map(|c| c.into_primitive()));
    let op = || sequence_host::<B>(cell, x, primitives(weights), state, direction);
    match nodes.len() {
        5 => tracked::<B, C, _, 5>(SequenceBackward, array(nodes), op),
        6 => tracked::<B, C, _, 6>(SequenceBackward, array(nodes), op),
        _ => tracked::<B, C, _, 7>(SequenceBackward, array(nodes), op),
    }
}

/// `nodes` as an array (its length is `N`).
fn array<const N: usize>(nodes: Vec<NodeGuard>) -> [NodeGuard; N] {
    let len = nodes.len();
    nodes
        .try_into()
        .unwrap_or_else(|_| panic!("{len} parents, not {N}"))
}

/// [`bidirectional_host`] under autodiff.
pub(super) fn bidirectional_autodiff<B: Backend, C: CheckpointStrategy>(
    cell: FusedCell,
    x: FloatTensor<Autodiff<B, C>>,
    [forward, reverse]: [DirectionWeights<Autodiff<B, C>>; 2],
    (h0, c0): InitialState<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let [a, b, c, d] = forward.each_ref().map(|w| w.node());
    let [e, f, g, h] = reverse.each_ref().map(|w| w.node());
    let nodes = [x.node(), a, b, c, d, e, f, g, h, h0.node()];
    let c0_node = c0.as_ref().map(|c| c.node());
    let [x, h0] = primitives([x, h0]);
    let state = (h0, c0.map(|c| c.into_primitive()));
    let weights = [primitives(forward), primitives(reverse)];
    let op = || bidirectional_host::<B>(cell, x, weights, state);
    match c0_node {
        Some(c0) => {
            let [x, a, b, c, d, e, f, g, h, h0] = nodes;
            let nodes = [x, a, b, c, d, e, f, g, h, h0, c0];
            tracked::<B, C, _, 11>(BidirectionalBackward, nodes, op)
        }
        None => tracked::<B, C, _, 10>(BidirectionalBackward, nodes, op),
    }
}
