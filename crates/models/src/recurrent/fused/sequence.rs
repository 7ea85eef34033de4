//! A whole layer direction as one host computation (the cuDNN / oneDNN design): the time loop runs
//! inside the op with `W_hh` packed once per sequence ([`PackedMatrix`]), and the backward runs
//! BPTT inside the op too, accumulating `dW_hh` for all steps with one GEMM
//! `dG^T [G*H x T*B] * H_prev [T*B x H]`.
//!
//! The rows of a batch are independent sequences, so the time loops split the batch between the
//! threads of the pool: each thread runs every step for its rows, with no synchronisation between
//! steps, reading the shared packed weights.

use std::ops::Range;

use gemm::{Parallelism, gemm};

use super::kernels::{
    gru_backward_in_place, gru_forward_keep, lstm_backward_in_place, lstm_forward_keep,
    tanh_backward, tanh_forward,
};
use super::packed::PackedMatrix;

/// Fewest batch rows a thread takes (fewer leave its tiles mostly empty).
const MIN_ROWS_PER_THREAD: usize = 4;

/// Least multiply-adds of a whole sequence's recurrent products worth splitting between threads.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// The row ranges the batch is split into: one per pool thread, at least
/// [`MIN_ROWS_PER_THREAD`] rows each, a single range for small work (`work` multiply-adds).
fn row_parts(batch: usize, work: usize) -> Vec<Range<usize>> {
    let threads = if work < MIN_PARALLEL_WORK {
        1
    } else {
        rayon::current_num_threads()
            .min(batch / MIN_ROWS_PER_THREAD)
            .max(1)
    };
    (0..threads)
        .map(|p| p * batch / threads..(p + 1) * batch / threads)
        .collect()
}

/// Splits a `[S, B, width]` buffer into, for each part of `parts` (row ranges of `B`), its rows of
/// every slab `s` (`[rows, width]` each).
fn slabs<'a>(
    buf: &'a mut [f32],
    width: usize,
    batch: usize,
    parts: &[Range<usize>],
) -> Vec<Vec<&'a mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> = parts.iter().map(|_| Vec::new()).collect();
    for slab in buf.chunks_mut(batch * width) {
        let mut rest = slab;
        for (mine, rows) in out.iter_mut().zip(parts) {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(rows.len() * width);
            mine.push(part);
            rest = tail;
        }
    }
    out
}

/// The rows `rows` of slab `s` of a `[S, B, width]` buffer.
fn rows_of<'a>(
    buf: &'a [f32],
    s: usize,
    rows: &Range<usize>,
    width: usize,
    batch: usize,
) -> &'a [f32] {
    &buf[(s * batch + rows.start) * width..(s * batch + rows.end) * width]
}

/// Runs `work` on every part, the first on the calling thread and the others on the pool.
fn in_parallel<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync) {
    let mut parts = parts.into_iter();
    let first = parts.next();
    let work = &work;
    rayon::in_place_scope(|scope| {
        for part in parts {
            scope.spawn(move |_| work(part));
        }
        if let Some(part) = first {
            work(part);
        }
    });
}

/// `c = (accumulate ? c : 0) + a * b` for row-major `c` `[m, n]`; `a` is `[m, k]` (or `[k, m]`
/// read transposed when `a_t`), `b` is `[k, n]` (or `[n, k]` read transposed when `b_t`).
#[allow(clippy::too_many_arguments)]
fn matmul(
    c: &mut [f32],
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    let (a_rs, a_cs) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let threads = if m * n * k >= 1 << 18 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    };
    // SAFETY: the slices hold the m x k, k x n and m x n matrices the strides describe (checked
    // above), and `c` does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

/// `dL/dW_hh = dP^T H_prev` (`[G*H, T*B] x [T*B, H]`, one GEMM for the whole sequence) and
/// `dL/db_hh` (the column sums of `dP`), from the gradients `d_proj` `[T*B, G*H]` of the recurrent
/// projections and the states `h_prev` `[T*B, H]` they were computed from.
fn recurrent_weight_grads(
    d_proj: &[f32],
    h_prev: &[f32],
    gh: usize,
    h: usize,
) -> (Vec<f32>, Vec<f32>) {
    let rows = d_proj.len() / gh;
    let mut w_grad = vec![0f32; gh * h];
    matmul(
        &mut w_grad,
        d_proj,
        true,
        h_prev,
        false,
        (gh, h, rows),
        false,
    );
    let mut b_grad = vec![0f32; gh];
    for row in d_proj.chunks(gh) {
        for (b, g) in b_grad.iter_mut().zip(row) {
            *b += g;
        }
    }
    (w_grad, b_grad)
}

/// What the forward pass keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct LstmTrace {
    /// Activated gates `s(i), s(f), tanh(g), s(o)` of every step, `[T, B, 4H]`.
    pub gates: Vec<f32>,
    /// `h_0 .. h_T`, `[T + 1, B, H]`.
    pub hidden: Vec<f32>,
    /// `c_0 .. c_T`, `[T + 1, B, H]`.
    pub cell: Vec<f32>,
}

impl LstmTrace {
    /// The op's output `[T + 1, B, H]`: `h_1 .. h_T`, then `c_T`.
    pub fn output(&self, steps: usize, bh: usize) -> Vec<f32> {
        let mut out = self.hidden[bh..].to_vec();
        out.extend_from_slice(&self.cell[steps * bh..]);
        out
    }
}

/// Runs the layer: `x_proj` `[T, B, 4H]` (`x W_ih^T + b_ih`), `w_hh` `[4H, H]`, `b_hh` `[4H]`,
/// `h0`, `c0` `[B, H]`.
pub fn lstm_sequence_forward(
    x_proj: &[f32],
    w_hh: &[f32],
    b_hh: &[f32],
    h0: &[f32],
    c0: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LstmTrace {
    let (g4, bh) = (4 * h, batch * h);
    // gates += h_t W_hh^T: W_hh^T [H, 4H] packed once.
    let w = PackedMatrix::pack(w_hh, (h, g4), true);
    let mut gates = vec![0f32; steps * batch * g4];
    let mut hidden = vec![0f32; (steps + 1) * bh];
    let mut cell = vec![0f32; (steps + 1) * bh];
    hidden[..bh].copy_from_slice(h0);
    cell[..bh].copy_from_slice(c0);
    let parts = row_parts(batch, steps * bh * g4);
    let work: Vec<_> = slabs(&mut gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(slabs(&mut cell, h, batch, &parts))
        .zip(parts.iter().cloned())
        .collect();
    in_parallel(work, |(((mut gs, mut hs), mut cs), rows)| {
        for t in 0..steps {
            let g = &mut *gs[t];
            let xp = rows_of(x_proj, t, &rows, g4, batch);
            for (row, x) in g.chunks_mut(g4).zip(xp.chunks(g4)) {
                for ((o, x), b) in row.iter_mut().zip(x).zip(b_hh) {
                    *o = x + b;
                }
            }
            let (h_done, h_next) = hs.split_at_mut(t + 1);
            w.multiply(h_done[t], g, true);
            let (c_done, c_next) = cs.split_at_mut(t + 1);
            lstm_forward_keep(g, c_done[t], h, h_next[0], c_next[0]);
        }
    });
    LstmTrace {
        gates,
        hidden,
        cell,
    }
}

/// Gradients of the inputs of [`lstm_sequence_forward`].
pub struct LstmGrads {
    /// `dL/dx_proj`, `[T, B, 4H]`.
    pub x_proj: Vec<f32>,
    /// `dL/dW_hh`, `[4H, H]`.
    pub w_hh: Vec<f32>,
    /// `dL/db_hh`, `[4H]`.
    pub b_hh: Vec<f32>,
    /// `dL/dh_0`, `[B, H]`.
    pub h0: Vec<f32>,
    /// `dL/dc_0`, `[B, H]`.
    pub c0: Vec<f32>,
}

/// BPTT through the trace, which it consumes (the gradients of the gates overwrite the gates).
/// `d_hidden` `[T, B, H]` is `dL/dh_1..h_T` from the outputs, `d_cell` `[B, H]` is `dL/dc_T`.
pub fn lstm_sequence_backward(
    trace: LstmTrace,
    w_hh: &[f32],
    d_hidden: &[f32],
    d_cell: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LstmGrads {
    let (g4, bh) = (4 * h, batch * h);
    // dh_{t-1} = dG_t W_hh: W_hh [4H, H] packed once.
    let w = PackedMatrix::pack(w_hh, (g4, h), false);
    let LstmTrace {
        gates: mut d_gates,
        hidden,
        cell,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let mut dc_next = d_cell.to_vec();
    let parts = row_parts(batch, steps * bh * g4);
    let work: Vec<_> = slabs(&mut d_gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(slabs(&mut dc_next, h, batch, &parts))
        .zip(parts.iter().cloned())
        .collect();
    in_parallel(work, |(((mut dgs, mut dh_next), mut dc_next), rows)| {
        let (dh_next, dc_next) = (&mut *dh_next[0], &mut *dc_next[0]);
        let (mut dh, mut dc_prev) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
        for t in (0..steps).rev() {
            let out = rows_of(d_hidden, t, &rows, h, batch);
            for ((d, out), next) in dh.iter_mut().zip(out).zip(&*dh_next) {
                *d = out + next;
            }
            let dg = &mut *dgs[t];
            let c_prev = rows_of(&cell, t, &rows, h, batch);
            let c = rows_of(&cell, t + 1, &rows, h, batch);
            lstm_backward_in_place(dg, c_prev, c, &dh, dc_next, h, &mut dc_prev);
            w.multiply(dg, dh_next, false);
            dc_next.copy_from_slice(&dc_prev);
        }
    });
    let (w_grad, b_grad) = recurrent_weight_grads(&d_gates, &hidden[..steps * bh], g4, h);
    LstmGrads {
        x_proj: d_gates,
        w_hh: w_grad,
        b_hh: b_grad,
        h0: dh_next,
        c0: dc_next,
    }
}

/// What the forward pass of a GRU (reset-after) or tanh-RNN sequence keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct GatedTrace {
    /// Per step `h_t W_hh^T + b_hh`, `[T, B, G*H]` (GRU: `G = 3`; RNN: the pre-activation).
    pub projected: Vec<f32>,
    /// GRU: the activations `r, z, n` of every step, `[T, B, 3H]`; RNN: empty.
    pub acts: Vec<f32>,
    /// `h_0 .. h_T`, `[T + 1, B, H]`.
    pub hidden: Vec<f32>,
}

/// The cells whose whole sequence runs as one op besides the LSTM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCell {
    /// GRU, reset after the recurrent product (PyTorch's form): `G = 3`.
    Gru,
    /// Vanilla RNN with tanh: `G = 1`.
    RnnTanh,
}

impl SequenceCell {
    fn gates(self) -> usize {
        match self {
            SequenceCell::Gru => 3,
            SequenceCell::RnnTanh => 1,
        }
    }
}

/// Runs a GRU or tanh-RNN layer direction: `x_proj` `[T, B, G*H]`, `w_hh` `[G*H, H]`, `b_hh`
/// `[G*H]`, `h0` `[B, H]`.
pub fn gated_sequence_forward(
    cell: SequenceCell,
    x_proj: &[f32],
    w_hh: &[f32],
    b_hh: &[f32],
    h0: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> GatedTrace {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // P_t = h_t W_hh^T + b_hh: W_hh^T [H, G*H] packed once.
    let w = PackedMatrix::pack(w_hh, (h, gh), true);
    let mut projected = vec![0f32; steps * batch * gh];
    let mut hidden = vec![0f32; (steps + 1) * bh];
    let mut acts = match cell {
        SequenceCell::Gru => vec![0f32; steps * batch * gh],
        SequenceCell::RnnTanh => Vec::new(),
    };
    hidden[..bh].copy_from_slice(h0);
    let parts = row_parts(batch, steps * bh * gh);
    let mut act_parts = slabs(&mut acts, gh, batch, &parts);
    act_parts.resize_with(parts.len(), Vec::new);
    let work: Vec<_> = slabs(&mut projected, gh, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(act_parts)
        .zip(parts.iter().cloned())
        .collect();
    in_parallel(work, |(((mut ps, mut hs), mut acts), rows)| {
        for t in 0..steps {
            let p = &mut *ps[t];
            let x = rows_of(x_proj, t, &rows, gh, batch);
            for (row, x) in p.chunks_mut(gh).zip(x.chunks(gh)) {
                row.copy_from_slice(b_hh);
                // The RNN's pre-activation is x_proj + P_t; the GRU keeps them apart.
                if cell == SequenceCell::RnnTanh {
                    for (o, x) in row.iter_mut().zip(x) {
                        *o += x;
                    }
                }
            }
            let (done, next) = hs.split_at_mut(t + 1);
            w.multiply(done[t], p, true);
            match cell {
                SequenceCell::Gru => gru_forward_keep(x, p, done[t], h, next[0], acts[t]),
                SequenceCell::RnnTanh => tanh_forward(p, next[0]),
            }
        }
    });
    GatedTrace {
        projected,
        acts,
        hidden,
    }
}

/// Gradients of the inputs of [`gated_sequence_forward`].
pub struct GatedGrads {
    /// `dL/dx_proj`, `[T, B, G*H]`.
    pub x_proj: Vec<f32>,
    /// `dL/dW_hh`, `[G*H, H]`.
    pub w_hh: Vec<f32>,
    /// `dL/db_hh`, `[G*H]`.
    pub b_hh: Vec<f32>,
    /// `dL/dh_0`, `[B, H]`.
    pub h0: Vec<f32>,
}

/// BPTT through a GRU or tanh-RNN trace, which it consumes (gradients overwrite the activations
/// and projections); `d_hidden` `[T, B, H]` is `dL/dh_1..h_T`.
pub fn gated_sequence_backward(
    cell: SequenceCell,
    trace: GatedTrace,
    w_hh: &[f32],
    d_hidden: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> GatedGrads {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // dh_{t-1} = dP_t W_hh (+ the GRU's direct path): W_hh [G*H, H] packed once.
    let w = PackedMatrix::pack(w_hh, (gh, h), false);
    let GatedTrace {
        projected: mut d_proj,
        acts: mut d_x,
        hidden,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let parts = row_parts(batch, steps * bh * gh);
    let mut dx_parts = slabs(&mut d_x, gh, batch, &parts);
    dx_parts.resize_with(parts.len(), Vec::new);
    let work: Vec<_> = dx_parts
        .into_iter()
        .zip(slabs(&mut d_proj, gh, batch, &parts))
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(parts.iter().cloned())
        .collect();
    in_parallel(work, |(((mut dxs, mut dps), mut dh_next), rows)| {
        let dh_next = &mut *dh_next[0];
        // `g` = dL/dh_t; `direct` = its part that reaches h_{t-1} without W_hh (GRU's z h_{t-1}).
        let (mut g, mut direct) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
        for t in (0..steps).rev() {
            let out = rows_of(d_hidden, t, &rows, h, batch);
            for ((d, out), next) in g.iter_mut().zip(out).zip(&*dh_next) {
                *d = out + next;
            }
            let dp = &mut *dps[t];
            match cell {
                SequenceCell::Gru => {
                    let prev = rows_of(&hidden, t, &rows, h, batch);
                    gru_backward_in_place(dxs[t], dp, prev, &g, h, &mut direct);
                    dh_next.copy_from_slice(&direct);
                    w.multiply(dp, dh_next, true);
                }
                SequenceCell::RnnTanh => {
                    let y = rows_of(&hidden, t + 1, &rows, h, batch);
                    tanh_backward(y, &g, dp);
                    w.multiply(dp, dh_next, false);
                }
            }
        }
    });
    let (w_grad, b_grad) = recurrent_weight_grads(&d_proj, &hidden[..steps * bh], gh, h);
    // The RNN's pre-activation is x_proj + P_t: the same gradient.
    if cell == SequenceCell::RnnTanh {
        d_x = d_proj;
    }
    GatedGrads {
        x_proj: d_x,
        w_hh: w_grad,
        b_hh: b_grad,
        h0: dh_next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_handles_both_transpositions() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
        let mut c = [0f32; 4];
        matmul(&mut c, &a, false, &b, false, (2, 2, 2), false);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        matmul(&mut c, &a, true, &b, false, (2, 2, 2), false);
        assert_eq!(c, [26.0, 30.0, 38.0, 44.0]);
        matmul(&mut c, &a, false, &b, true, (2, 2, 2), true);
        assert_eq!(c, [26.0 + 17.0, 30.0 + 23.0, 38.0 + 39.0, 44.0 + 53.0]);
    }

    #[test]
    fn backward_matches_central_differences() {
        let (t, b, h) = (3, 2, 2);
        let f = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|k| (((k * s) % 13) as f32 - 6.0) / 8.0)
                .collect()
        };
        let (xp, w, bias, h0, c0) = (
            f(t * b * 4 * h, 7),
            f(4 * h * h, 5),
            f(4 * h, 3),
            f(b * h, 11),
            f(b * h, 2),
        );
        let (wd, wc) = (f(t * b * h, 9), f(b * h, 4));
        let loss = |xp: &[f32], w: &[f32], bias: &[f32], h0: &[f32], c0: &[f32]| -> f64 {
            let tr = lstm_sequence_forward(xp, w, bias, h0, c0, (t, b, h));
            let hs: f64 = tr.hidden[b * h..]
                .iter()
                .zip(&wd)
                .map(|(x, y)| (x * y) as f64)
                .sum();
            let cs: f64 = tr.cell[t * b * h..]
                .iter()
                .zip(&wc)
                .map(|(x, y)| (x * y) as f64)
                .sum();
            hs + cs
        };
        let trace = lstm_sequence_forward(&xp, &w, &bias, &h0, &c0, (t, b, h));
        let g = lstm_sequence_backward(trace, &w, &wd, &wc, (t, b, h));
        let inputs = [&xp, &w, &bias, &h0, &c0];
        let grads = [&g.x_proj, &g.w_hh, &g.b_hh, &g.h0, &g.c0];
        for (which, (input, grad)) in inputs.iter().zip(grads).enumerate() {
            for k in 0..input.len() {
                let mut args: Vec<Vec<f32>> = inputs.iter().map(|v| v.to_vec()).collect();
                args[which][k] += 1e-2;
                let up = loss(&args[0], &args[1], &args[2], &args[3], &args[4]);
                args[which][k] -= 2e-2;
                let down = loss(&args[0], &args[1], &args[2], &args[3], &args[4]);
                let numeric = (up - down) / 2e-2;
                assert!(
                    (numeric - grad[k] as f64).abs() < 3e-3,
                    "input {which} element {k}: numeric {numeric} analytic {}",
                    grad[k]
                );
            }
        }
    }

    #[test]
    fn splitting_the_batch_between_threads_changes_nothing() {
        // Large enough to split for every cell (T B H G*H >= MIN_PARALLEL_WORK), B not a multiple
        // of the parts.
        let (t, b, h) = (4, 13, 160);
        let f = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|k| (((k * s) % 29) as f32 - 14.0) / 40.0)
                .collect()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| {
                assert_eq!(row_parts(b, t * b * h * 4 * h).len(), threads);
                let (xp, w, bias, h0) = (
                    f(t * b * 4 * h, 7),
                    f(4 * h * h, 5),
                    f(4 * h, 3),
                    f(b * h, 11),
                );
                let trace = lstm_sequence_forward(&xp, &w, &bias, &h0, &h0, (t, b, h));
                let states = [trace.hidden.clone(), trace.cell.clone()];
                let g = lstm_sequence_backward(trace, &w, &f(t * b * h, 9), &h0, (t, b, h));
                let mut all = vec![g.x_proj, g.w_hh, g.h0, g.c0];
                all.extend(states);
                for cell in [SequenceCell::Gru, SequenceCell::RnnTanh] {
                    let gh = cell.gates() * h;
                    let (xp, w, bias) = (f(t * b * gh, 7), f(gh * h, 5), f(gh, 3));
                    let trace = gated_sequence_forward(cell, &xp, &w, &bias, &h0, (t, b, h));
                    let hidden = trace.hidden.clone();
                    let g = gated_sequence_backward(cell, trace, &w, &f(t * b * h, 9), (t, b, h));
                    all.extend([hidden, g.x_proj, g.w_hh, g.h0]);
                }
                all
            })
        };
        // Each row's arithmetic is the same whichever thread runs it: equal bit for bit.
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn gated_backward_matches_central_differences() {
        let (t, b, h) = (3, 2, 2);
        let f = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|k| (((k * s) % 13) as f32 - 6.0) / 8.0)
                .collect()
        };
        for cell in [SequenceCell::Gru, SequenceCell::RnnTanh] {
            let gh = cell.gates() * h;
            let (xp, w, bias, h0) = (f(t * b * gh, 7), f(gh * h, 5), f(gh, 3), f(b * h, 11));
            let wd = f(t * b * h, 9);
            let loss = |xp: &[f32], w: &[f32], bias: &[f32], h0: &[f32]| -> f64 {
                let tr = gated_sequence_forward(cell, xp, w, bias, h0, (t, b, h));
                tr.hidden[b * h..]
                    .iter()
                    .zip(&wd)
                    .map(|(x, y)| (x * y) as f64)
                    .sum()
            };
            let trace = gated_sequence_forward(cell, &xp, &w, &bias, &h0, (t, b, h));
            let g = gated_sequence_backward(cell, trace, &w, &wd, (t, b, h));
            let inputs = [&xp, &w, &bias, &h0];
            let grads = [&g.x_proj, &g.w_hh, &g.b_hh, &g.h0];
            for (which, (input, grad)) in inputs.iter().zip(grads).enumerate() {
                for k in 0..input.len() {
                    let mut args: Vec<Vec<f32>> = inputs.iter().map(|v| v.to_vec()).collect();
                    args[which][k] += 1e-2;
                    let up = loss(&args[0], &args[1], &args[2], &args[3]);
                    args[which][k] -= 2e-2;
                    let down = loss(&args[0], &args[1], &args[2], &args[3]);
                    let numeric = (up - down) / 2e-2;
                    assert!(
                        (numeric - grad[k] as f64).abs() < 3e-3,
                        "{cell:?} input {which} element {k}: numeric {numeric} analytic {}",
                        grad[k]
                    );
                }
            }
        }
    }
}
