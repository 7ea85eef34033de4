//! The sequence op of [`super::FusedCellOps`] on the host: one layer direction, or both
//! directions of a bidirectional layer at once, and the gradients of its backward.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::Shape;

use super::{
    DirectionWeights, InitialState, Projection, RecurrentMask, Regularisers, SequenceInput,
    SequenceWeights, ZoneoutMasks,
};
use crate::host::{HostValues, device_tensor, host, host_indices};
use crate::recurrent::fused::sequence::{
    self, CellNorms, Direction, FusedCell, LayerInput, LayerInputs, NormParams, Trace,
    ZoneoutRates, concat_padded, join_rows, split_rows,
};

/// What the sequence op keeps for its backward: each direction's trace and inputs, the forward
/// direction first.
pub(super) type SequenceTrace<B> = Vec<(Trace, HostLayer<B>)>;

/// A layer direction's inputs on the host, its dimensions `(T, B, H)` and a tensor of its device.
#[derive(Clone, Debug)]
pub(super) struct HostLayer<B: Backend> {
    x: LayerInput<HostValues<B>, Vec<usize>>,
    weights: [HostValues<B>; 4],
    /// An LSTM's projection `W_hr`.
    w_hr: Option<HostValues<B>>,
    /// The layer norms' gains and biases in order (none for a plain cell).
    norms: Vec<HostValues<B>>,
    mask: Option<Vec<f32>>,
    zoneout: Option<[Vec<f32>; 2]>,
    dims: (usize, usize, usize),
    like: FloatTensor<B>,
}

impl<B: Backend> HostLayer<B> {
    /// From the layer's input `x` on the host (`[T, B, ..]`), the direction's weights, its
    /// recurrent mask and its zoneout rates for `h` and `c`.
    fn new(
        (x, shape): (LayerInput<HostValues<B>, Vec<usize>>, Shape),
        weights: DirectionWeights<B>,
        (mask, zoneout): (Option<Vec<f32>>, Option<[Vec<f32>; 2]>),
    ) -> Self {
        let h = weights.w_hh.shape()[1];
        let like = weights.w_ih.clone();
        let norms = weights.norms.into_tensors();
        let w_hr = match weights.projection {
            Projection::Off => None,
            Projection::On(w) => Some(host::<B>(w).0),
        };
        let weights = [weights.w_ih, weights.b_ih, weights.w_hh, weights.b_hh];
        Self {
            x,
            weights: weights.map(|w| host::<B>(w).0),
            w_hr,
            norms: norms.into_iter().map(|n| host::<B>(n).0).collect(),
            mask,
            zoneout,
            dims: (shape[0], shape[1], h),
            like,
        }
    }

    fn inputs(&self) -> LayerInputs<'_> {
        let [w_ih, b_ih, w_hh, b_hh] = &self.weights;
        LayerInputs {
            x: self.x.as_slices(),
            w_ih,
            b_ih,
            w_hh,
            b_hh,
            w_hr: self.w_hr.as_deref(),
            recurrent_mask: self.mask.as_deref(),
            zoneout: self
                .zoneout
                .as_ref()
                .map(|[hidden, cell]| ZoneoutRates { hidden, cell }),
            norms: self.host_norms(),
        }
    }

    /// The layer norms as the time loops read them.
    fn host_norms(&self) -> Option<CellNorms<'_>> {
        let pair = |i: usize| {
            let [gamma, beta] = [&self.norms[2 * i], &self.norms[2 * i + 1]];
            NormParams { gamma, beta }
        };
        match self.norms.len() {
            0 => None,
            n => Some(CellNorms {
                ih: pair(0),
                hh: pair(1),
                c: (n > 4).then(|| pair(2)),
            }),
        }
    }

    /// The direction's gradients with their shapes.
    fn shaped(&self, d: sequence::LayerGrads) -> DirectionGrads {
        let (t, b, h) = self.dims;
        let gh = self.weights[1].len();
        let width = self.weights[0].len() / gh;
        let x = matches!(self.x, LayerInput::Features(_)).then(|| (d.x, Shape::new([t, b, width])));
        let mut weights = vec![
            (d.w_ih, Shape::new([gh, width])),
            (d.b_ih, Shape::new([gh])),
            (d.w_hh, Shape::new([gh, h])),
            (d.b_hh, Shape::new([gh])),
        ];
        if !d.w_hr.is_empty() {
            // `W_hr` `[R, H]` (`H = G*H / 4`).
            weights.push((d.w_hr, Shape::new([h, gh / 4])));
        }
        weights.extend(d.norms.into_iter().map(|g| {
            let width = g.len();
            (g, Shape::new([width]))
        }));
        DirectionGrads {
            x,
            weights,
            state: [d.h0, d.c0],
        }
    }
}

/// A gradient's values and shape.
type Shaped = (Vec<f32>, Shape);

/// A direction's gradients: `x` (none for token ids, which are no parent of the op), `W_ih, b_ih,
/// W_hh, b_hh` and the layer norms' gains and biases, then `h0` and `c0` (`c0` empty but for the
/// LSTM).
struct DirectionGrads {
    x: Option<Shaped>,
    weights: Vec<Shaped>,
    state: [Vec<f32>; 2],
}

/// The input on the host, and its shape; token ids are checked against `vocab`, the columns of
/// `W_ih`.
///
/// # Panics
/// On a token outside `0..vocab`, naming it.
fn host_input<B: Backend>(
    input: SequenceInput<B>,
    vocab: usize,
) -> (LayerInput<HostValues<B>, Vec<usize>>, Shape) {
    match input {
        SequenceInput::Features(x) => {
            let (x, shape) = host::<B>(x);
            (LayerInput::Features(x), shape)
        }
        SequenceInput::Tokens(ids) => {
            let (ids, shape) = host_indices::<B>(ids, vocab, "token");
            (LayerInput::Tokens(ids), shape)
        }
    }
}

/// The initial state on the host: `h0`, and `c0` (empty without one).
fn host_state<B: Backend>(state: InitialState<B>) -> (HostValues<B>, HostValues<B>) {
    match state {
        InitialState::Hidden(h0) => (host::<B>(h0).0, HostValues::Copied(Vec::new())),
        InitialState::HiddenCell(h0, c0) => (host::<B>(h0).0, host::<B>(c0).0),
    }
}

/// Direction `d`'s `[B, H]` part (`bh` values) of a stacked `[2, B, H]` state, or nothing from
/// an empty one (the cell state of a cell without one).
fn direction_part(v: &[f32], d: usize, bh: usize) -> &[f32] {
    if v.is_empty() { v } else { &v[d * bh..][..bh] }
}

/// A direction's recurrent mask and zoneout rates (`[h, c]`) on the host.
type DirectionRegularisers = (Option<Vec<f32>>, Option<[Vec<f32>; 2]>);

/// The op's `regularisers` on the host, as a function of the direction `d` and the sizes
/// `(bh, bc)` of its `[B, R]` and (LSTM; 0 otherwise) `[B, H]` states; each direction's zoneout
/// masks are moved out as they are asked for (each direction once).
fn host_regularisers<B: Backend>(
    cell: FusedCell,
    regularisers: Regularisers<B>,
) -> impl FnMut(usize, (usize, usize)) -> DirectionRegularisers {
    let mask = match regularisers.recurrent {
        RecurrentMask::Off => None,
        RecurrentMask::On(m) => Some(host::<B>(m).0),
    };
    let mut zoneout = regularisers.zoneout;
    // The masks a direction has: `h`'s, and the LSTM's `c`'s.
    let k = if cell.has_cell_state() { 2 } else { 1 };
    move |d, (bh, bc)| {
        let mask = mask.as_ref().map(|m| direction_part(m, d, bh).to_vec());
        let zoneout = match &mut zoneout {
            ZoneoutMasks::Off => None,
            ZoneoutMasks::Expectation(p) => Some([vec![*p as f32; bh], vec![*p as f32; bc]]),
            ZoneoutMasks::Masks(m) => {
                let mut take = |i: usize| match i < k {
                    true => std::mem::take(&mut m[d * k + i]),
                    false => Vec::new(),
                };
                Some([take(0), take(1)])
            }
        };
        (mask, zoneout)
    }
}

/// The sequence op on the host: `cell` over `input` with `weights` (one direction, or both at
/// the same time) from `state`, with the `regularisers` that are on. Returns what the backward
/// needs and the output (see [`super::FusedCellOps::sequence`]).
pub(super) fn sequence_host<B: Backend>(
    cell: FusedCell,
    input: SequenceInput<B>,
    weights: SequenceWeights<B>,
    state: InitialState<B>,
    regularisers: Regularisers<B>,
) -> (SequenceTrace<B>, FloatTensor<B>) {
    let (h0, c0) = host_state::<B>(state);
    let mut part = host_regularisers(cell, regularisers);
    let (directions, runs) = match weights {
        SequenceWeights::One(w, direction) => {
            let sizes = (h0.len(), c0.len());
            let x = host_input(input, w.w_ih.shape()[1]);
            (vec![HostLayer::new(x, w, part(0, sizes))], vec![direction])
        }
        SequenceWeights::Both(forward, reverse) => {
            let sizes = (h0.len() / 2, c0.len() / 2);
            let x = host_input(input, forward.w_ih.shape()[1]);
            let layers = vec![
                HostLayer::new(x.clone(), forward, part(0, sizes)),
                HostLayer::new(x, reverse, part(1, sizes)),
            ];
            (layers, vec![Direction::Forward, Direction::Reverse])
        }
    };
    let dims @ (t, b, r) = directions[0].dims;
    let dirs = directions.len();
    let run = |d: usize| {
        let state = (
            direction_part(&h0, d, b * r),
            direction_part(&c0, d, c0.len() / dirs),
        );
        cell.forward(&directions[d].inputs(), state, dims, runs[d])
    };
    // The outputs `[T, B, D*R]`, then (LSTM) the final cell states `[B, D*H]` and zeros up to
    // the op's `K` slabs.
    let hc = c0.len() / (dirs * b);
    let slabs = t + hc.div_ceil(r);
    let len = slabs * b * dirs * r;
    let (traces, out) = if dirs == 1 {
        // The output is copied out of the trace on the pool too (its threads share the copy).
        let (trace, out) = sequence::forward_in_pool(b, || {
            let trace = run(0);
            let out = concat_padded(&trace.output(dims), len);
            (trace, out)
        });
        (vec![trace], out)
    } else {
        let (fwd, rev) = sequence::both(b, || run(0), || run(1));
        let ([of, cf], [or, cr]) = (fwd.output(dims), rev.output(dims));
        let outputs = join_rows(of, r, or, r);
        let cells = if hc > 0 {
            join_rows(cf, hc, cr, hc)
        } else {
            Vec::new()
        };
        let out = concat_padded(&[&outputs, &cells], len);
        (vec![fwd, rev], out)
    };
    let shape = Shape::new([slabs, b, dirs * r]);
    let out = device_tensor::<B>(out, shape, &directions[0].like);
    (traces.into_iter().zip(directions).collect(), out)
}

/// The backward of [`sequence_host`]: BPTT from `grad`, the gradient of its output, inside the op
/// (both directions at the same time). Returns the gradients of the op's parents in order: `x`
/// (features only), each direction's `W_ih, b_ih, W_hh, b_hh` (and layer norms), `h0` and (LSTM) `c0` (both
/// directions' stacked), and a tensor of the device.
pub(super) fn sequence_backward_host<B: Backend>(
    trace: SequenceTrace<B>,
    grad: &[f32],
) -> (Vec<Shaped>, FloatTensor<B>) {
    let (t, b, r) = trace[0].1.dims;
    let dirs = trace.len();
    // The cell width `H` of an LSTM (0 for the other cells).
    let hc = match trace[0].0 {
        Trace::Lstm(_) => trace[0].1.weights[1].len() / 4,
        Trace::SingleState(..) => 0,
    };
    let like = trace[0].1.like.clone();
    let backward = |(trace, layer): (Trace, HostLayer<B>), g: [&[f32]; 2]| {
        let d = trace.backward(&layer.inputs(), g, layer.dims);
        layer.shaped(d)
    };
    let (outputs, rest) = grad.split_at(t * b * dirs * r);
    let cells = &rest[..b * dirs * hc];
    let mut directions = trace.into_iter();
    let (first, second) = (directions.next().expect("a direction"), directions.next());
    let parts = sequence::in_pool(|| match second {
        None => vec![backward(first, [outputs, cells])],
        Some(reverse) => {
            let (of, or) = split_rows(outputs, 2 * r, r);
            let (cf, cr) = match hc {
                0 => (Vec::new(), Vec::new()),
                _ => split_rows(cells, 2 * hc, hc),
            };
            let (df, dr) = rayon::join(
                || backward(first, [&of, &cf]),
                || backward(reverse, [&or, &cr]),
            );
            vec![df, dr]
        }
    });
    let directions = parts.len();
    // Both directions read x (their gradients add up); the initial states are stacked.
    let mut x: Option<Shaped> = None;
    let (mut weights, mut h0, mut c0) = (Vec::new(), Vec::new(), Vec::new());
    for DirectionGrads {
        x: dx,
        weights: w,
        state: [dh0, dc0],
    } in parts
    {
        x = match (x, dx) {
            (Some((sum, shape)), Some((d, _))) => {
                Some((sum.iter().zip(&d).map(|(a, b)| a + b).collect(), shape))
            }
            (_, dx) => dx,
        };
        weights.extend(w);
        h0.extend(dh0);
        c0.extend(dc0);
    }
    let state = |v: Vec<f32>| {
        let width = v.len() / (directions * b);
        match directions {
            1 => (v, Shape::new([b, width])),
            _ => (v, Shape::new([directions, b, width])),
        }
    };
    let grads = x
        .into_iter()
        .chain(weights)
        .chain([state(h0), state(c0)])
        .collect();
    (grads, like)
}
