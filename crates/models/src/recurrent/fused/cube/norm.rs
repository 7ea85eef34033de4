//! The layer norms of a layer-normalised LSTM or GRU inside the recurrence kernels
//! ([`super::recurrence`]): each step's norm of the recurrent product and (LSTM) of the cell
//! state is a reduction over a row's `G*H` (or `H`) values, which the units of the row add up
//! through shared memory.
//!
//! The launch grid ([`super::sequence::grid`]) gives every unit the items of one row only: a
//! cube of several rows has a unit for each item (`rows * H` at most the cube's units), and a
//! cube with more items than units has one row. So each unit adds up its own items first, and
//! the units of local row `UNIT_POS_X / H` (`min(H, CUBE_DIM_X)` of them from `UNIT_POS_X / H *
//! H`) then hold the row's partial sums.
//!
//! The maths is the host op's (`sequence/norm.rs`): `y^ = (y - mean(y)) r`, `r = 1 /
//! sqrt(var(y) + eps)` (biased variance) in the forward; `dy = r (gamma g - mean(gamma g) - y^
//! mean(gamma g y^))` in the backward.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::recurrence::{GRU, LSTM, gates, lstm_grads, previous, trace_layout, zone_c};
use super::sequence::CUBE_UNITS;
use crate::recurrent::weights::LAYER_NORM_EPSILON;

/// The `H`-wide blocks a layer norm keeps a step of: the recurrent product's `G` (its `y^`),
/// and the LSTM's cell state (`c^`).
pub(super) const fn norm_blocks(cell: u32) -> usize {
    gates(cell) + if cell == LSTM { 1 } else { 0 }
}

/// Partial sums a unit of [`row_sums`]'s second stage adds up.
const SEGMENT: usize = 16;

/// Room for [`row_sums`] in shared memory: the units' partial sums of `a` and `b`, then their
/// segments' sums.
pub(super) const SHARED: usize = 4 * CUBE_UNITS;

/// The sums over the units of this unit's row (see the module docs) of their `a` and `b`, `h`
/// the cell's units, through `shared` ([`SHARED`] values): the partial sums, a barrier, the
/// row's first units each adding [`SEGMENT`] of them, a barrier, and each unit adding those.
/// Every unit of the cube must call it. (Consecutive calls do not race: each writes the
/// partial sums only after every unit has passed the previous call's second barrier, behind
/// which nothing reads them, and the segments' sums after every unit has read the previous
/// ones, before the first barrier.)
#[cube]
pub(super) fn row_sums<F: Float>(shared: &mut Shared<[F]>, a: F, b: F, h: usize) -> (F, F) {
    let me = UNIT_POS_X as usize;
    shared[me] = a;
    shared[CUBE_UNITS + me] = b;
    sync_cube();
    let units = CUBE_DIM_X as usize;
    let start = me / h * h;
    let mut end = start + h;
    if end > units {
        end = units;
    }
    let from = start + (me - start) * SEGMENT;
    if from < end {
        let mut to = from + SEGMENT;
        if to > end {
            to = end;
        }
        let mut seg_a = F::new(0.0);
        let mut seg_b = F::new(0.0);
        let mut j = from;
        while j < to {
            seg_a += shared[j];
            seg_b += shared[CUBE_UNITS + j];
            j += 1;
        }
        shared[2 * CUBE_UNITS + me] = seg_a;
        shared[3 * CUBE_UNITS + me] = seg_b;
    }
    sync_cube();
    let segments = (end - start).div_ceil(SEGMENT);
    let mut total_a = F::new(0.0);
    let mut total_b = F::new(0.0);
    let mut j = start;
    while j < start + segments {
        total_a += shared[2 * CUBE_UNITS + j];
        total_b += shared[3 * CUBE_UNITS + j];
        j += 1;
    }
    (total_a, total_b)
}

/// The mean and `r` of the `blocks * H` values of this unit's row in `values` from `base` (the
/// unit's item `u` reads `values[base + b * H + u]` of each block `b`), for the `items` of the
/// cube (`stride` apart); `valid` whether the row runs this step. Every unit must call it.
#[cube]
pub(super) fn moments<F: Float>(
    shared: &mut Shared<[F]>,
    values: &mut Tensor<F>,
    base: usize,
    items: usize,
    h: usize,
    valid: bool,
    #[comptime] blocks: usize,
) -> (F, F) {
    let stride = CUBE_DIM_X as usize;
    let count = F::cast_from(blocks * h);
    let mut sum = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < items {
        if valid {
            #[unroll]
            for b in 0..blocks {
                sum += values[base + b * h + i % h];
            }
        }
        i += stride;
    }
    let (total, _) = row_sums::<F>(shared, sum, F::new(0.0), h);
    let mean = total / count;
    let mut squares = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < items {
        if valid {
            #[unroll]
            for b in 0..blocks {
                let v = values[base + b * h + i % h] - mean;
                squares += v * v;
            }
        }
        i += stride;
    }
    let (total, _) = row_sums::<F>(shared, squares, F::new(0.0), h);
    let eps = F::new(comptime![LAYER_NORM_EPSILON as f32]);
    (mean, F::new(1.0) / F::sqrt(total / count + eps))
}

/// Gate `g`'s layer-normalised recurrent product for a unit, `gamma y^ + beta` (`gamma` and
/// `beta` of the unit's row of the gate at `norm[n_at + g H]` and `norm[n_at + G*H + g H]`),
/// from its raw product in the scratch at `out[scr + g H]` and the row's `mean` and `r`; keeps
/// `y^` in the trace at `trace[y_at + g H]` with `keep`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn normalised_gate<F: Float>(
    out: &mut Tensor<F>,
    scr: usize,
    norm: &Tensor<F>,
    n_at: usize,
    trace: &mut Tensor<F>,
    y_at: usize,
    g: usize,
    h: usize,
    gh: usize,
    mean: F,
    rstd: F,
    #[comptime] keep: bool,
) -> F {
    let y = (out[scr + g * h] - mean) * rstd;
    if comptime![keep] {
        trace[y_at + g * h] = y;
    }
    norm[n_at + g * h] * y + norm[n_at + gh + g * h]
}

/// A layer-normalised cell's layer norms in BPTT, after a step's gate gradients (see
/// [`super::recurrence::recurrence_backward_kernel`]), for the `items` of the cube's rows from
/// `row0` at step `t` of direction `d`: the LSTM's cell first (`a1`, `a2` this unit's sums of
/// `gamma_c d_s` and `gamma_c d_s c^`, `d_s` waiting in `d_x`'s `i` block), then the recurrent
/// product's, whose input gradient `dy` goes to `d_h` for `dh_{t-1}` and `dW_hh` (from the
/// recurrent side's gate gradients: `d_x`, the GRU's `d_h`). Adds each row's `g y^` and `g` to
/// its sums in `d_norm` (`[D, B, 2 (G*H (+ H))]`: of `gamma_hh`, `beta_hh` and (LSTM) `gamma_c`,
/// `beta_c`). Every unit must call it.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn norms_backward<F: Float>(
    shared: &mut Shared<[F]>,
    trace: &Tensor<F>,
    c0: &Tensor<F>,
    zone: &Tensor<F>,
    norm: &Tensor<F>,
    lengths: &Tensor<F>,
    d_x: &mut Tensor<F>,
    d_h: &mut Tensor<F>,
    d_c0: &mut Tensor<F>,
    d_norm: &mut Tensor<F>,
    a1: F,
    a2: F,
    d: usize,
    t: usize,
    row0: usize,
    items: usize,
    hr: usize,
    reverse: bool,
    #[comptime] cell: u32,
    #[comptime] zoned: u32,
    #[comptime] projected: bool,
) {
    let steps = trace.shape(1);
    let batch = trace.shape(2);
    let h = d_x.shape(3) / comptime![gates(cell)];
    let gh = comptime![gates(cell)] * h;
    let nw = comptime![2 * norm_blocks(cell)] * h;
    let (ln0, kh) = trace_layout(h, cell, projected, true);
    let stride = CUBE_DIM_X as usize;
    if comptime![cell == LSTM] {
        let (s1, s2) = row_sums::<F>(shared, a1, a2, h);
        let mean_g = s1 / F::cast_from(h);
        let mean_gy = s2 / F::cast_from(h);
        let mut i = UNIT_POS_X as usize;
        while i < items {
            let row = row0 + i / h;
            let len = u32::cast_from(lengths[row % batch]) as usize;
            if row < batch && t < len {
                let u = i % h;
                let step = (d * steps + t) * batch + row;
                let g = step * gh + u;
                let k = step * kh + u;
                let hat = trace[k + ln0 + gh];
                let gamma = norm[d * nw + 2 * gh + u];
                let dc = trace[step * kh + kh - 1] * (gamma * d_x[g] - mean_g - hat * mean_gy);
                let tp = previous(t, len, steps, reverse);
                let k_prev = ((d * steps + tp) * batch + row) * kh + u;
                let zc = zone_c(d, t, row, u, steps, batch, hr, h);
                let at = (d * batch + row) * h + u;
                lstm_grads::<F>(
                    trace,
                    c0,
                    zone,
                    d_x,
                    d_c0,
                    F::new(0.0),
                    dc,
                    k,
                    k_prev,
                    tp == steps,
                    at,
                    g,
                    zc,
                    h,
                    zoned,
                    true,
                );
            }
            i += stride;
        }
    }
    // The recurrent product's: its row sums, then `dy`.
    let mut b1 = F::new(0.0);
    let mut b2 = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / h;
        let len = u32::cast_from(lengths[row % batch]) as usize;
        if row < batch && t < len {
            let u = i % h;
            let step = (d * steps + t) * batch + row;
            let g = step * gh + u;
            let y_at = step * kh + ln0 + u;
            let sums = (d * batch + row) * nw + u;
            #[unroll]
            for j in 0..comptime![gates(cell)] {
                let gk = recurrent_grad::<F>(d_x, d_h, g + j * h, cell);
                let y = trace[y_at + j * h];
                let gamma = norm[d * nw + j * h + u];
                b1 += gamma * gk;
                b2 += gamma * gk * y;
                d_norm[sums + j * h] += gk * y;
                d_norm[sums + gh + j * h] += gk;
            }
        }
        i += stride;
    }
    let (s1, s2) = row_sums::<F>(shared, b1, b2, h);
    let mean_g = s1 / F::cast_from(gh);
    let mean_gy = s2 / F::cast_from(gh);
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / h;
        let len = u32::cast_from(lengths[row % batch]) as usize;
        if row < batch && t < len {
            let u = i % h;
            let step = (d * steps + t) * batch + row;
            let g = step * gh + u;
            let y_at = step * kh + ln0 + u;
            let r = trace[step * kh + kh - 2];
            #[unroll]
            for j in 0..comptime![gates(cell)] {
                let gk = recurrent_grad::<F>(d_x, d_h, g + j * h, cell);
                let y = trace[y_at + j * h];
                let gamma = norm[d * nw + j * h + u];
                d_h[g + j * h] = r * (gamma * gk - mean_g - y * mean_gy);
            }
        }
        i += stride;
    }
}

/// The gradient of a recurrent pre-activation at `at`: the GRU's from `d_h` (its `n` block
/// `r` times the input side's), the LSTM's from `d_x` (the same on both sides).
#[cube]
fn recurrent_grad<F: Float>(
    d_x: &mut Tensor<F>,
    d_h: &mut Tensor<F>,
    at: usize,
    #[comptime] cell: u32,
) -> F {
    let mut g = d_x[at];
    if comptime![cell == GRU] {
        g = d_h[at];
    }
    g
}
