//! The fused recurrent ops under `Autodiff`: each forward runs the inner backend's op and, through
//! [`tracked`], registers its hand-written backward node (all of them are here).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Shape;

use super::sequence::{SequenceTrace, sequence_backward_host, sequence_host};
use super::{
    DirectionWeights, FusedCellOps, InitialState, LayerNorms, Projection, RecurrentMask,
    Regularisers, SequenceInput, SequenceWeights,
};
use crate::host::autodiff::{one_parent_backward, register, tracked};
use crate::host::{device_tensor, host};
use crate::recurrent::fused::kernels;
use crate::recurrent::fused::sequence::{FusedCell, concat_padded};

#[derive(Debug)]
struct LstmBackward;

impl<B: Backend> Backward<B, 2> for LstmBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gates, node_c] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (gates, c_prev) = ops.state;
        let like = c_prev.clone();
        let (g, gshape) = host::<B>(gates);
        let (c, cshape) = host::<B>(c_prev);
        let (gr, _) = host::<B>(grad);
        // The output is `[2, B, H]`: `h`, then `c`.
        let (dh, dc_out) = gr.split_at(c.len());
        // The training kernels: the activated gates (and the new cell) again, then the backward
        // in place over them.
        let (mut dg, h) = (g.to_vec(), cshape[1]);
        let (mut h_new, mut c_new, mut dc) = (
            vec![0f32; c.len()],
            vec![0f32; c.len()],
            vec![0f32; c.len()],
        );
        kernels::lstm_forward_keep(&mut dg, &c, h, &mut h_new, &mut c_new);
        kernels::lstm_backward_in_place(&mut dg, &c, &c_new, dh, dc_out, h, &mut dc);
        if let Some(node) = node_gates {
            grads.register::<B>(node.id, device_tensor::<B>(dg, gshape, &like));
        }
        if let Some(node) = node_c {
            grads.register::<B>(node.id, device_tensor::<B>(dc, cshape, &like));
        }
    }
}

#[derive(Debug)]
struct GruBackward;

impl<B: Backend> Backward<B, 3> for GruBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_h, node_prev] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, hp, prev) = ops.state;
        let like = prev.clone();
        let (x, xshape) = host::<B>(x);
        let (hp, _) = host::<B>(hp);
        let (p, pshape) = host::<B>(prev);
        let (g, _) = host::<B>(grad);
        // The training kernels: the activations again, then the backward in place over them.
        let (mut dx, mut dh, h) = (vec![0f32; x.len()], hp.to_vec(), pshape[1]);
        let (mut out, mut dp) = (vec![0f32; p.len()], vec![0f32; p.len()]);
        kernels::gru_forward_keep(&x, &hp, &p, h, &mut out, &mut dx);
        kernels::gru_backward_in_place(&mut dx, &mut dh, &p, &g, h, &mut dp);
        for (node, values, shape) in [
            (node_x, dx, xshape.clone()),
            (node_h, dh, xshape),
            (node_prev, dp, pshape),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, device_tensor::<B>(values, shape, &like));
            }
        }
    }
}

#[derive(Debug)]
struct TanhBackward;

impl<B: Backend> Backward<B, 1> for TanhBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |y, g| {
            let (y, shape) = host::<B>(y);
            let mut dx = vec![0f32; y.len()];
            kernels::tanh_backward(&y, g, &mut dx);
            (dx, shape)
        });
    }
}

#[derive(Debug)]
struct LeadingSlabsBackward;

impl<B: Backend> Backward<B, 1> for LeadingSlabsBackward {
    /// The shape of the sliced tensor.
    type State = Shape;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |full, g| {
            (concat_padded(&[g], full.num_elements()), full)
        });
    }
}

/// The backward of the sequence op: BPTT inside the op; the parents are `x` (features only: token
/// ids are no parent), each direction's `W_ih, b_ih, W_hh, b_hh`, `h0` and (LSTM) `c0`.
#[derive(Debug)]
struct SequenceBackward;

impl<B: Backend, const N: usize> Backward<B, N> for SequenceBackward {
    type State = SequenceTrace<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (g, _) = host::<B>(grad);
        let (values, like) = sequence_backward_host::<B>(ops.state, &g);
        let parents = ops.parents.map(|n| n.map(|n| n.id));
        register::<B>(parents, values, &like, grads);
    }
}

/// A direction's weights on the inner backend, their nodes appended to `nodes`.
fn inner_weights<B: Backend, C: CheckpointStrategy>(
    w: DirectionWeights<Autodiff<B, C>>,
    nodes: &mut Vec<NodeGuard>,
) -> DirectionWeights<B> {
    nodes.extend([w.w_ih.node(), w.b_ih.node(), w.w_hh.node(), w.b_hh.node()]);
    let projection = match w.projection {
        Projection::Off => Projection::Off,
        Projection::On(w_hr) => {
            nodes.push(w_hr.node());
            Projection::On(w_hr.into_primitive())
        }
    };
    let norms = w.norms.into_tensors();
    nodes.extend(norms.iter().map(|t| t.node()));
    DirectionWeights {
        w_ih: w.w_ih.into_primitive(),
        b_ih: w.b_ih.into_primitive(),
        w_hh: w.w_hh.into_primitive(),
        b_hh: w.b_hh.into_primitive(),
        projection,
        norms: LayerNorms::from_tensors(norms.into_iter().map(|t| t.into_primitive()).collect()),
    }
}

/// `nodes` as an array (its length is `N`).
fn array<const N: usize>(nodes: Vec<NodeGuard>) -> [NodeGuard; N] {
    let len = nodes.len();
    nodes
        .try_into()
        .unwrap_or_else(|_| panic!("{len} parents, not {N}"))
}

impl<B: Backend + FusedCellOps, C: CheckpointStrategy> FusedCellOps for Autodiff<B, C> {
    fn sequence(
        cell: FusedCell,
        input: SequenceInput<Self>,
        weights: SequenceWeights<Self>,
        state: InitialState<Self>,
        regularisers: Regularisers<Self>,
    ) -> FloatTensor<Self> {
        // The parents in order: x (features only), the weights, h0, c0 (LSTM).
        let mut nodes = Vec::new();
        let input = match input {
            SequenceInput::Features(x) => {
                nodes.push(x.node());
                SequenceInput::Features(x.into_primitive())
            }
            SequenceInput::Tokens(ids) => SequenceInput::Tokens(ids),
        };
        let weights = match weights {
            SequenceWeights::One(w, direction) => {
                SequenceWeights::One(inner_weights(w, &mut nodes), direction)
            }
            SequenceWeights::Both(f, r) => {
                let f = inner_weights(f, &mut nodes);
                SequenceWeights::Both(f, inner_weights(r, &mut nodes))
            }
        };
        let state = match state {
            InitialState::Hidden(h0) => {
                nodes.push(h0.node());
                InitialState::Hidden(h0.into_primitive())
            }
            InitialState::HiddenCell(h0, c0) => {
                nodes.extend([h0.node(), c0.node()]);
                InitialState::HiddenCell(h0.into_primitive(), c0.into_primitive())
            }
        };
        let regularisers = Regularisers {
            recurrent: match regularisers.recurrent {
                RecurrentMask::Off => RecurrentMask::Off,
                RecurrentMask::On(m) => RecurrentMask::On(m.into_primitive()),
            },
            zoneout: regularisers.zoneout,
        };
        let op = || sequence_host::<B>(cell, input, weights, state, regularisers);
        // From 4 weights and h0 (one direction over tokens) to 1 + 2 (5 + 6) + 2 (a
        // bidirectional layer-normalised LSTM with a projection).
        macro_rules! parents {
            ($($n:literal)*) => {
                match nodes.len() {
                    $($n => tracked::<B, C, _, $n>(SequenceBackward, array(nodes), op),)*
                    n => unreachable!("a sequence op of {n} parents"),
                }
            };
        }
        parents!(5 6 7 8 9 10 11 12 13 14 18 23 25)
    }

    fn lstm_pointwise(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [gates.node(), c_prev.node()];
        let (g, c) = (gates.into_primitive(), c_prev.into_primitive());
        tracked::<B, C, _, 2>(LstmBackward, nodes, || {
            let out = B::lstm_pointwise(g.clone(), c.clone());
            ((g, c), out)
        })
    }

    fn gru_pointwise(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x_proj.node(), h_proj.node(), h_prev.node()];
        let [x, h, p] = [x_proj, h_proj, h_prev].map(|t| t.into_primitive());
        tracked::<B, C, _, 3>(GruBackward, nodes, || {
            let out = B::gru_pointwise(x.clone(), h.clone(), p.clone());
            ((x, h, p), out)
        })
    }

    fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C, _, 1>(TanhBackward, [x.node()], || {
            let y = B::tanh_pointwise(x.into_primitive());
            (y.clone(), y)
        })
    }

    fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self> {
        let full = t.shape();
        tracked::<B, C, _, 1>(LeadingSlabsBackward, [t.node()], || {
            (full, B::leading_slabs(t.into_primitive(), count))
        })
    }
}
