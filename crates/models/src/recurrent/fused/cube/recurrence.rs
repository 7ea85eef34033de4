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
//! projected LSTM 6, GRU 4, RNN 1; `H` the cell's units and `R` the width of `h`, a projected
//! LSTM's `P`, else `H`):
//! - `x_proj` `[D, T, B, G*H]`: `x_t W_ih^T + b_ih` of every step;
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
//! - `out` `[T + 1 + E, B, D*R]`: `h_t` of each direction side by side, then the final `h`
//!   (`h0` until the loop ends), then from slab `T + 1` the extra region `[B, D*H]`: (LSTM) the
//!   final `c` of each row, or (reset-before GRU) the step's `r h`; a projected LSTM's step's
//!   `m_t = o_t tanh(c_t)` after it;
//! - `trace` `[D, T, B, K*H]`: the activated gates (LSTM `i, f, g, o, c_t`, and `m_t` if
//!   projected; GRU `r, z, n` and `W_hn h + b_hn`; reset-before GRU `r, z, n`, `W_hn (r h) +
//!   b_hn` and `r h`; RNN `h_t`), and `h_prev` `[D, T, B, R]`: `h_{t-1}` (unmasked), for the
//!   backward.
//!
//! The reset-before GRU's step has two phases, a barrier between them: `r` and `z` (and `r h`
//! for every unit), then `n` from `W_hn (r h)`. Its backward has three: `dz`, `dn`; then
//! `d(r h) = W_hn^T dn` and `dr`; then the recurrent product of `dr, dz`. So has a projected
//! LSTM's step: the cell for every unit, then `h_t = W_hr m_t`; its backward three: `dh_t`
//! (kept in `d_hr` for `dW_hr`), then `dm_t = W_hr^T dh_t` and the cell's backward, then the
//! recurrent product.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

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
fn zone_at<F: Float>(zone: &Tensor<F>, at: usize, #[comptime] zoned: u32) -> F {
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
fn zone_c(
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

/// Whether `out` has a slab after the final `h`: the LSTM's final `c`, the reset-before GRU's
/// `r h_{t-1}` of the current step (read by every unit of the row).
pub(super) const fn extra_slab(cell: u32) -> bool {
    matches!(cell, LSTM | GRU_BEFORE)
}

/// The slab a row's step `t` reads `h_{t-1}` from: the previous step's in this direction's order,
/// or at the row's first step the final-`h` slab (`steps`), where `h0` waits.
#[cube]
fn previous(t: usize, len: usize, steps: usize, reverse: bool) -> usize {
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
) {
    let d = CUBE_POS_Y as usize;
    let dirs = x_proj.shape(0);
    let steps = x_proj.shape(1);
    let batch = x_proj.shape(2);
    // `H` units of the cell, `R` of `h` (a projected LSTM's `P`, else `H`).
    let hr = h0.shape(2);
    let h = x_proj.shape(3) / comptime![gates(cell)];
    let gh = comptime![gates(cell)] * h;
    let kh = comptime![trace_blocks(cell) + if projected { 1 } else { 0 }] * h;
    let width = dirs * hr;
    // The extra region's rows (`[B, D*H]` from slab `T + 1`; a projected LSTM's `m_t` after it).
    let extra = (steps + 1) * batch * width;
    let ch = dirs * h;
    let reverse = d == 1 || reverse_first == 1;
    let row0 = CUBE_POS_X as usize * rows;
    let items = rows * h;
    let stride = CUBE_DIM_X as usize;
    let one = F::new(1.0);

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
                // `b_hh + W_hh h_{t-1}` for the rows `g*H + u` of each gate, `W_hh` transposed
                // (`[R, G*H]`) so that the units read a gate's row together.
                let w_base = d * hr * gh + u;
                let b_base = d * gh + u;
                let m_base = (d * batch + row) * hr;
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
                let mut hp = F::new(0.0);
                if comptime![!projected] {
                    hp = out[prev_base + u];
                }
                let x = step * gh + u;
                let k = step * kh + u;
                let zi = zone_h(d, t, row, u, steps, batch, hr, h, cell);
                if comptime![cell == LSTM] {
                    let c_at = extra + row * ch + d * h + u;
                    let ig = sigmoid::<F>(x_proj[x] + p0);
                    let fg = sigmoid::<F>(x_proj[x + h] + p1);
                    let gg = F::tanh(x_proj[x + 2 * h] + p2);
                    let og = sigmoid::<F>(x_proj[x + 3 * h] + p3);
                    let c_prev = out[c_at];
                    let c_new = fg * c_prev + ig * gg;
                    let m = og * F::tanh(c_new);
                    if comptime![projected] {
                        // `h_t = W_hr m_t` waits for every unit's `m_t` (the second phase).
                        out[c_at + batch * ch] = m;
                        if comptime![keep] {
                            trace[k + 5 * h] = m;
                        }
                    } else {
                        out[o] = zoned_state::<F>(m, hp, zone, zi, zoned);
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
                    // phase) and `r h` (in the extra slab, for the whole row).
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
    grad: &Tensor<F>,
    d_x: &mut Tensor<F>,
    d_h: &mut Tensor<F>,
    d_h0: &mut Tensor<F>,
    d_c0: &mut Tensor<F>,
    d_hr: &mut Tensor<F>,
    reverse_first: u32,
    #[comptime] cell: u32,
    #[comptime] rows: usize,
    #[comptime] masked: bool,
    #[comptime] zoned: u32,
    #[comptime] projected: bool,
) {
    let d = CUBE_POS_Y as usize;
    let dirs = trace.shape(0);
    let steps = trace.shape(1);
    let batch = trace.shape(2);
    // `H` units of the cell, `R` of `h` (as in the forward kernel).
    let hr = h_prev.shape(3);
    let h = d_x.shape(3) / comptime![gates(cell)];
    let gh = comptime![gates(cell)] * h;
    let kh = comptime![trace_blocks(cell) + if projected { 1 } else { 0 }] * h;
    let width = dirs * hr;
    let extra = (steps + 1) * batch * width;
    let ch = dirs * h;
    let reverse = d == 1 || reverse_first == 1;
    let row0 = CUBE_POS_X as usize * rows;
    let items = rows * h;
    let stride = CUBE_DIM_X as usize;
    let one = F::new(1.0);

    // dh and dc start from the final states' gradients.
    let mut i = UNIT_POS_X as usize;
    while i < items {
        let row = row0 + i / h;
        if row < batch {
            let u = i % h;
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
                    if comptime![cell == GRU] {
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
                    let ig = trace[k];
                    let fg = trace[k + h];
                    let gg = trace[k + 2 * h];
                    let og = trace[k + 3 * h];
                    let c_prev = if first {
                        c0[at]
                    } else {
                        trace[((d * steps + tp) * batch + row) * kh + 4 * h + u]
                    };
                    let dc_t = d_c0[at];
                    // The trace keeps `c_t` after zoneout: the cell's own is `f c_{t-1} + i g`.
                    let mut c_new = trace[k + 4 * h];
                    let mut zc = F::new(0.0);
                    let mut dc_next = dc_t;
                    if comptime![zoned != ZONE_OFF] {
                        c_new = fg * c_prev + ig * gg;
                        let at = zone_c(d, t, row, u, steps, batch, hr, h);
                        zc = zone_at::<F>(zone, at, zoned);
                        dc_next = dc_t * (one - zc);
                    }
                    let tc = F::tanh(c_new);
                    let (di, df, dg, d_o, dc) =
                        lstm_backward::<F>(dh, dc_next, ig, fg, gg, og, tc, c_prev);
                    d_x[g] = di;
                    d_x[g + h] = df;
                    d_x[g + 2 * h] = dg;
                    d_x[g + 3 * h] = d_o;
                    d_c0[at] = dc * fg;
                    if comptime![!projected] {
                        d_h0[at] = F::new(0.0);
                    }
                    if comptime![zoned != ZONE_OFF] {
                        d_c0[at] += dc_t * zc;
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
                let mut acc = if comptime![cell == GRU] {
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
