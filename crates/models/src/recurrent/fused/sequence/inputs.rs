//! A layer direction's inputs on the host (features or token ids, and the weights), with the
//! input projection `x W_ih^T` and its gradients.

use std::borrow::Cow;
use std::ops::{Deref, Range};

use rayon::prelude::*;

use super::buffers::{accumulate, transpose};
use super::direction::rows_of;
use super::norm::CellNorms;
use super::products::{DIRECT_MAX_ROWS, product, weight_grad};
use crate::recurrent::fused::direct::DirectMatrix;

/// A layer direction's input on the host: features `F` or token ids `T`, owned (as the sequence op
/// keeps them for its backward) or borrowed (as the time loops read them).
#[derive(Clone, Copy, Debug)]
pub enum LayerInput<F, T> {
    /// Features `x` `[T, B, I]` in time order: the input projection is `x W_ih^T`.
    Features(F),
    /// Token ids `[T, B]` in time order, each the one-hot vector `e_v` of a vocabulary of `V`:
    /// the projection of token `v` is column `v` of `W_ih` `[G*H, V]`, and the input has no
    /// gradient. A first layer over an embedding `E` `[V, I]` is this with `W_ih E^T`
    /// (`x_t W_ih^T = E[v] W_ih^T`).
    Tokens(T),
}

impl<F: Deref<Target = [f32]>, T: Deref<Target = [usize]>> LayerInput<F, T> {
    /// The input borrowed as the time loops read it.
    pub fn as_slices(&self) -> LayerInput<&[f32], &[usize]> {
        match self {
            LayerInput::Features(x) => LayerInput::Features(x),
            LayerInput::Tokens(ids) => LayerInput::Tokens(ids),
        }
    }
}

/// The inputs of a layer direction on the host: the input `x`, `w_ih` `[G*H, I]` (`I = V` for
/// tokens), `b_ih`, `b_hh` `[G*H]` (zeros for a layer without biases), `w_hh` `[G*H, H]`,
/// recurrent dropout's mask, zoneout's rates and the layer norms, if any.
#[derive(Clone, Copy, Debug)]
pub struct LayerInputs<'a> {
    /// The layer's input.
    pub x: LayerInput<&'a [f32], &'a [usize]>,
    /// `W_ih`, `[G*H, I]`.
    pub w_ih: &'a [f32],
    /// `b_ih`, `[G*H]`.
    pub b_ih: &'a [f32],
    /// `W_hh`, `[G*H, H]`.
    pub w_hh: &'a [f32],
    /// `b_hh`, `[G*H]`.
    pub b_hh: &'a [f32],
    /// An LSTM's projection `W_hr` `[R, H]`: `h_t = W_hr (o_t * tanh(c_t))`, `R` wide (and
    /// `W_hh` `[G*H, R]`).
    pub w_hr: Option<&'a [f32]>,
    /// Recurrent dropout's mask `m` `[B, H]` (0 or `1 / (1 - p)`, one a sequence): the recurrent
    /// product is `(h_{t-1} * m) W_hh^T` at every step; `h_{t-1}` itself goes on unmasked.
    pub recurrent_mask: Option<&'a [f32]>,
    /// Zoneout: each step's state `s_t` (`h`, and the LSTM's `c`) becomes
    /// `s_t + d_t * (s_{t-1} - s_t)`.
    pub zoneout: Option<ZoneoutRates<'a>>,
    /// A layer-normalised cell's layer norms: the gates are `LN_ih(x W_ih^T) + b_ih +
    /// LN_hh(h_{t-1} W_hh^T) + b_hh`, and the LSTM's output reads `LN_c(c_t)`.
    pub norms: Option<CellNorms<'a>>,
}

/// Zoneout's `d_t` of a layer direction (Krueger et al. 2016): for `h` and (LSTM; empty for the
/// other cells) for `c`, either a `[T, B, H]` mask of 0s and 1s in time order (training) or one
/// `[B, H]` for every step, the probability `p` (evaluation, the expectation).
#[derive(Clone, Copy, Debug)]
pub struct ZoneoutRates<'a> {
    /// `d_t` for `h`.
    pub hidden: &'a [f32],
    /// `d_t` for `c` (LSTM).
    pub cell: &'a [f32],
}

impl ZoneoutRates<'_> {
    /// The rows `rows` of `rates`' `d_t` (`h` wide, of a batch of `batch` rows).
    pub(super) fn at<'r>(
        rates: &'r [f32],
        t: usize,
        rows: &Range<usize>,
        h: usize,
        batch: usize,
    ) -> &'r [f32] {
        let step = if rates.len() == batch * h { 0 } else { t };
        rows_of(rates, step, rows, h, batch)
    }
}

/// `next += d * (prev - next)`: zoneout of a step's state `next` from the state before it.
pub(super) fn zone(next: &mut [f32], prev: &[f32], d: &[f32]) {
    for ((n, p), d) in next.iter_mut().zip(prev).zip(d) {
        *n += d * (p - *n);
    }
}

/// Zoneout's backward: `g` (`dL/ds_t`) splits into `direct = d * g`, which reaches `s_{t-1}`
/// as it is, and `g = (1 - d) * g`, which reaches the cell's own update.
pub(super) fn unzone(g: &mut [f32], d: &[f32], direct: &mut [f32]) {
    for ((g, d), o) in g.iter_mut().zip(d).zip(direct) {
        *o = d * *g;
        *g -= *o;
    }
}

/// A thread's rows of the recurrent product's operand at each step: `h_{t-1}` as it is, or times
/// recurrent dropout's mask (into a buffer of its own).
pub(super) struct RecurrentOperand<'a> {
    mask: Option<&'a [f32]>,
    masked: Vec<f32>,
}

impl RecurrentOperand<'_> {
    /// The operand for the states `h_prev` (the thread's rows).
    pub(super) fn of<'s>(&'s mut self, h_prev: &'s [f32]) -> &'s [f32] {
        match self.mask {
            None => h_prev,
            Some(m) => {
                for ((o, h), m) in self.masked.iter_mut().zip(h_prev).zip(m) {
                    *o = h * m;
                }
                &self.masked
            }
        }
    }
}

/// `a *= m` elementwise (the gradient that leaves the recurrent product through the mask).
pub(super) fn mask_in_place(a: &mut [f32], m: &[f32]) {
    for (a, m) in a.iter_mut().zip(m) {
        *a *= m;
    }
}

impl LayerInputs<'_> {
    /// The mask's rows `rows` (`h` wide), if there is a mask.
    pub(super) fn mask_rows(&self, rows: &Range<usize>, h: usize) -> Option<&[f32]> {
        self.recurrent_mask
            .map(|m| &m[rows.start * h..rows.end * h])
    }

    /// The recurrent product's operand for the batch rows `rows` (`h` wide).
    pub(super) fn operand(&self, rows: &Range<usize>, h: usize) -> RecurrentOperand<'_> {
        let mask = self.mask_rows(rows, h);
        RecurrentOperand {
            mask,
            masked: vec![0f32; mask.map_or(0, <[f32]>::len)],
        }
    }

    /// The states the recurrent products read, `[T*B, H]`: `h_prev`, or each of its `[B, H]`
    /// slabs times the mask.
    pub(super) fn recurrent_operand<'h>(&self, h_prev: &'h [f32]) -> Cow<'h, [f32]> {
        match self.recurrent_mask {
            None => Cow::Borrowed(h_prev),
            Some(m) => Cow::Owned(
                h_prev
                    .chunks(m.len())
                    .flat_map(|slab| slab.iter().zip(m).map(|(h, m)| h * m))
                    .collect(),
            ),
        }
    }

    /// `x W_ih^T` for every step, `[T*B, G*H]` (biases not added): one GEMM reading `W_ih`
    /// transposed, or dot products against its rows for one or two rows; for tokens, the rows
    /// of `W_ih^T` they select.
    pub(super) fn project(&self) -> Vec<f32> {
        let gh = self.b_ih.len();
        let width = self.w_ih.len() / gh;
        let x = match self.x {
            LayerInput::Features(x) => x,
            LayerInput::Tokens(ids) => return gather_rows(&transpose(self.w_ih, width), gh, ids),
        };
        let rows = x.len() / width;
        if rows > DIRECT_MAX_ROWS {
            return product(x, false, self.w_ih, true, (rows, gh, width));
        }
        let mut out = vec![0f32; rows * gh];
        DirectMatrix::new(self.w_ih, (gh, width)).multiply(x, &mut out, false);
        out
    }

    /// `b_ih + b_hh`.
    pub(super) fn summed_bias(&self) -> Vec<f32> {
        self.b_ih
            .iter()
            .zip(self.b_hh)
            .map(|(a, b)| a + b)
            .collect()
    }

    /// `dL/dx = d W_ih` `[T*B, I]` from `d` `[T*B, G*H]`, the gradient of `x W_ih^T` (empty for
    /// tokens, which have no gradient).
    pub(super) fn input_grad(&self, d: &[f32]) -> Vec<f32> {
        let gh = self.b_ih.len();
        let width = self.w_ih.len() / gh;
        match self.x {
            LayerInput::Features(_) => {
                product(d, false, self.w_ih, false, (d.len() / gh, width, gh))
            }
            LayerInput::Tokens(_) => Vec::new(),
        }
    }

    /// `dL/dW_ih = d^T x` `[G*H, I]` from `d` `[T*B, G*H]`, the gradient of `x W_ih^T`: one GEMM,
    /// or for tokens the sums of `d`'s rows by token ([`scatter_columns`]).
    pub(super) fn input_weight_grad(&self, d: &[f32]) -> Vec<f32> {
        let gh = self.b_ih.len();
        match self.x {
            LayerInput::Features(x) => weight_grad(d, x, gh),
            LayerInput::Tokens(ids) => scatter_columns(d, ids, self.w_ih.len() / gh),
        }
    }
}

/// The rows `table[ids[r]]` of `table` `[V, width]`, one after the other (`[ids.len(), width]`),
/// copied on the pool's threads into a buffer that is not zeroed first.
fn gather_rows(table: &[f32], width: usize, ids: &[usize]) -> Vec<f32> {
    let len = ids.len() * width;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(width)
        .zip(ids.par_iter())
        .with_min_len(64)
        .for_each(|(o, &v)| {
            o.write_copy_of_slice(&table[v * width..][..width]);
        });
    // SAFETY: one `width`-wide chunk for each of the `ids.len()` ids, each written above.
    unsafe { out.set_len(len) };
    out
}

/// `d^T onehot(ids)` `[G*H, V]` from `d` `[R, G*H]` and `ids` `[R]`: column `v` is the sum of the
/// rows `d_r` with `ids[r] = v`. The pool's threads take blocks of output rows (columns of
/// `d`), each summing into a `[V, block]` table of its own and writing it transposed, so every
/// entry is summed in row order whichever thread computes it.
fn scatter_columns(d: &[f32], ids: &[usize], vocab: usize) -> Vec<f32> {
    const BLOCK: usize = 64;
    let gh = d.len() / ids.len().max(1);
    let mut out = vec![0f32; gh * vocab];
    out.par_chunks_mut(BLOCK * vocab)
        .enumerate()
        .for_each(|(block, out)| {
            let (c0, width) = (block * BLOCK, out.len() / vocab);
            let mut table = vec![0f32; vocab * width];
            for (row, &v) in d.chunks(gh).zip(ids) {
                accumulate(&mut table[v * width..][..width], &row[c0..][..width]);
            }
            for (c, o) in out.chunks_mut(vocab).enumerate() {
                for (v, o) in o.iter_mut().enumerate() {
                    *o = table[v * width + c];
                }
            }
        });
    out
}
