//! The fused pointwise ops as a Burn backend extension: implemented for Flex and NdArray (host
//! kernels) and for their `Autodiff` wrappers (hand-written backward). Other backends never see
//! these ops: [`super::available`] keeps them on the composed tensor-op path.

// burn-ndarray is deprecated in Burn 0.22 but still a backend sequent supports.
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::{Shape, TensorData};

use super::kernels;
use super::sequence::{
    self, Direction, GatedTrace, LayerGrads, LayerInputs, LstmTrace, SequenceCell,
};

/// Fused pointwise parts of the recurrent cells.
#[backend_extension(
    Autodiff,
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex")
)]
pub trait FusedCellOps: Backend {
    /// LSTM: `gates` `[B, 4H]`, `c_prev` `[B, H]` -> `[2, B, H]` = `h`, then `c`.
    fn lstm_pointwise(gates: FloatTensor<Self>, c_prev: FloatTensor<Self>) -> FloatTensor<Self>;
    /// GRU (reset after): `x_proj`, `h_proj` `[B, 3H]`, `h_prev` `[B, H]` -> `h'` `[B, H]`.
    fn gru_pointwise(
        x_proj: FloatTensor<Self>,
        h_proj: FloatTensor<Self>,
        h_prev: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// Elementwise `tanh` (the vanilla RNN's nonlinearity).
    fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// A whole LSTM layer direction: `x` `[T, B, I]` (time order), `w_ih` `[4H, I]`, `b_ih`
    /// `[4H]`, `w_hh` `[4H, H]`, `b_hh` `[4H]`, `h0`, `c0` `[B, H]` -> `[T + 1, B, H]`: the
    /// outputs `h_t` in time order, then the final cell state. With `reverse` the recurrence runs
    /// from `t = T-1` down to 0 (its final state is the one after `t = 0`).
    #[allow(clippy::too_many_arguments)]
    fn lstm_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// A whole GRU (reset-after) layer direction: `x` `[T, B, I]`, `w_ih` `[3H, I]`, `b_ih`
    /// `[3H]`, `w_hh` `[3H, H]`, `b_hh` `[3H]`, `h0` `[B, H]` -> the outputs `h_t` `[T, B, H]`
    /// in time order (`reverse` as for [`Self::lstm_sequence`]).
    fn gru_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
    /// A whole tanh-RNN layer direction: `x` `[T, B, I]`, `w_ih` `[H, I]`, `b_ih` `[H]`, `w_hh`
    /// `[H, H]`, `b_hh` `[H]`, `h0` `[B, H]` -> the outputs `h_t` `[T, B, H]` in time order
    /// (`reverse` as for [`Self::lstm_sequence`]).
    fn rnn_tanh_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self>;
}

/// A layer direction's inputs on the host (`x`, `W_ih`, `b_ih`, `W_hh`, `b_hh`), its dimensions
/// `(T, B, H)` and a tensor of its device; the sequence ops keep it for their backward.
#[derive(Clone, Debug)]
struct HostLayer<B: Backend> {
    values: [HostValues<B>; 5],
    dims: (usize, usize, usize),
    like: FloatTensor<B>,
}

impl<B: Backend> HostLayer<B> {
    /// From the op's tensors `[x, w_ih, b_ih, w_hh, b_hh]` and its `h0` `[B, H]`.
    fn new(layer: [FloatTensor<B>; 5], h0: &FloatTensor<B>) -> Self {
        let [t, b, _] = layer[0].shape().dims();
        let h = h0.shape()[1];
        Self {
            values: layer.map(|v| host::<B>(v).0),
            dims: (t, b, h),
            like: h0.clone(),
        }
    }

    fn inputs(&self) -> LayerInputs<'_> {
        let [x, w_ih, b_ih, w_hh, b_hh] = &self.values;
        LayerInputs {
            x,
            w_ih,
            b_ih,
            w_hh,
            b_hh,
        }
    }

    /// Registers the gradients of the op's parents (`x, w_ih, b_ih, w_hh, b_hh, h0` and, for the
    /// LSTM, `c0`).
    fn register(
        &self,
        parents: impl IntoIterator<Item = Option<NodeId>>,
        d: LayerGrads,
        grads: &mut Gradients,
    ) {
        let (t, b, h) = self.dims;
        let gh = self.values[2].len();
        let width = self.values[1].len() / gh;
        let shapes = [
            Shape::new([t, b, width]),
            Shape::new([gh, width]),
            Shape::new([gh]),
            Shape::new([gh, h]),
            Shape::new([gh]),
            Shape::new([b, h]),
            Shape::new([b, h]),
        ];
        let values = [d.x, d.w_ih, d.b_ih, d.w_hh, d.b_hh, d.h0, d.c0];
        for ((id, values), shape) in parents.into_iter().zip(values).zip(shapes) {
            if let Some(id) = id {
                grads.register::<B>(id, device_tensor::<B>(values, shape, &self.like));
            }
        }
    }
}

fn gated_sequence_host<B: Backend>(
    cell: SequenceCell,
    layer: [FloatTensor<B>; 5],
    h0: FloatTensor<B>,
    direction: Direction,
) -> ((GatedTrace, HostLayer<B>), FloatTensor<B>) {
    let layer = HostLayer::<B>::new(layer, &h0);
    let (h, _) = host::<B>(h0);
    let (t, b, hidden) = layer.dims;
    let inputs = layer.inputs();
    let trace = sequence::forward_in_pool(b, || {
        sequence::gated_sequence_forward(cell, &inputs, &h, layer.dims, direction)
    });
    let out = device_tensor::<B>(
        trace.output(b * hidden),
        Shape::new([t, b, hidden]),
        &layer.like,
    );
    ((trace, layer), out)
}

fn lstm_sequence_host<B: Backend>(
    layer: [FloatTensor<B>; 5],
    h0: FloatTensor<B>,
    c0: FloatTensor<B>,
    direction: Direction,
) -> ((LstmTrace, HostLayer<B>), FloatTensor<B>) {
    let layer = HostLayer::<B>::new(layer, &h0);
    let (h, _) = host::<B>(h0);
    let (c, _) = host::<B>(c0);
    let (t, b, hidden) = layer.dims;
    let inputs = layer.inputs();
    let trace = sequence::forward_in_pool(b, || {
        sequence::lstm_sequence_forward(&inputs, &h, &c, layer.dims, direction)
    });
    let out = device_tensor::<B>(
        trace.output(t, b * hidden),
        Shape::new([t + 1, b, hidden]),
        &layer.like,
    );
    ((trace, layer), out)
}

/// A tensor's f32 values on the host: read in place from a contiguous f32 Flex tensor (no copy:
/// the sequence ops read megabytes per call), copied out of any other.
#[derive(Clone, Debug)]
enum HostValues<B: Backend> {
    InPlace(FloatTensor<B>),
    Copied(Vec<f32>),
}

impl<B: Backend> std::ops::Deref for HostValues<B> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            HostValues::InPlace(t) => in_place::<B>(t).expect("checked when the view was made"),
            HostValues::Copied(v) => v,
        }
    }
}

/// The values of `t` without a copy, where its backend keeps them as a contiguous f32 slice.
fn in_place<B: Backend>(t: &FloatTensor<B>) -> Option<&[f32]> {
    #[cfg(feature = "flex")]
    if let Some(t) = (t as &dyn std::any::Any).downcast_ref::<burn::backend::flex::FlexTensor>() {
        return t.as_slice::<f32>();
    }
    None
}

/// A tensor's values on the host (f32) and its shape.
fn host<B: Backend>(t: FloatTensor<B>) -> (HostValues<B>, Shape) {
    let shape = t.shape();
    if in_place::<B>(&t).is_some() {
        return (HostValues::InPlace(t), shape);
    }
    let data = burn::tensor::try_read_sync(B::float_into_data(t))
        .expect("CPU backends read synchronously")
        .expect("reading a CPU tensor does not fail");
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32");
    (HostValues::Copied(values), shape)
}

fn device_tensor<B: Backend>(
    values: Vec<f32>,
    shape: Shape,
    like: &FloatTensor<B>,
) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape), &like.device())
}

fn lstm_host<B: Backend>(gates: FloatTensor<B>, c_prev: FloatTensor<B>) -> FloatTensor<B> {
    let (g, _) = host::<B>(gates);
    let like = c_prev.clone();
    let (c, shape) = host::<B>(c_prev);
    let (b, h) = (shape[0], shape[1]);
    let mut out = vec![0f32; 2 * b * h];
    let (h_out, c_out) = out.split_at_mut(b * h);
    kernels::lstm_forward(&g, &c, h, h_out, c_out);
    device_tensor::<B>(out, Shape::new([2, b, h]), &like)
}

fn gru_host<B: Backend>(
    x: FloatTensor<B>,
    hp: FloatTensor<B>,
    prev: FloatTensor<B>,
) -> FloatTensor<B> {
    let (x, _) = host::<B>(x);
    let (hp, _) = host::<B>(hp);
    let like = prev.clone();
    let (p, shape) = host::<B>(prev);
    let mut out = vec![0f32; p.len()];
    kernels::gru_forward(&x, &hp, &p, shape[1], &mut out);
    device_tensor::<B>(out, shape, &like)
}

fn tanh_host<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let like = x.clone();
    let (v, shape) = host::<B>(x);
    let mut out = vec![0f32; v.len()];
    kernels::tanh_forward(&v, &mut out);
    device_tensor::<B>(out, shape, &like)
}

macro_rules! host_backend {
    ($backend:ty) => {
        impl FusedCellOps for $backend {
            fn lstm_pointwise(
                gates: FloatTensor<Self>,
                c_prev: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                lstm_host::<Self>(gates, c_prev)
            }

            fn gru_pointwise(
                x_proj: FloatTensor<Self>,
                h_proj: FloatTensor<Self>,
                h_prev: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                gru_host::<Self>(x_proj, h_proj, h_prev)
            }

            fn tanh_pointwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
                tanh_host::<Self>(x)
            }

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
                let layer = [x, w_ih, b_ih, w_hh, b_hh];
                lstm_sequence_host::<Self>(layer, h0, c0, Direction::new(reverse)).1
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
                let layer = [x, w_ih, b_ih, w_hh, b_hh];
                let direction = Direction::new(reverse);
                gated_sequence_host::<Self>(SequenceCell::Gru, layer, h0, direction).1
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
                let layer = [x, w_ih, b_ih, w_hh, b_hh];
                let direction = Direction::new(reverse);
                gated_sequence_host::<Self>(SequenceCell::RnnTanh, layer, h0, direction).1
            }
        }
    };
}

#[cfg(feature = "ndarray")]
host_backend!(burn::backend::NdArray);
#[cfg(feature = "flex")]
host_backend!(burn::backend::Flex);

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
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node {
            let like = ops.state.clone();
            let (y, shape) = host::<B>(ops.state);
            let (g, _) = host::<B>(grad);
            let mut dx = vec![0f32; y.len()];
            kernels::tanh_backward(&y, &g, &mut dx);
            grads.register::<B>(node.id, device_tensor::<B>(dx, shape, &like));
        }
    }
}

#[derive(Debug)]
struct LstmSequenceBackward;

impl<B: Backend> Backward<B, 7> for LstmSequenceBackward {
    /// The trace and the layer's inputs.
    type State = (LstmTrace, HostLayer<B>);

    fn backward(self, ops: Ops<Self::State, 7>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (trace, layer) = ops.state;
        let (g, _) = host::<B>(grad);
        let (t, b, h) = layer.dims;
        let (d_hidden, d_cell) = g.split_at(t * b * h);
        let d = sequence::in_pool(|| {
            sequence::lstm_sequence_backward(trace, &layer.inputs(), d_hidden, d_cell, layer.dims)
        });
        layer.register(ops.parents.map(|n| n.map(|n| n.id)), d, grads);
    }
}

#[derive(Debug)]
struct GatedSequenceBackward(SequenceCell);

impl<B: Backend> Backward<B, 6> for GatedSequenceBackward {
    /// The trace and the layer's inputs.
    type State = (GatedTrace, HostLayer<B>);

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (trace, layer) = ops.state;
        let (g, _) = host::<B>(grad);
        let d = sequence::in_pool(|| {
            sequence::gated_sequence_backward(self.0, trace, &layer.inputs(), &g, layer.dims)
        });
        layer.register(ops.parents.map(|n| n.map(|n| n.id)), d, grads);
    }
}

/// The autodiff form of a GRU / tanh-RNN sequence op.
fn gated_sequence_autodiff<B: Backend + FusedCellOps, C: CheckpointStrategy>(
    cell: SequenceCell,
    layer: [FloatTensor<Autodiff<B, C>>; 5],
    h0: FloatTensor<Autodiff<B, C>>,
    direction: Direction,
) -> FloatTensor<Autodiff<B, C>> {
    let [x, w_ih, b_ih, w_hh, b_hh] = &layer;
    let nodes = [x, w_ih, b_ih, w_hh, b_hh, &h0].map(|t| t.node());
    let (layer, h0) = (layer.map(|t| t.into_primitive()), h0.into_primitive());
    match GatedSequenceBackward(cell)
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (state, out) = gated_sequence_host::<B>(cell, layer, h0, direction);
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(gated_sequence_host::<B>(cell, layer, h0, direction).1)
        }
    }
}

impl<B: Backend + FusedCellOps, C: CheckpointStrategy> FusedCellOps for Autodiff<B, C> {
    fn gru_sequence(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        b_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        b_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let layer = [x, w_ih, b_ih, w_hh, b_hh];
        let direction = Direction::new(reverse);
        gated_sequence_autodiff::<B, C>(SequenceCell::Gru, layer, h0, direction)
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
        let layer = [x, w_ih, b_ih, w_hh, b_hh];
        let direction = Direction::new(reverse);
        gated_sequence_autodiff::<B, C>(SequenceCell::RnnTanh, layer, h0, direction)
    }

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
        let direction = Direction::new(reverse);
        let nodes = [&x, &w_ih, &b_ih, &w_hh, &b_hh, &h0, &c0].map(|t| t.node());
        let layer = [x, w_ih, b_ih, w_hh, b_hh].map(|t| t.into_primitive());
        let (h0, c0) = (h0.into_primitive(), c0.into_primitive());
        match LstmSequenceBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (state, out) = lstm_sequence_host::<B>(layer, h0, c0, direction);
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(lstm_sequence_host::<B>(layer, h0, c0, direction).1)
            }
        }
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
}
