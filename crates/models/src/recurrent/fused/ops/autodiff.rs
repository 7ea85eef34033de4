//! The fused ops under `Autodiff`: each forward runs the inner backend's op and registers a
//! hand-written backward node.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Shape;

use super::host_backends::cross_entropy_host;
use super::{FusedCellOps, GRU, RNN_TANH};
use crate::recurrent::fused::host::{device_tensor, host};
use crate::recurrent::fused::kernels;
use crate::recurrent::fused::layer_ops::{OpInput, bidirectional_autodiff, sequence_autodiff};
use crate::recurrent::fused::sequence::{Direction, FusedCell, concat_padded};

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

/// The backward of a one-parent op: `dx(state, g)` maps the output's gradient `g` (on the host)
/// to the parent's values and shape, which are registered as its gradient. The output's gradient
/// is consumed either way; `dx` runs only when the parent needs a gradient.
fn one_parent_backward<B: Backend, S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    dx: impl FnOnce(S, &[f32]) -> (Vec<f32>, Shape),
) {
    let [node] = ops.parents;
    let grad = grads.consume::<B>(&ops.node);
    if let Some(node) = node {
        let like = grad.clone();
        let (g, _) = host::<B>(grad);
        let (values, shape) = dx(ops.state, &g);
        grads.register::<B>(node.id, device_tensor::<B>(values, shape, &like));
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
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward {
    /// The softmax of the logits and the targets.
    type State = (Vec<f32>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |(mut d, targets), g| {
            let n = targets.len();
            let v = d.len() / n.max(1);
            // dL/dx_nj = g (p_nj - [j = t_n]) / N
            let scale = g[0] / n as f32;
            for (row, t) in d.chunks_mut(v).zip(targets) {
                row[t] -= 1.0;
                row.iter_mut().for_each(|x| *x *= scale);
            }
            (d, Shape::new([n, v]))
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

impl<B: Backend + FusedCellOps, C: CheckpointStrategy> FusedCellOps for Autodiff<B, C> {
    fn lstm_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(
            FusedCell::Lstm,
            OpInput::Features(x),
            weights,
            (h0, Some(c0)),
            direction,
        )
    }

    fn gru_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(GRU, OpInput::Features(x), weights, (h0, None), direction)
    }

    fn rnn_tanh_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(
            RNN_TANH,
            OpInput::Features(x),
            weights,
            (h0, None),
            direction,
        )
    }

    fn lstm_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        let (x, state) = (OpInput::Tokens(tokens), (h0, Some(c0)));
        sequence_autodiff::<B, C>(FusedCell::Lstm, x, weights, state, direction)
    }

    fn gru_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        sequence_autodiff::<B, C>(GRU, OpInput::Tokens(tokens), weights, (h0, None), direction)
    }

    fn rnn_tanh_token_sequence(
        tokens: IntTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let (weights, direction) = ([w_ih, b_ih, w_hh, b_hh], Direction::new(reverse));
        let x = OpInput::Tokens(tokens);
        sequence_autodiff::<B, C>(RNN_TANH, x, weights, (h0, None), direction)
    }

    fn lstm_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(FusedCell::Lstm, x, weights, (h0, Some(c0)))
    }

    fn gru_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(GRU, x, weights, (h0, None))
    }

    fn rnn_tanh_bidirectional(
        x: FloatTensor<Self>,
        f_w_ih: FloatTensor<Self>,
        f_b_ih: FloatTensor<Self>,
        f_w_hh: FloatTensor<Self>,
        f_b_hh: FloatTensor<Self>,
        r_w_ih: FloatTensor<Self>,
        r_b_ih: FloatTensor<Self>,
        r_w_hh: FloatTensor<Self>,
        r_b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let weights = [
            [f_w_ih, f_b_ih, f_w_hh, f_b_hh],
            [r_w_ih, r_b_ih, r_w_hh, r_b_hh],
        ];
        bidirectional_autodiff::<B, C>(RNN_TANH, x, weights, (h0, None))
    }

    fn lstm_pointwise(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmBackward
            .prepare::<C>([gates.node(), c_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (g, c) = (gates.into_primitive(), c_prev.into_primitive());
                let out = B::lstm_pointwise(g.clone(), c.clone());
                prep.finish((g, c), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lstm_pointwise(
                gates.into_primitive(),
                c_prev.into_primitive(),
            )),
        }
    }

    fn gru_pointwise(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match GruBackward
            .prepare::<C>([x_proj.node(), h_proj.node(), h_prev.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, h, p) = (
                    x_proj.into_primitive(),
                    h_proj.into_primitive(),
                    h_prev.into_primitive(),
                );
                let out = B::gru_pointwise(x.clone(), h.clone(), p.clone());
                prep.finish((x, h, p), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gru_pointwise(
                x_proj.into_primitive(),
                h_proj.into_primitive(),
                h_prev.into_primitive(),
            )),
        }
    }

    fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match TanhBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::tanh_pointwise(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::tanh_pointwise(x.into_primitive())),
        }
    }

    fn leading_slabs(t: FloatTensor<Self>, count: usize) -> FloatTensor<Self> {
        let full = t.shape();
        match LeadingSlabsBackward
            .prepare::<C>([t.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(full, B::leading_slabs(t.into_primitive(), count))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::leading_slabs(t.into_primitive(), count)),
        }
    }

    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, probs, targets) =
                    cross_entropy_host::<B>(logits.into_primitive(), targets);
                prep.finish((probs, targets), loss)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::cross_entropy(logits.into_primitive(), targets))
            }
        }
    }
}
