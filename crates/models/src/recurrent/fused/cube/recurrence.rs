//! The whole-sequence recurrence kernels: a layer's time loop, forward and backward, in one
//! launch each.
//!
//! The rows of a batch are independent sequences, so no synchronisation between cubes is needed
//! (WebGPU cannot promise one): each cube owns `rows` rows of one direction (`CUBE_POS_Y`) and
//! runs every step for them. Its units take the `(row, unit)` items of its rows in turn, and the
//! same unit takes the same items at every step, so the state a unit carries (the LSTM's `c`, the
//! backward's `dh` and `dc`) stays in the unit's own places of the outputs. What one unit writes
//! and the others read (`h_t`, the gate gradients) goes to global memory before a
//! `sync_storage`, which makes a cube's storage writes visible to the whole cube on every CubeCL
//! target. `W_hh` is read from global memory at every step (it stays in the caches).
//!
//! Layouts (`D` directions, `G` gates, `K` trace blocks: LSTM and reset-before GRU 5, a
//! projected LSTM 6, GRU 4, RNN 1, and a layer-normalised cell's `N` more (LSTM `G + 1`, GRU
//! `G`); `H` the cell's units and `R` the width of `h`, a projected LSTM's `P`, else `H`):
//! - `x_proj` `[D, T, B, G*H]`: `x_t W_ih^T + b_ih` of every step (`LN_ih(x_t W_ih^T) + b_ih`);
//! - `lengths` `[B]`: each row's steps (PyTorch's packed sequences: the steps from a row's
//!   length on output zeros and leave its state alone; the reverse direction starts at the
//!   row's last step);
//! - `mask` `[D, B, R]` (with recurrent dropout, `masked`): each row's mask on `h_{t-1}` in the
//!   recurrent product, the same at every step (the reset-before GRU's `r h` is `r (m h)`); the
//!   direct paths (the GRU's `z h_{t-1}`) read `h_{t-1}` itself;
//! - `zone` (with zoneout, `zoned`): in training ([`ZONE_MASKS`]) its masks `d_t`, each
//!   direction's of `h` `[T, B, R]` and then (LSTM) of `c` `[T, B, H]`, in evaluation
//!   ([`ZONE_EXPECTED`]) one value, `p`: the new `h_t` (and `c_t`) is `h_t + d_t (h_{t-1} - h_t)`;
//! - `w_hr` (a projected LSTM's, `projected`) `W_hr` transposed, `[D, H, P]` (the backward's
//!   `[D, P, H]`);
//! - `norm` (a layer-normalised cell's, `normalised`) `[D, 2 N*H]`: the recurrent product's
//!   layer norm's `gamma_hh`, `beta_hh` (`G*H` each), then (LSTM) the cell's `gamma_c`,
//!   `beta_c` (`H` each); the backward's `d_norm` `[D, B, 2 N*H]` the same for each row, its
//!   sums over time of `g y^` and `g` (`g` the gradient of a layer norm's output);
//! - `out` `[T + 1 + E, B, D*R]`: `h_t` of each direction side by side, then the final `h`
//!   (`h0` until the loop ends), then from slab `T + 1` the extra regions `[B, D*H]`: (LSTM) the
//!   final `c` of each row, or (reset-before GRU) the step's `r h`; a projected LSTM's step's
//!   `m_t = o_t tanh(c_t)` after it; then a layer-normalised cell's scratch `[B, D, N*H]`, the
//!   step's raw recurrent products and (LSTM) `c_t` and `o_t` before their layer norms;
//! - `trace` `[D, T, B, K*H (+ 2)]`: the activated gates (LSTM `i, f, g, o, c_t`, and `m_t` if
//!   projected; GRU `r, z, n` and `W_hn h + b_hn`; reset-before GRU `r, z, n`, `W_hn (r h) +
//!   b_hn` and `r h`; RNN `h_t`), then a layer-normalised cell's standardised recurrent
//!   products `y^` and (LSTM) `c^`, and the `r` of each (the product's, the cell's); and
//!   `h_prev` `[D, T, B, R]`: `h_{t-1}` (unmasked), for the backward.
//!
//! The reset-before GRU's step has two phases, a barrier between them: `r` and `z` (and `r h`
//! for every unit), then `n` from `W_hn (r h)`. Its backward has three: `dz`, `dn`; then
//! `d(r h) = W_hn^T dn` and `dr`; then the recurrent product of `dr, dz`. So has a projected
//! LSTM's step: the cell for every unit, then `h_t = W_hr m_t`; its backward three: `dh_t`
//! (kept in `d_hr` for `dW_hr`), then `dm_t = W_hr^T dh_t` and the cell's backward, then the
//! recurrent product.
//!
//! A layer-normalised cell's step adds phases whose row sums run through shared memory
//! ([`super::norm`]): the raw recurrent products to the scratch and their rows' moments, the
//! cell from the normalised products (`gamma_hh y^ + beta_hh + b_hh`), and the LSTM's `c_t`'s
//! moments before `m_t = o_t tanh(gamma_c c^ + beta_c)`. Its backward takes the cell's layer
//! norm's backward after the gates' (the LSTM's), then the recurrent product's, whose input
//! gradient goes to `d_h` for the recurrent product (and `dW_hh`); `b_hh`'s gradient is then
//! `beta_hh`'s.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

use super::norm::{SHARED, moments, norm_blocks, normalised_gate, norms_backward};
use super::{gru_backward, lstm_backward, sigmoid};

/// The cells' codes in the kernels' comptime arguments.
pub(super) const LSTM: u32 = 0;
/// GRU, reset after the recurrent product.
pub(super) const GRU: u32 = 1;
/// Vanilla RNN with tanh.
pub(super) const RNN_TANH: u32 = 2;
/// Vanilla RNN with ReLU.
pub(super) const RNN_RELU: u32 = 3;
/// GRU, reset before the recurrent product.
pub(super) const GRU_BEFORE: u32 = 4;

/// Zoneout off.
pub(super) const ZONE_OFF: u32 = 0;
/// Zoneout with drawn masks (training).
pub(super) const ZONE_MASKS: u32 = 1;
/// Zoneout's expectation (evaluation).
pub(super) const ZONE_EXPECTED: u32 = 2;

/// Zoneout's `d` at `at` of `zone` (see the module docs): the mask's entry, or `p`.
#[cube]
pub(super) fn zone_at<F: Float>(zone: &Tensor<F>, at: usize, #[comptime] zoned: u32) -> F {
    if comptime![zoned == ZONE_MASKS] {
        zone[at]
    } else {
        zone[0]
    }
}

/// `h_t` (or `c_t`) `y` after zoneout from `prev`, its mask's or `p`'s `d` at `at` of `zone`:
/// `y + d (prev - y)`; `y` with zoneout off.
#[cube]
fn zoned_state<F: Float>(y: F, prev: F, zone: &Tensor<F>, at: usize, #[comptime] zoned: u32) -> F {
    if comptime![zoned == ZONE_OFF] {
        y
    } else {
        y + (prev - y) * zone_at::<F>(zone, at, zoned)
    }
}

/// Where the zoneout mask of `h` (`hr` wide) for unit `j` of `row` at step `t` of direction `d`
/// is in `zone` (see the module docs; `h` the cell's units).
#[cube]
#[allow(clippy::too_many_arguments)]
fn zone_h(
    d: usize,
    t: usize,
    row: usize,
    j: usize,
    steps: usize,
    batch: usize,
    hr: usize,
    h: usize,
    #[comptime] cell: u32,
) -> usize {
    let mut block = hr;
    if comptime![cell == LSTM] {
        block += h;
    }
    d * steps * batch * block + (t * batch + row) * hr + j
}

/// Where the LSTM's zoneout mask of `c` for unit `u` of `row` at step `t` of direction `d` is in
/// `zone`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn zone_c(
    d: usize,
    t: usize,
    row: usize,
    u: usize,
    steps: usize,
    batch: usize,
    hr: usize,
    h: usize,
) -> usize {
    (d * (hr + h) + hr) * steps * batch + (t * batch + row) * h + u
}

/// Where a step's layer norms start in a trace row (after the cell's blocks) and the row's
/// width `K*H` (a layer-normalised cell's `+ 2`; see the module docs), `H` the cell's units.
#[cube]
pub(super) fn trace_layout(
    h: usize,
    #[comptime] cell: u32,
    #[comptime] projected: bool,
    #[comptime] normalised: bool,
) -> (usize, usize) {
    let ln0 = comptime![trace_blocks(cell) + if projected { 1 } else { 0 }] * h;
    let mut kh = ln0;
    if comptime![normalised] {
        kh += comptime![norm_blocks(cell)] * h + NORM_STATS;
    }
    (ln0, kh)
}

/// `W_hh h_{t-1}` for unit `u`'s rows `g*H + u` of each gate (the reset-before GRU's `r` and
/// `z` only), `h_{t-1}` at `out[prev_base..]` (times recurrent dropout's mask at
/// `mask[m_base..]` if `masked`), `W_hh` transposed (`[R, G*H]`, from `w_base`, the direction's
/// offset plus `u`) so that the units read a gate's row together.
#[cube]
#[allow(clippy::too_many_arguments)]
fn recurrent_products<F: Float>(
    out: &mut Tensor<F>,
    prev_base: usize,
    w_t: &Tensor<F>,
    w_base: usize,
    mask: &Tensor<F>,
    m_base: usize,
    hr: usize,
    h: usize,
    gh: usize,
    #[comptime] cell: u32,
    #[comptime] masked: bool,
) -> (F, F, F, F) {
    let mut p0 = F::new(0.0);
    let mut p1 = F::new(0.0);
    let mut p2 = F::new(0.0);
    let mut p3 = F::new(0.0);
    for k in 0..hr {
        let mut hv = out[prev_base + k];
        if comptime![masked] {
            hv *= mask[m_base + k];
        }
        let w = w_base + k * gh;
        p0 += hv * w_t[w];
        if comptime![gates(cell) > 1] {
            p1 += hv * w_t[w + h];
        }
        if comptime![gates(cell) > 1 && cell != GRU_BEFORE] {
            p2 += hv * w_t[w + 2 * h];
        }
        if comptime![gates(cell) > 3] {
            p3 += hv * w_t[w + 3 * h];
        }
    }
    (p0, p1, p2, p3)
}

/// The LSTM's `m_t = o_t tanh(c_t)` (layer-normalised, `o_t tanh(LN_c(c_t))`) to where it goes:
/// with a projection to `out[m_at]` (and the trace's `trace[m_k]`) for the second phase, else
/// after zoneout from `hp` (`zone` at `zi`) to the output `out[o]`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn lstm_output<F: Float>(
    out: &mut Tensor<F>,
    trace: &mut Tensor<F>,
    m: F,
    hp: F,
    zone: &Tensor<F>,
    o: usize,
    m_at: usize,
    m_k: usize,
    zi: usize,
    #[comptime] keep: bool,
    #[comptime] projected: bool,
    #[comptime] zoned: u32,
) {
    if comptime![projected] {
        // `h_t = W_hr m_t` waits for every unit's `m_t` (the second phase).
        out[m_at] = m;
        if comptime![keep] {
            trace[m_k] = m;
        }
    } else {
        out[o] = zoned_state::<F>(m, hp, zone, zi, zoned);
    }
}

/// The number of gates of cell `cell`.
pub(super) const fn gates(cell: u32) -> usize {
    match cell {
        LSTM => 4,
        GRU | GRU_BEFORE => 3,
        _ => 1,
    }
}

/// The number of `H`-wide blocks a step keeps in the trace.
pub(super) const fn trace_blocks(cell: u32) -> usize {
    match cell {
        LSTM | GRU_BEFORE => 5,
        GRU => 4,
        _ => 1,
    }
}

/// The values a layer-normalised step keeps besides its blocks: the `r` of the recurrent
/// product's and (LSTM) of the cell's layer norm.
pub(super) const NORM_STATS: usize = 2;

/// The number of `[B, D*H]` regions of `out` after the final `h` (see the module docs): the
/// LSTM's final `c` or the reset-before GRU's `r h_{t-1}` of the current step (read by every
/// unit of the row), a projected LSTM's `m_t`, and a layer-normalised cell's scratch.
pub(super) const fn regions(cell: u32, projected: bool, normalised: bool) -> usize {
    let first = if matches!(cell, LSTM | GRU_BEFORE) {
        1
    } else {
        0
    };
    let m = if projected { 1 } else { 0 };
    let scratch = if normalised { norm_blocks(cell) } else { 0 };
    first + m + scratch
}

/// The slab a row's step `t` reads `h_{t-1}` from: the previous step's in this direction's order,
/// or at the row's first step the final-`h` slab (`steps`), where `h0` waits.
#[cube]
pub(super) fn previous(t: usize, len: usize, steps: usize, reverse: bool) -> usize {
    let first = if reverse { t + 1 == len } else { t == 0 };
    if first {
        steps
    } else if reverse {
        t + 1
    } else {
        t - 1
    }
}

/// The forward time loop of every layer direction (see the module docs for the layouts); with
/// `keep`, also the `trace` and `h_prev` of the backward.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn recurrence_kernel<F: Float>(
    x_proj: &Tensor<F>,
    w_t: &Tensor<F>,
    b_hh: &Tensor<F>,
    h0: &Tensor<F>,
    c0: &Tensor<F>,
    lengths: &Tensor<F>,
    mask: &Tensor<F>,
    zone: &Tensor<F>,
    w_hr: &Tensor<F>,
    norm: &Tensor<F>,
    out: &mut Tensor<F>,
    trace: &mut Tensor<F>,
    h_prev: &mut Tensor<F>,
    reverse_first: u32,
    #[comptime] cell: u32,
    #[comptime] rows: usize,
    #[comptime] keep: bool,
    #[comptime] masked: bool,
    #[comptime] zoned: u32,
    #[comptime] projected: bool,
    #[comptime] normalised: bool,
) {
    let d = CUBE_POS_Y as usize;
    let dirs = x_proj.shape(0);
    let steps = x_proj.shape(1);
    let batch = x_proj.shape(2);
    // `H` units of the cell, `R` of `h` (a projected LSTM's `P`, else `H`).
    let hr = h0.shape(2);
    let h = x_proj.shape(3) / comptime![gates(cell)];
    let gh = comptime![gates(cell)] * h;
    let (ln0, kh) = trace_layout(h, cell, projected, normalised);
    let width = dirs * hr;
    // The extra region's rows (`[B, D*H]` from slab `T + 1`; a projected LSTM's `m_t` after it).
    let extra = (steps + 1) * batch * width;
    let ch = dirs * h;
    // A layer-normalised cell's scratch (see the module docs) and its layer norms' width.
    let sw = comptime![norm_blocks(cell)] * h;
    let scratch = extra + comptime![regions(cell, projected, false)] * batch * ch;
    let nw = 2 * sw;
    let reverse = d == 1 || reverse_first == 1;
    let row0 = CUBE_POS_X as usize * rows;
    let items = rows * h;
    let stride = CUBE_DIM_X as usize;
    let one = F::new(1.0);
    // A layer-normalised cell's room for its row sums.
    let mut shared = Shared::<[F]>::new_slice(comptime![if normalised { SHARED } else { 1 }]);

    // `h0` waits in the final-`h` slab of `out` until the end (every row's first step reads it
    // there, the others the previous step's output), and the LSTM carries `c` in the extra
    // region (each unit its own places).
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / h;
        if row < batch {
            let u = i % h;
            if u < hr {
                out[(steps * batch + row) * width + d * hr + u] = h0[(d * batch + row) * hr + u];
            }
            if comptime![cell == LSTM] {
                out[extra + row * ch + d * h + u] = c0[(d * batch + row) * h + u];
            }
        }
        i += stride;
    }
    sync_storage();

    for s in 0..steps {
        let t = if reverse { steps - 1 - s } else { s };
        // A layer-normalised cell's recurrent products first go to the scratch, for their rows'
        // moments.
        let mut mean = F::new(0.0);
        let mut rstd = F::new(0.0);
        if comptime![normalised] {
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / h;
                let len = u32::cast_from(lengths[row % batch]) as usize;
                if row < batch && t < len {
                    let u = i % h;
                    let prev = previous(t, len, steps, reverse);
                    let prev_base = (prev * batch + row) * width + d * hr;
                    let m_base = (d * batch + row) * hr;
                    let (p0, p1, p2, p3) = recurrent_products::<F>(
                        out,
                        prev_base,
                        w_t,
                        d * hr * gh + u,
                        mask,
                        m_base,
                        hr,
                        h,
                        gh,
                        cell,
                        masked,
                    );
                    let scr = scratch + (row * dirs + d) * sw + u;
                    out[scr] = p0;
                    out[scr + h] = p1;
                    out[scr + 2 * h] = p2;
                    if comptime![gates(cell) > 3] {
                        out[scr + 3 * h] = p3;
                    }
                }
                i += stride;
            }
            let row = row0 + UNIT_POS_X as usize / h;
            let valid = row < batch && t < u32::cast_from(lengths[row % batch]) as usize;
            let base = scratch + (row * dirs + d) * sw;
            let stats = moments::<F>(
                &mut shared,
                out,
                base,
                items,
                h,
                valid,
                comptime![gates(cell)],
            );
            mean = stats.0;
            rstd = stats.1;
        }
        let mut i = UNIT_POS_X as usize;
        while i < items {
            let row = row0 + i / h;
            let len = u32::cast_from(lengths[row % batch]) as usize;
            let step = (d * steps + t) * batch + row;
            let o = (t * batch + row) * width + d * hr + i % h;
            if row < batch && t >= len {
                // (A projected LSTM's `h` is written by the second phase.)
                if comptime![!projected] {
                    out[o] = F::new(0.0);
                    if comptime![keep] {
                        h_prev[step * h + i % h] = F::new(0.0);
                    }
                }
            } else if row < batch {
                let u = i % h;
                let prev_base = (previous(t, len, steps, reverse) * batch + row) * width + d * hr;
                // `b_hh + W_hh h_{t-1}` for the rows `g*H + u` of each gate (layer-normalised,
                // `b_hh + LN_hh(W_hh h_{t-1})`).
                let b_base = d * gh + u;
                let m_base = (d * batch + row) * hr;
                let k = step * kh + u;
                let mut p0 = b_hh[b_base];
                let mut p1 = F::new(0.0);
                let mut p2 = F::new(0.0);
                let mut p3 = F::new(0.0);
                if comptime![gates(cell) > 1] {
                    p1 = b_hh[b_base + h];
                }
                if comptime![gates(cell) > 1 && cell != GRU_BEFORE] {
                    p2 = b_hh[b_base + 2 * h];
                }
                if comptime![gates(cell) > 3] {
                    p3 = b_hh[b_base + 3 * h];
                }
                if comptime![normalised] {
                    let scr = scratch + (row * dirs + d) * sw + u;
                    let n_at = d * nw + u;
                    let y_at = k + ln0;
                    p0 += normalised_gate::<F>(
                        out, scr, norm, n_at, trace, y_at, 0, h, gh, mean, rstd, keep,
                    );
                    p1 += normalised_gate::<F>(
                        out, scr, norm, n_at, trace, y_at, 1, h, gh, mean, rstd, keep,
                    );
                    p2 += normalised_gate::<F>(
                        out, scr, norm, n_at, trace, y_at, 2, h, gh, mean, rstd, keep,
                    );
                    if comptime![gates(cell) > 3] {
                        p3 += normalised_gate::<F>(
                            out, scr, norm, n_at, trace, y_at, 3, h, gh, mean, rstd, keep,
                        );
                    }
                    // (`r` once a row.)
                    if comptime![keep] && u == 0 {
                        trace[step * kh + kh - 2] = rstd;
                    }
                } else {
                    let (a0, a1, a2, a3) = recurrent_products::<F>(
                        out,
                        prev_base,
                        w_t,
                        d * hr * gh + u,
                        mask,
                        m_base,
                        hr,
                        h,
                        gh,
                        cell,
                        masked,
                    );
                    p0 += a0;
                    p1 += a1;
                    p2 += a2;
                    p3 += a3;
                }
                let mut hp = F::new(0.0);
                if comptime![!projected] {
                    hp = out[prev_base + u];
                }
                let x = step * gh + u;
                let zi = zone_h(d, t, row, u, steps, batch, hr, h, cell);
                if comptime![cell == LSTM] {
                    let c_at = extra + row * ch + d * h + u;
                    let ig = sigmoid::<F>(x_proj[x] + p0);
                    let fg = sigmoid::<F>(x_proj[x + h] + p1);
                    let gg = F::tanh(x_proj[x + 2 * h] + p2);
                    let og = sigmoid::<F>(x_proj[x + 3 * h] + p3);
                    let c_prev = out[c_at];
                    let c_new = fg * c_prev + ig * gg;
                    if comptime![normalised] {
                        // `h` waits for the cell's layer norm: `c_t` and `o` to the scratch.
                        let scr = scratch + (row * dirs + d) * sw + u;
                        out[scr + 3 * h] = og;
                        out[scr + 4 * h] = c_new;
                    } else {
                        let m = og * F::tanh(c_new);
                        let m_at = c_at + batch * ch;
                        lstm_output::<F>(
                            out,
                            trace,
                            m,
                            hp,
                            zone,
                            o,
                            m_at,
                            k + 5 * h,
                            zi,
                            keep,
                            projected,
                            zoned,
                        );
                    }
                    let zc = zone_c(d, t, row, u, steps, batch, hr, h);
                    let c = zoned_state::<F>(c_new, c_prev, zone, zc, zoned);
                    out[c_at] = c;
                    if comptime![keep] {
                        trace[k] = ig;
                        trace[k + h] = fg;
                        trace[k + 2 * h] = gg;
                        trace[k + 3 * h] = og;
                        trace[k + 4 * h] = c;
                    }
                } else if comptime![cell == GRU_BEFORE] {
                    // The first phase: `r`, `z` (kept in this step's output until the second
                    // phase) and `r h` (in the extra region, for the whole row).
                    let r = sigmoid::<F>(x_proj[x] + p0);
                    let z = sigmoid::<F>(x_proj[x + h] + p1);
                    let mut rh = r * hp;
                    if comptime![masked] {
                        rh *= mask[m_base + u];
                    }
                    out[extra + row * ch + d * h + u] = rh;
                    out[o] = z;
                    if comptime![keep] {
                        trace[k] = r;
                        trace[k + h] = z;
                        trace[k + 4 * h] = rh;
                    }
                } else if comptime![cell == GRU] {
                    let r = sigmoid::<F>(x_proj[x] + p0);
                    let z = sigmoid::<F>(x_proj[x + h] + p1);
                    let n = F::tanh(x_proj[x + 2 * h] + r * p2);
                    out[o] = zoned_state::<F>((one - z) * n + z * hp, hp, zone, zi, zoned);
                    if comptime![keep] {
                        trace[k] = r;
                        trace[k + h] = z;
                        trace[k + 2 * h] = n;
                        trace[k + 3 * h] = p2;
                    }
                } else {
                    let pre = x_proj[x] + p0;
                    let y = if comptime![cell == RNN_TANH] {
                        F::tanh(pre)
                    } else {
                        F::max(pre, F::new(0.0))
                    };
                    out[o] = zoned_state::<F>(y, hp, zone, zi, zoned);
                    if comptime![keep] {
                        trace[k] = y;
                    }
                }
                if comptime![keep && !projected] {
                    h_prev[step * h + u] = hp;
                }
            }
            i += stride;
        }
        if comptime![normalised && cell == LSTM] {
            // The cell's layer norm: `m_t = o_t tanh(gamma_c c^ + beta_c)` from the scratch.
            let row = row0 + UNIT_POS_X as usize / h;
            let valid = row < batch && t < u32::cast_from(lengths[row % batch]) as usize;
            let base = scratch + (row * dirs + d) * sw + gh;
            let (mean_c, r_c) = moments::<F>(&mut shared, out, base, items, h, valid, 1usize);
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / h;
                let len = u32::cast_from(lengths[row % batch]) as usize;
                if row < batch && t < len {
                    let u = i % h;
                    let scr = scratch + (row * dirs + d) * sw + u;
                    let hat = (out[scr + gh] - mean_c) * r_c;
                    let n_at = d * nw + 2 * gh + u;
                    let m = out[scr + 3 * h] * F::tanh(norm[n_at] * hat + norm[n_at + h]);
                    let step = (d * steps + t) * batch + row;
                    let k = step * kh + u;
                    if comptime![keep] {
                        trace[k + ln0 + gh] = hat;
                        if u == 0 {
                            trace[step * kh + kh - 1] = r_c;
                        }
                    }
                    let prev = previous(t, len, steps, reverse);
                    let mut hp = F::new(0.0);
                    if comptime![!projected] {
                        hp = out[(prev * batch + row) * width + d * hr + u];
                    }
                    let o = (t * batch + row) * width + d * hr + u;
                    let m_at = extra + (batch + row) * ch + d * h + u;
                    let zi = zone_h(d, t, row, u, steps, batch, hr, h, cell);
                    lstm_output::<F>(
                        out,
                        trace,
                        m,
                        hp,
                        zone,
                        o,
                        m_at,
                        k + 5 * h,
                        zi,
                        keep,
                        projected,
                        zoned,
                    );
                }
                i += stride;
            }
        }
        if comptime![projected] {
            sync_storage();
            // The second phase: `h_t = W_hr m_t`, `W_hr` transposed (`[H, R]`).
            let items = rows * hr;
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / hr;
                if row < batch {
                    let len = u32::cast_from(lengths[row]) as usize;
                    let j = i % hr;
                    let o = (t * batch + row) * width + d * hr + j;
                    let at = ((d * steps + t) * batch + row) * hr + j;
                    if t >= len {
                        out[o] = F::new(0.0);
                        if comptime![keep] {
                            h_prev[at] = F::new(0.0);
                        }
                    } else {
                        let m_base = extra + batch * ch + row * ch + d * h;
                        let w_base = d * h * hr + j;
                        let mut acc = F::new(0.0);
                        for k in 0..h {
                            acc += out[m_base + k] * w_hr[w_base + k * hr];
                        }
                        let prev = previous(t, len, steps, reverse);
                        let hp = out[(prev * batch + row) * width + d * hr + j];
                        if comptime![keep] {
                            h_prev[at] = hp;
                        }
                        let zi = zone_h(d, t, row, j, steps, batch, hr, h, cell);
                        out[o] = zoned_state::<F>(acc, hp, zone, zi, zoned);
                    }
                }
                i += stride;
            }
        }
        if comptime![cell == GRU_BEFORE] {
            sync_storage();
            // The second phase: `n = tanh(x_n + W_hn (r h) + b_hn)`, `h' = (1 - z) n + z h`.
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / h;
                let len = u32::cast_from(lengths[row % batch]) as usize;
                if row < batch && t < len {
                    let u = i % h;
                    let rh_base = extra + row * ch + d * h;
                    let w_base = d * h * gh + 2 * h + u;
                    let mut pn = b_hh[d * gh + 2 * h + u];
                    for k in 0..h {
                        pn += out[rh_base + k] * w_t[w_base + k * gh];
                    }
                    let step = (d * steps + t) * batch + row;
                    let n = F::tanh(x_proj[step * gh + 2 * h + u] + pn);
                    let prev = previous(t, len, steps, reverse);
                    let hp = out[(prev * batch + row) * width + d * h + u];
                    let o = (t * batch + row) * width + d * h + u;
                    let z = out[o];
                    let zi = zone_h(d, t, row, u, steps, batch, hr, h, cell);
                    out[o] = zoned_state::<F>((one - z) * n + z * hp, hp, zone, zi, zoned);
                    if comptime![keep] {
                        let k = step * kh + u;
                        trace[k + 2 * h] = n;
                        trace[k + 3 * h] = pn;
                    }
                }
                i += stride;
            }
        }
        sync_storage();
    }

    // Each row's final `h`: its output at its last step in this direction's order.
    let items = rows * hr;
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / hr;
        if row < batch {
            let u = i % hr;
            let len = u32::cast_from(lengths[row]) as usize;
            let last = if reverse { 0usize } else { len - 1 };
            let from = (last * batch + row) * width + d * hr + u;
            out[(steps * batch + row) * width + d * hr + u] = out[from];
        }
        i += stride;
    }
}

/// An LSTM step's backward for a unit from the gradient `dh` of its `m_t` and `dc_in` of `c_t`
/// besides `dc_t` (which waits in `d_c0[at]`): the gate pre-activations' gradients to
/// `d_x[g + j H]` (the output gate's only unless `normalised`, whose caller has it) and
/// `dc_{t-1}` to `d_c0[at]`. The trace keeps `c_t` after zoneout (at `k`, the previous step's at
/// `k_prev` unless `first`: then `c0[at]`), so with zoneout the cell's own `f c_{t-1} + i g` is
/// taken again and `d_t dc_t` (`d_t` in `zone` at `zc`) passes straight to `c_{t-1}`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn lstm_grads<F: Float>(
    trace: &Tensor<F>,
    c0: &Tensor<F>,
    zone: &Tensor<F>,
    d_x: &mut Tensor<F>,
    d_c0: &mut Tensor<F>,
    dh: F,
    dc_in: F,
    k: usize,
    k_prev: usize,
    first: bool,
    at: usize,
    g: usize,
    zc: usize,
    h: usize,
    #[comptime] zoned: u32,
    #[comptime] normalised: bool,
) {
    let ig = trace[k];
    let fg = trace[k + h];
    let gg = trace[k + 2 * h];
    let og = trace[k + 3 * h];
    let c_prev = if first { c0[at] } else { trace[k_prev + 4 * h] };
    let dc_t = d_c0[at];
    let mut c_new = trace[k + 4 * h];
    let mut d_zone = F::new(0.0);
    let mut dc_next = dc_t;
    if comptime![zoned != ZONE_OFF] {
        c_new = fg * c_prev + ig * gg;
        d_zone = zone_at::<F>(zone, zc, zoned);
        dc_next = dc_t * (F::new(1.0) - d_zone);
    }
    let tc = F::tanh(c_new);
    let (di, df, dg, d_o, dc) = lstm_backward::<F>(dh, dc_next + dc_in, ig, fg, gg, og, tc, c_prev);
    d_x[g] = di;
    d_x[g + h] = df;
    d_x[g + 2 * h] = dg;
    if comptime![!normalised] {
        d_x[g + 3 * h] = d_o;
    }
    d_c0[at] = dc * fg + dc_t * d_zone;
}

/// `dh_prev = dG_h W_hh` for unit `k` of a row over the first `gh` rows of `W_hh`: `dg` at
/// `src[base .. base + gh]`, `W_hh` `[G*H, H]` at `w_hh[w_base ..]`.
#[cube]
fn back_product<F: Float>(
    src: &mut Tensor<F>,
    base: usize,
    w_hh: &Tensor<F>,
    w_base: usize,
    gh: usize,
    h: usize,
    k: usize,
) -> F {
    let mut acc = F::new(0.0);
    for j in 0..gh {
        acc += src[base + j] * w_hh[w_base + j * h + k];
    }
    acc
}

/// BPTT of every layer direction: from `grad` (of `out`), the gradients of the gate
/// pre-activations on the input side (`d_x`, `[D, T, B, G*H]`) and, for the GRU, on the recurrent
/// side (`d_h`; its `n` block is `r` times `d_x`'s), and of `h0` and `c0` (`[D, B, H]`), which
/// carry `dh` and `dc` through the loop.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn recurrence_backward_kernel<F: Float>(
    trace: &Tensor<F>,
    h_prev: &Tensor<F>,
    w_hh: &Tensor<F>,
    c0: &Tensor<F>,
    lengths: &Tensor<F>,
    mask: &Tensor<F>,
    zone: &Tensor<F>,
    w_hr: &Tensor<F>,
    norm: &Tensor<F>,
    grad: &Tensor<F>,
    d_x: &mut Tensor<F>,
    d_h: &mut Tensor<F>,
    d_h0: &mut Tensor<F>,
    d_c0: &mut Tensor<F>,
    d_hr: &mut Tensor<F>,
    d_norm: &mut Tensor<F>,
    reverse_first: u32,
    #[comptime] cell: u32,
    #[comptime] rows: usize,
    #[comptime] masked: bool,
    #[comptime] zoned: u32,
    #[comptime] projected: bool,
    #[comptime] normalised: bool,
) {
    let d = CUBE_POS_Y as usize;
    let dirs = trace.shape(0);
    let steps = trace.shape(1);
    let batch = trace.shape(2);
    // `H` units of the cell, `R` of `h` (as in the forward kernel).
    let hr = h_prev.shape(3);
    let h = d_x.shape(3) / comptime![gates(cell)];
    let gh = comptime![gates(cell)] * h;
    let (ln0, kh) = trace_layout(h, cell, projected, normalised);
    let width = dirs * hr;
    let extra = (steps + 1) * batch * width;
    let ch = dirs * h;
    let reverse = d == 1 || reverse_first == 1;
    let row0 = CUBE_POS_X as usize * rows;
    let items = rows * h;
    let stride = CUBE_DIM_X as usize;
    let one = F::new(1.0);
    // A layer-normalised cell's room for its row sums.
    let mut shared = Shared::<[F]>::new_slice(comptime![if normalised { SHARED } else { 1 }]);
    // A layer-normalised cell's layer norms' width (`d_norm`'s rows too).
    let nw = comptime![2 * norm_blocks(cell)] * h;

    // dh and dc start from the final states' gradients (and the layer norms' sums from zero).
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / h;
        if row < batch {
            let u = i % h;
            if comptime![normalised] {
                #[unroll]
                for b in 0..comptime![2 * norm_blocks(cell)] {
                    d_norm[(d * batch + row) * nw + b * h + u] = F::new(0.0);
                }
            }
            if u < hr {
                let from = (steps * batch + row) * width + d * hr + u;
                d_h0[(d * batch + row) * hr + u] = grad[from];
            }
            if comptime![cell == LSTM] {
                d_c0[(d * batch + row) * h + u] = grad[extra + row * ch + d * h + u];
            }
        }
        i += stride;
    }

    for s in 0..steps {
        // Backwards through this direction's order of time.
        let t = if reverse { s } else { steps - 1 - s };
        if comptime![projected] {
            // `dh_t` (kept for `dW_hr`) before the cell's backward reads `dm_t = W_hr^T dh_t`.
            sync_storage();
            let items = rows * hr;
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / hr;
                if row < batch {
                    let len = u32::cast_from(lengths[row]) as usize;
                    let j = i % hr;
                    let at = (d * batch + row) * hr + j;
                    let to = ((d * steps + t) * batch + row) * hr + j;
                    if t >= len {
                        d_hr[to] = F::new(0.0);
                    } else {
                        // With zoneout, `zh` of `dh_t` passes straight to `h_{t-1}`.
                        let dh_t = grad[(t * batch + row) * width + d * hr + j] + d_h0[at];
                        let mut zh = F::new(0.0);
                        if comptime![zoned != ZONE_OFF] {
                            let zi = zone_h(d, t, row, j, steps, batch, hr, h, cell);
                            zh = zone_at::<F>(zone, zi, zoned);
                        }
                        d_hr[to] = dh_t * (one - zh);
                        d_h0[at] = dh_t * zh;
                    }
                }
                i += stride;
            }
            sync_storage();
        }
        // A layer-normalised LSTM's sums for its cell's layer norm.
        let mut a1 = F::new(0.0);
        let mut a2 = F::new(0.0);
        let mut i = UNIT_POS_X as usize;
        while i < items {
            let row = row0 + i / h;
            let len = u32::cast_from(lengths[row % batch]) as usize;
            let step = (d * steps + t) * batch + row;
            let g = step * gh + i % h;
            if row < batch && t >= len {
                // A step past the row's length: no gradient (and `dh`, `dc` pass unchanged).
                for j in 0..comptime![gates(cell)] {
                    d_x[g + j * h] = F::new(0.0);
                    if comptime![cell == GRU || normalised] {
                        d_h[g + j * h] = F::new(0.0);
                    }
                }
            } else if row < batch {
                let u = i % h;
                let tp = previous(t, len, steps, reverse);
                let first = tp == steps;
                let at = (d * batch + row) * h + u;
                let k = step * kh + u;
                // The gradient of `h_t` (a projected LSTM's of `m_t`, `W_hr^T dh_t`); with
                // zoneout, `zh` of it passes straight to `h_{t-1}` and the cell's new `h` takes
                // the rest.
                let mut dh_t = F::new(0.0);
                if comptime![projected] {
                    let from = ((d * steps + t) * batch + row) * hr;
                    let w_base = d * hr * h + u;
                    for j in 0..hr {
                        dh_t += d_hr[from + j] * w_hr[w_base + j * h];
                    }
                } else {
                    dh_t = grad[(t * batch + row) * width + d * h + u] + d_h0[at];
                }
                // (A projected LSTM's `h_t` took zoneout's share before `dm_t`.)
                let zi = zone_h(d, t, row, u, steps, batch, hr, h, cell);
                let mut zh = F::new(0.0);
                let mut dh = dh_t;
                if comptime![zoned != ZONE_OFF && !projected] {
                    zh = zone_at::<F>(zone, zi, zoned);
                    dh = dh_t * (one - zh);
                }
                if comptime![cell == LSTM] {
                    if comptime![normalised] {
                        // `h_t = o tanh(gamma_c c^ + beta_c)`: `d_o`, and the gradient `d_s` of
                        // the normalised cell, whose layer norm's backward waits for the row's
                        // sums (`d_s` in `d_x`'s `i` block until then).
                        let og = trace[k + 3 * h];
                        let hat = trace[k + ln0 + gh];
                        let n_at = d * nw + 2 * gh + u;
                        let gamma = norm[n_at];
                        let tc = F::tanh(gamma * hat + norm[n_at + h]);
                        let d_s = dh * og * (one - tc * tc);
                        d_x[g] = d_s;
                        d_x[g + 3 * h] = dh * tc * og * (one - og);
                        let sums = (d * batch + row) * nw + 2 * gh + u;
                        d_norm[sums] += d_s * hat;
                        d_norm[sums + h] += d_s;
                        a1 += gamma * d_s;
                        a2 += gamma * d_s * hat;
                    } else {
                        let k_prev = ((d * steps + tp) * batch + row) * kh + u;
                        let zc = zone_c(d, t, row, u, steps, batch, hr, h);
                        lstm_grads::<F>(
                            trace,
                            c0,
                            zone,
                            d_x,
                            d_c0,
                            dh,
                            F::new(0.0),
                            k,
                            k_prev,
                            first,
                            at,
                            g,
                            zc,
                            h,
                            zoned,
                            false,
                        );
                    }
                    if comptime![!projected] {
                        d_h0[at] = F::new(0.0);
                    }
                } else if comptime![cell == GRU_BEFORE] {
                    // The first phase: `dz`, `dn`, and `h_prev`'s direct part.
                    let z = trace[k + h];
                    let n = trace[k + 2 * h];
                    let dn = dh * (one - z) * (one - n * n);
                    d_x[g + h] = dh * (h_prev[step * h + u] - n) * z * (one - z);
                    d_x[g + 2 * h] = dn;
                    d_h0[at] = dh * z;
                } else if comptime![cell == GRU] {
                    let r = trace[k];
                    let z = trace[k + h];
                    let n = trace[k + 2 * h];
                    let hp = h_prev[step * h + u];
                    let (dr, dz, dn) = gru_backward::<F>(dh, r, z, n, trace[k + 3 * h], hp);
                    d_x[g] = dr;
                    d_x[g + h] = dz;
                    d_x[g + 2 * h] = dn;
                    d_h[g] = dr;
                    d_h[g + h] = dz;
                    d_h[g + 2 * h] = dn * r;
                    d_h0[at] = dh * z;
                } else {
                    let y = trace[k];
                    let dp = if comptime![cell == RNN_TANH] {
                        dh * (one - y * y)
                    } else if y > F::new(0.0) {
                        dh
                    } else {
                        F::new(0.0)
                    };
                    d_x[g] = dp;
                    d_h0[at] = F::new(0.0);
                }
                if comptime![zoned != ZONE_OFF && !projected] {
                    d_h0[at] += dh_t * zh;
                }
            }
            i += stride;
        }
        if comptime![normalised] {
            norms_backward::<F>(
                &mut shared,
                trace,
                c0,
                zone,
                norm,
                lengths,
                d_x,
                d_h,
                d_c0,
                d_norm,
                a1,
                a2,
                d,
                t,
                row0,
                items,
                hr,
                reverse,
                cell,
                zoned,
                projected,
            );
        }
        sync_storage();
        if comptime![cell == GRU_BEFORE] {
            // The second phase: `d(r h) = W_hn^T dn`, `dr = d(r h) h_prev r (1 - r)`, and
            // `h_prev`'s part through `r h`.
            let mut i = UNIT_POS_X as usize;
            while i < items {
                let row = row0 + i / h;
                let len = u32::cast_from(lengths[row % batch]) as usize;
                if row < batch && t < len {
                    let u = i % h;
                    let step = (d * steps + t) * batch + row;
                    let base = step * gh + 2 * h;
                    let w_base = (d * gh + 2 * h) * h + u;
                    let mut d_rh = F::new(0.0);
                    for j in 0..h {
                        d_rh += d_x[base + j] * w_hh[w_base + j * h];
                    }
                    let at = (d * batch + row) * h + u;
                    let r = trace[step * kh + u];
                    // `r h` is `r (m h)` with recurrent dropout.
                    let mut hp = h_prev[step * h + u];
                    let mut through = d_rh * r;
                    if comptime![masked] {
                        hp *= mask[at];
                        through *= mask[at];
                    }
                    d_x[step * gh + u] = d_rh * hp * r * (one - r);
                    d_h0[at] += through;
                }
                i += stride;
            }
            sync_storage();
        }
        // dh_{t-1} += (dG_h W_hh) m, every unit of the row reading the row's gate gradients (the
        // reset-before GRU's `r` and `z` blocks: its `n` block reached `h_{t-1}` through `r h`).
        let items = rows * hr;
        let mut i = UNIT_POS_X as usize;
        while i < items {
            let row = row0 + i / hr;
            if row < batch {
                let k = i % hr;
                let at = (d * batch + row) * hr + k;
                let base = ((d * steps + t) * batch + row) * gh;
                let w_base = d * gh * hr;
                let mut acc = if comptime![cell == GRU || normalised] {
                    back_product::<F>(d_h, base, w_hh, w_base, gh, hr, k)
                } else if comptime![cell == GRU_BEFORE] {
                    back_product::<F>(d_x, base, w_hh, w_base, 2 * h, hr, k)
                } else {
                    back_product::<F>(d_x, base, w_hh, w_base, gh, hr, k)
                };
                // Only the product's part passes the mask (the direct paths read `h` itself).
                if comptime![masked] {
                    acc *= mask[at];
                }
                d_h0[at] += acc;
            }
            i += stride;
        }
        // (No barrier here: the next step writes other steps' gate gradients, and `dh`, `dc` are
        // each unit's own.)
    }
}
