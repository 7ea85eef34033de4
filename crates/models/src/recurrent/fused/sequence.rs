//! A whole layer direction as one host computation (the cuDNN / oneDNN design): the input
//! projection `x W_ih^T` of all steps is one GEMM, the time loop runs inside the op with `W_hh`
//! packed once per sequence ([`PackedMatrix`]), and the backward runs BPTT inside the op too,
//! with `dW_hh` for all steps in one GEMM `dG^T [G*H x T*B] * H_prev [T*B x H]` and `dx`, `dW_ih`
//! in one GEMM each.
//!
//! The rows of a batch are independent sequences, so the time loops split the batch between the
//! threads of the pool: each thread runs every step for its rows, with no synchronisation between
//! steps, reading the shared packed weights.
//!
//! A direction runs forward or backward in time over `x` as it is ([`Direction`]): the reverse
//! direction of a bidirectional layer needs no flipped copy of its input or its output.
//!
//! The input can be token ids instead of features ([`LayerInput::Tokens`], a first layer over an
//! embedding `E` with `W_ih E^T` for `W_ih`): the projection then gathers columns of that
//! `[G*H, V]` matrix, and the backward sums the gate gradients by token instead of the `dx` and
//! `dW_ih` GEMMs.

use std::mem::MaybeUninit;
use std::ops::Range;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::direct::DirectMatrix;
use super::kernels::{
    gru_backward_in_place, gru_forward_keep, lstm_backward_in_place, lstm_forward_keep,
    tanh_backward, tanh_forward,
};
use super::packed::PackedMatrix;

/// Most elements of the joined weight gradient `[G*H, I+H]` of [`LayerGrads::shared`]. Past it
/// the two products are large enough to run as well apart, and the joined product would write a
/// buffer of tens of megabytes (which glibc serves with a fresh `mmap` past 32 MB). Measured with
/// the products in row blocks (join, product and split against two products): hidden 1024,
/// tanh RNN 23.7-27.3 against 16.3-20.4 ms, LSTM 75-79 against 65-77; hidden 256 (0.5 M
/// elements), LSTM 4.5-4.9 against 4.7-5.3 ms.
const MAX_JOINED_GRAD: usize = 1 << 20;

/// Fewest batch rows a thread takes (fewer leave its tiles mostly empty).
const MIN_ROWS_PER_THREAD: usize = 4;

/// Least multiply-adds of a whole sequence's recurrent products worth splitting between threads.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// Most rows a product takes as dot products against the stored weights ([`DirectMatrix`])
/// instead of packing them first ([`PackedMatrix`], whose tiles take 8 rows at a time).
pub(super) const DIRECT_MAX_ROWS: usize = 2;

/// A layer's weights `W` `[n, k]` as the right-hand side of `a W^T`, in the form that suits
/// products of `rows` rows at a time: packed once, or read where they are.
enum Weights<'a> {
    Packed(PackedMatrix),
    Direct(DirectMatrix<'a>),
}

impl<'a> Weights<'a> {
    fn new(w: &'a [f32], (n, k): (usize, usize), rows: usize) -> Self {
        if rows <= DIRECT_MAX_ROWS {
            Weights::Direct(DirectMatrix::new(w, (n, k)))
        } else {
            Weights::Packed(PackedMatrix::pack(w, (k, n), true))
        }
    }

    /// `c (+)= a W^T + bias` (`bias` on every row). The packed product runs on the calling
    /// thread (the time loops split the batch rows between the threads) and adds the bias as it
    /// stores its tiles; the direct one splits the weight rows.
    fn multiply_bias(&self, a: &[f32], c: &mut [f32], accumulate: bool, bias: &[f32]) {
        match self {
            Weights::Packed(w) => w.multiply_bias(a, c, accumulate, bias),
            Weights::Direct(w) => {
                if !accumulate {
                    c.fill(0.0);
                }
                add_rows(c, bias);
                w.multiply(a, c, true);
            }
        }
    }
}

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
pub(super) fn slabs<'a>(
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

/// Which way a layer direction visits time: `t = 0 .. T-1` or (PyTorch's `_reverse` direction)
/// `t = T-1 .. 0`.
///
/// A trace keeps the states in a `[T + 1, B, H]` buffer whose slot `t` (forward) or `t + 1`
/// (reverse) holds the state entering time `t`, and slot `t + 1` or `t` the one leaving it: the
/// initial state sits in slot `0` or `T`, and the outputs `h_t` in slots `1..=T` or `0..T`, in
/// time order either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Forward in time.
    Forward,
    /// Backward in time.
    Reverse,
}

impl Direction {
    /// [`Direction::Reverse`] if `reverse`.
    pub fn new(reverse: bool) -> Self {
        if reverse {
            Direction::Reverse
        } else {
            Direction::Forward
        }
    }

    /// The times `0..steps` in the order the forward pass visits them (BPTT visits them in the
    /// opposite order).
    fn times(self, steps: usize) -> impl DoubleEndedIterator<Item = usize> {
        (0..steps).map(move |i| match self {
            Direction::Forward => i,
            Direction::Reverse => steps - 1 - i,
        })
    }

    /// The state-buffer slots `(entering, leaving)` of time `t`.
    fn slots(self, t: usize) -> (usize, usize) {
        match self {
            Direction::Forward => (t, t + 1),
            Direction::Reverse => (t + 1, t),
        }
    }

    /// The slot of the initial state (of `steps` steps).
    fn first_slot(self, steps: usize) -> usize {
        match self {
            Direction::Forward => 0,
            Direction::Reverse => steps,
        }
    }

    /// The slot of the final state (of `steps` steps).
    fn last_slot(self, steps: usize) -> usize {
        match self {
            Direction::Forward => steps,
            Direction::Reverse => 0,
        }
    }

    /// The outputs `h_t` of a `[T + 1, B*H]` state buffer, `[T, B*H]` in time order.
    fn outputs(self, states: &[f32], bh: usize) -> &[f32] {
        match self {
            Direction::Forward => &states[bh..],
            Direction::Reverse => &states[..states.len() - bh],
        }
    }

    /// The states entering each time (what `W_hh` multiplied), `[T, B*H]` in time order.
    fn entering(self, states: &[f32], bh: usize) -> &[f32] {
        match self {
            Direction::Forward => Direction::Reverse,
            Direction::Reverse => Direction::Forward,
        }
        .outputs(states, bh)
    }
}

/// From the slabs of a state buffer, the state at `slots.0` to read and the one at `slots.1` to
/// write.
fn step_states<'a>(
    slabs: &'a mut [&mut [f32]],
    (from, to): (usize, usize),
) -> (&'a [f32], &'a mut [f32]) {
    if from < to {
        let (done, next) = slabs.split_at_mut(to);
        (&*done[from], &mut *next[0])
    } else {
        let (next, done) = slabs.split_at_mut(from);
        (&*done[0], &mut *next[to])
    }
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

/// Runs `f` on a thread of the pool, blocking the caller when it is not one: the time loops' row
/// parts and the `gemm` crate's parallel products then start from inside the pool instead of
/// each being injected into it from outside (measured: 9.1 against 7.9 ms for an LSTM layer's
/// forward at the reference shape, called from the main thread).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Runs a forward pass over a batch of `batch` rows: [`in_pool`], unless the batch is small
/// enough for the products to read the weights in place ([`DIRECT_MAX_ROWS`]); those split
/// between the threads of [`super::team`], and entering the pool would cost more than them.
pub fn forward_in_pool<R: Send>(batch: usize, f: impl FnOnce() -> R + Send) -> R {
    if batch <= DIRECT_MAX_ROWS {
        f()
    } else {
        in_pool(f)
    }
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

/// `a * b`, row-major `[m, n]`; `a` is `[m, k]` (or `[k, m]` read transposed when `a_t`), `b` is
/// `[k, n]` (or `[n, k]` read transposed when `b_t`). The GEMM writes every value of a buffer that
/// is not zeroed first (zeroing megabytes that are then overwritten took 3-6% of a training step
/// in `memset` and page faults).
///
/// A large product runs as one block of rows a thread, each a single-threaded `gemm` call: on one
/// thread the `gemm` crate reaches 161-168 GFLOP/s at the reference shapes, on two through its
/// own threading 210-270 (measured in the training step against its threading, alternating:
/// LSTM 1.04x, GRU 1.06x, tanh RNN at hidden 1024 1.00x).
fn product(
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    assert!(a.len() >= m * k && b.len() >= k * n);
    if k == 0 || m * n == 0 {
        return vec![0f32; m * n];
    }
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
    let parts = if m * n * k >= 1 << 18 {
        rayon::current_num_threads().min(m.div_ceil(MIN_BLOCK_ROWS))
    } else {
        1
    };
    let per = m.div_ceil(parts.max(1));
    let mut c: Vec<f32> = Vec::with_capacity(m * n);
    let block = |(q, out): (usize, &mut [MaybeUninit<f32>])| {
        // SAFETY: `a` and `b` hold the m x k and k x n matrices the strides describe (checked
        // above), and rows `q per ..` of `a` start `q per` rows in; `out` is the block's rows of
        // `c`, `out.len() / n` of them, and does not alias `a` or `b`.
        unsafe {
            gemm(
                out.len() / n,
                n,
                k,
                out.as_mut_ptr().cast::<f32>(),
                1,
                n as isize,
                false,
                a.as_ptr().offset((q * per) as isize * a_rs),
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
                Parallelism::None,
            );
        }
    };
    let spare = &mut c.spare_capacity_mut()[..m * n];
    if parts > 1 {
        spare.par_chunks_mut(per * n).enumerate().for_each(block);
    } else {
        block((0, spare));
    }
    // SAFETY: with `read_dst` false each block's GEMM wrote every value of its rows (k > 0), and
    // the blocks cover the m x n values.
    unsafe { c.set_len(m * n) };
    c
}

/// Fewest rows of a block of [`product`] on a thread of its own.
const MIN_BLOCK_ROWS: usize = 64;

/// A layer direction's input on the host.
#[derive(Clone, Copy, Debug)]
pub enum LayerInput<'a> {
    /// Features `x` `[T, B, I]` in time order: the input projection is `x W_ih^T`.
    Features(&'a [f32]),
    /// Token ids `[T, B]` in time order, each the one-hot vector `e_v` of a vocabulary of `V`:
    /// the projection of token `v` is column `v` of `W_ih` `[G*H, V]`, and the input has no
    /// gradient. A first layer over an embedding `E` `[V, I]` is this with `W_ih E^T`
    /// (`x_t W_ih^T = E[v] W_ih^T`).
    Tokens(&'a [usize]),
}

/// The inputs of a layer direction on the host: the input `x`, `w_ih` `[G*H, I]` (`I = V` for
/// tokens), `b_ih`, `b_hh` `[G*H]` (zeros for a layer without biases), `w_hh` `[G*H, H]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerInputs<'a> {
    /// The layer's input.
    pub x: LayerInput<'a>,
    /// `W_ih`, `[G*H, I]`.
    pub w_ih: &'a [f32],
    /// `b_ih`, `[G*H]`.
    pub b_ih: &'a [f32],
    /// `W_hh`, `[G*H, H]`.
    pub w_hh: &'a [f32],
    /// `b_hh`, `[G*H]`.
    pub b_hh: &'a [f32],
}

impl LayerInputs<'_> {
    /// `x W_ih^T` for every step, `[T*B, G*H]` (biases not added): one GEMM reading `W_ih`
    /// transposed, or dot products against its rows for one or two rows; for tokens, the rows
    /// of `W_ih^T` they select.
    fn project(&self) -> Vec<f32> {
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
    fn summed_bias(&self) -> Vec<f32> {
        self.b_ih
            .iter()
            .zip(self.b_hh)
            .map(|(a, b)| a + b)
            .collect()
    }

    /// `dL/dx = d W_ih` `[T*B, I]` from `d` `[T*B, G*H]`, the gradient of `x W_ih^T` (empty for
    /// tokens, which have no gradient).
    fn input_grad(&self, d: &[f32]) -> Vec<f32> {
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
    fn input_weight_grad(&self, d: &[f32]) -> Vec<f32> {
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

/// The gradient `d^T m` `[G*H, W]` of a weight from `d` `[R, G*H]`, the gradient of `m W^T`, and
/// `m` `[R, W]`: one GEMM over all steps, reading `d` transposed (each thread's block of rows of
/// the result is a block of columns of `d`; measured against transposing `d` first: LSTM at
/// hidden 1024, 32.5-38 against 38-44 ms for one product of the input weights, the transpose
/// alone 3.8-7.9 ms).
fn weight_grad(d: &[f32], m: &[f32], gh: usize) -> Vec<f32> {
    let rows = d.len() / gh;
    let width = m.len() / rows;
    product(d, true, m, false, (gh, width, rows))
}

/// The transpose `[cols, rows]` of a row-major `[rows, cols]` matrix, in 32 x 32 blocks, the
/// pool's threads taking 32 rows of the result at a time.
fn transpose(m: &[f32], cols: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    if m.is_empty() {
        return Vec::new();
    }
    let rows = m.len() / cols;
    let mut out: Vec<f32> = Vec::with_capacity(m.len());
    out.spare_capacity_mut()[..m.len()]
        .par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(block, out)| {
            let (c0, width) = (block * BLOCK, BLOCK.min(cols - block * BLOCK));
            for r0 in (0..rows).step_by(BLOCK) {
                for c in 0..width {
                    for r in r0..(r0 + BLOCK).min(rows) {
                        out[c * rows + r].write(m[r * cols + c0 + c]);
                    }
                }
            }
        });
    // SAFETY: the chunks cover the `cols x rows` values, and each value `(c, r)` of a chunk was
    // written above.
    unsafe { out.set_len(m.len()) };
    out
}

/// `sums += m` elementwise: a BPTT loop sums a bias gradient over time for each batch row, step
/// by step while the step's gradient is in the cache.
fn accumulate(sums: &mut [f32], m: &[f32]) {
    for (s, v) in sums.iter_mut().zip(m) {
        *s += v;
    }
}

/// The column sums of the row-major `[B, width]` `per_row` (each batch row's sum over time of a
/// bias gradient), in row order: the same whichever threads summed the rows.
fn total(per_row: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0f32; width];
    for row in per_row.chunks(width) {
        accumulate(&mut sums, row);
    }
    sums
}

/// Values a thread copies at a time in [`concat_padded`] (64 KB).
const COPY_BLOCK: usize = 1 << 14;

/// The slices `parts` one after the other, then zeros up to `len` values in all, copied into a
/// buffer that is not zeroed first: on the pool's threads for more than one [`COPY_BLOCK`], on the
/// calling thread otherwise (handing a batch-1 step's few hundred values to the pool cost more
/// than copying them: 10-15% of the LSTM's streaming generation, measured).
///
/// # Panics
/// If the parts hold more than `len` values.
pub(super) fn concat_padded(parts: &[&[f32]], len: usize) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let mut rest = &mut out.spare_capacity_mut()[..len];
    let mut blocks = Vec::new();
    for part in parts {
        let (dst, tail) = std::mem::take(&mut rest).split_at_mut(part.len());
        let copies = dst.chunks_mut(COPY_BLOCK).zip(part.chunks(COPY_BLOCK));
        blocks.extend(copies.map(|(d, s)| (d, Some(s))));
        rest = tail;
    }
    blocks.extend(rest.chunks_mut(COPY_BLOCK).map(|d| (d, None)));
    let fill = |(d, s): (&mut [MaybeUninit<f32>], Option<&[f32]>)| match s {
        Some(s) => {
            d.write_copy_of_slice(s);
        }
        None => d.fill(MaybeUninit::new(0.0)),
    };
    if len > COPY_BLOCK {
        blocks.into_par_iter().for_each(fill);
    } else {
        blocks.into_iter().for_each(fill);
    }
    // SAFETY: the blocks cover the `len` values (the parts, then the rest), each written above.
    unsafe { out.set_len(len) };
    out
}

/// Rows `[a_r | b_r]` from the rows of `a` `[R, wa]` and `b` `[R, wb]`, copied on the pool's
/// threads into a buffer that is not zeroed first.
pub(super) fn join_rows(a: &[f32], wa: usize, b: &[f32], wb: usize) -> Vec<f32> {
    let len = a.len() + b.len();
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(wa + wb)
        .zip(a.par_chunks(wa).zip(b.par_chunks(wb)))
        .with_min_len(64)
        .for_each(|(o, (a, b))| {
            o[..wa].write_copy_of_slice(a);
            o[wa..].write_copy_of_slice(b);
        });
    // SAFETY: `a` and `b` have as many rows (`len / (wa + wb)`), so the chunks cover the `len`
    // values, and every value of each chunk was written above.
    unsafe { out.set_len(len) };
    out
}

/// The inverse of [`join_rows`]: the first `wa` and the last `m`'s width minus `wa` columns of
/// the rows of `m`, as two row-major matrices (buffers not zeroed first).
pub(super) fn split_rows(m: &[f32], width: usize, wa: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = m.len() / width;
    let wb = width - wa;
    let (mut a, mut b) = (Vec::with_capacity(rows * wa), Vec::with_capacity(rows * wb));
    m.par_chunks(width)
        .zip(
            a.spare_capacity_mut()[..rows * wa]
                .par_chunks_mut(wa)
                .zip(b.spare_capacity_mut()[..rows * wb].par_chunks_mut(wb)),
        )
        .with_min_len(64)
        .for_each(|(m, (a, b))| {
            a.write_copy_of_slice(&m[..wa]);
            b.write_copy_of_slice(&m[wa..]);
        });
    // SAFETY: each of the `rows` rows of `m` wrote one `wa`-wide row of `a` and one `wb`-wide row
    // of `b` above, so both hold all their values.
    unsafe {
        a.set_len(rows * wa);
        b.set_len(rows * wb);
    }
    (a, b)
}

/// The gradients of a layer direction's inputs ([`LayerInputs`] and the initial state).
pub struct LayerGrads {
    /// `dL/dx`, `[T, B, I]`.
    pub x: Vec<f32>,
    /// `dL/dW_ih`, `[G*H, I]`.
    pub w_ih: Vec<f32>,
    /// `dL/db_ih`, `[G*H]`.
    pub b_ih: Vec<f32>,
    /// `dL/dW_hh`, `[G*H, H]`.
    pub w_hh: Vec<f32>,
    /// `dL/db_hh`, `[G*H]`.
    pub b_hh: Vec<f32>,
    /// `dL/dh_0`, `[B, H]`.
    pub h0: Vec<f32>,
    /// `dL/dc_0` (LSTM), `[B, H]`; empty otherwise.
    pub c0: Vec<f32>,
}

impl LayerGrads {
    /// When one gradient `d` `[T*B, G*H]` flows into both products (LSTM, RNN: the pre-activation
    /// is `x W_ih^T + b_ih + h W_hh^T + b_hh`): `dW_ih` and `dW_hh` come from one GEMM
    /// `d^T [x | h_prev]` (`[G*H x (I+H)]`, measured 4.4 ms where the two `[G*H x I]` and
    /// `[G*H x H]` products took 6.5 at the reference shape) up to [`MAX_JOINED_GRAD`], from two
    /// beyond, and both biases get the same gradient `bias`, the column sums of `d` (summed by the
    /// BPTT loop).
    fn shared(
        inputs: &LayerInputs<'_>,
        (d, bias): (&[f32], Vec<f32>),
        h_prev: &[f32],
        initial: (Vec<f32>, Vec<f32>),
    ) -> Self {
        let gh = inputs.b_ih.len();
        let width = inputs.w_ih.len() / gh + inputs.w_hh.len() / gh;
        Self::shared_with(
            inputs,
            (d, bias),
            h_prev,
            initial,
            gh * width <= MAX_JOINED_GRAD,
        )
    }

    /// [`Self::shared`], the weight gradients from one GEMM if `joined`, else from two.
    fn shared_with(
        inputs: &LayerInputs<'_>,
        (d, bias): (&[f32], Vec<f32>),
        h_prev: &[f32],
        (h0, c0): (Vec<f32>, Vec<f32>),
        joined: bool,
    ) -> Self {
        let gh = inputs.b_ih.len();
        let (width, h) = (inputs.w_ih.len() / gh, inputs.w_hh.len() / gh);
        let (w_ih, w_hh) = match inputs.x {
            LayerInput::Features(x) if joined => {
                let dw = weight_grad(d, &join_rows(x, width, h_prev, h), gh);
                split_rows(&dw, width + h, width)
            }
            LayerInput::Features(x) => (weight_grad(d, x, gh), weight_grad(d, h_prev, gh)),
            LayerInput::Tokens(_) => (inputs.input_weight_grad(d), weight_grad(d, h_prev, gh)),
        };
        Self {
            x: inputs.input_grad(d),
            w_ih,
            b_ih: bias.clone(),
            w_hh,
            b_hh: bias,
            h0,
            c0,
        }
    }

    /// From `d_x_proj`, the gradient of `x W_ih^T + b_ih`, and `d_proj`, the gradient of
    /// `h W_hh^T + b_hh` (per step, `[T*B, G*H]`), each with its column sums (the bias gradients,
    /// summed by the BPTT loop), and `h_prev` `[T*B, H]` the states the latter was computed from:
    /// `dW_hh = d_proj^T h_prev` in one GEMM.
    fn new(
        inputs: &LayerInputs<'_>,
        (d_x_proj, b_ih): (&[f32], Vec<f32>),
        (d_proj, b_hh): (&[f32], Vec<f32>),
        h_prev: &[f32],
        (h0, c0): (Vec<f32>, Vec<f32>),
    ) -> Self {
        let gh = inputs.b_hh.len();
        Self {
            x: inputs.input_grad(d_x_proj),
            w_ih: inputs.input_weight_grad(d_x_proj),
            b_ih,
            w_hh: weight_grad(d_proj, h_prev, gh),
            b_hh,
            h0,
            c0,
        }
    }
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
    /// The order the states were computed in (and in which [`Self::hidden`] keeps them).
    pub direction: Direction,
}

impl LstmTrace {
    /// The op's output `[T + 1, B, H]`: the outputs `h_t` in time order, then the final cell
    /// state.
    pub fn output(&self, steps: usize, bh: usize) -> Vec<f32> {
        let outputs = self.direction.outputs(&self.hidden, bh);
        let cell = &self.cell[self.direction.last_slot(steps) * bh..][..bh];
        concat_padded(&[outputs, cell], outputs.len() + bh)
    }
}

/// Runs an LSTM layer direction on `inputs` from `h0`, `c0` `[B, H]`.
pub fn lstm_sequence_forward(
    inputs: &LayerInputs<'_>,
    h0: &[f32],
    c0: &[f32],
    (steps, batch, h): (usize, usize, usize),
    direction: Direction,
) -> LstmTrace {
    let (g4, bh) = (4 * h, batch * h);
    // gates += h_t W_hh^T: W_hh^T [H, 4H] packed once (or read in place for a tiny batch).
    let w = Weights::new(inputs.w_hh, (g4, h), batch);
    // The gates start as x W_ih^T; each step adds both biases and the recurrent product.
    let mut gates = inputs.project();
    let bias = inputs.summed_bias();
    let mut hidden = vec![0f32; (steps + 1) * bh];
    let mut cell = vec![0f32; (steps + 1) * bh];
    let first = direction.first_slot(steps) * bh;
    hidden[first..][..bh].copy_from_slice(h0);
    cell[first..][..bh].copy_from_slice(c0);
    let parts = row_parts(batch, steps * bh * g4);
    let work: Vec<_> = slabs(&mut gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(slabs(&mut cell, h, batch, &parts))
        .collect();
    in_parallel(work, |((mut gs, mut hs), mut cs)| {
        for t in direction.times(steps) {
            let g = &mut *gs[t];
            let (h_prev, h_next) = step_states(&mut hs, direction.slots(t));
            w.multiply_bias(h_prev, g, true, &bias);
            let (c_prev, c_next) = step_states(&mut cs, direction.slots(t));
            lstm_forward_keep(g, c_prev, h, h_next, c_next);
        }
    });
    LstmTrace {
        gates,
        hidden,
        cell,
        direction,
    }
}

/// `out = a + b` elementwise (BPTT: `dL/dh_t` is the output's gradient plus what came back from
/// step `t + 1`).
fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// Adds `v` to every row of the row-major `m`.
fn add_rows(m: &mut [f32], v: &[f32]) {
    for row in m.chunks_mut(v.len()) {
        for (o, b) in row.iter_mut().zip(v) {
            *o += b;
        }
    }
}

/// BPTT through the trace, which it consumes (the gradients of the gates overwrite the gates).
/// `d_hidden` `[T, B, H]` is `dL/dh_1..h_T` from the outputs, `d_cell` `[B, H]` is `dL/dc_T`.
pub fn lstm_sequence_backward(
    trace: LstmTrace,
    inputs: &LayerInputs<'_>,
    d_hidden: &[f32],
    d_cell: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LayerGrads {
    let (g4, bh) = (4 * h, batch * h);
    // dh_{t-1} = dG_t W_hh: W_hh [4H, H] packed once.
    let w = PackedMatrix::pack(inputs.w_hh, (g4, h), false);
    let LstmTrace {
        gates: mut d_gates,
        hidden,
        cell,
        direction,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let mut dc_next = d_cell.to_vec();
    let parts = row_parts(batch, steps * bh * g4);
    // Each batch row's sum over time of its gate gradients (for the bias gradient).
    let mut sums = vec![0f32; batch * g4];
    let work: Vec<_> = slabs(&mut d_gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(slabs(&mut dc_next, h, batch, &parts))
        .zip(
            parts
                .iter()
                .cloned()
                .zip(slabs(&mut sums, g4, batch, &parts)),
        )
        .collect();
    in_parallel(
        work,
        |(((mut dgs, mut dh_next), mut dc_next), (rows, mut sums))| {
            let (dh_next, dc_next) = (&mut *dh_next[0], &mut *dc_next[0]);
            let (mut dh, mut dc_prev) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
            for t in direction.times(steps).rev() {
                add(&mut dh, rows_of(d_hidden, t, &rows, h, batch), dh_next);
                let dg = &mut *dgs[t];
                let (from, to) = direction.slots(t);
                let c_prev = rows_of(&cell, from, &rows, h, batch);
                let c = rows_of(&cell, to, &rows, h, batch);
                lstm_backward_in_place(dg, c_prev, c, &dh, dc_next, h, &mut dc_prev);
                accumulate(sums[0], dg);
                w.multiply(dg, dh_next, false);
                dc_next.copy_from_slice(&dc_prev);
            }
        },
    );
    // The gates are x W_ih^T + b_ih + h W_hh^T + b_hh: one gradient for both products.
    let h_prev = direction.entering(&hidden, bh);
    let bias = total(&sums, g4);
    LayerGrads::shared(inputs, (&d_gates, bias), h_prev, (dh_next, dc_next))
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
    /// The order the states were computed in (and in which [`Self::hidden`] keeps them).
    pub direction: Direction,
}

impl GatedTrace {
    /// The op's output: the outputs `h_t` in time order, `[T, B, H]`.
    pub fn output(&self, bh: usize) -> Vec<f32> {
        let outputs = self.direction.outputs(&self.hidden, bh);
        concat_padded(&[outputs], outputs.len())
    }
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

/// Runs a GRU or tanh-RNN layer direction on `inputs` from `h0` `[B, H]`.
pub fn gated_sequence_forward(
    cell: SequenceCell,
    inputs: &LayerInputs<'_>,
    h0: &[f32],
    (steps, batch, h): (usize, usize, usize),
    direction: Direction,
) -> GatedTrace {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // P_t = h_t W_hh^T + b_hh: W_hh^T [H, G*H] packed once (or read in place for a tiny batch).
    let w = Weights::new(inputs.w_hh, (gh, h), batch);
    // The RNN's pre-activation x W_ih^T + b_ih + P_t builds up in place in the projection; the
    // GRU keeps x W_ih^T + b_ih and P_t apart (its reset gate multiplies P_t's last block only).
    let (mut projected, mut x_proj, mut acts, bias) = match cell {
        SequenceCell::Gru => {
            let n = steps * batch * gh;
            let (p, a) = (vec![0f32; n], vec![0f32; n]);
            (p, inputs.project(), a, inputs.b_hh.to_vec())
        }
        SequenceCell::RnnTanh => (
            inputs.project(),
            Vec::new(),
            Vec::new(),
            inputs.summed_bias(),
        ),
    };
    let mut hidden = vec![0f32; (steps + 1) * bh];
    hidden[direction.first_slot(steps) * bh..][..bh].copy_from_slice(h0);
    let parts = row_parts(batch, steps * bh * gh);
    // The GRU's x and activation slabs (none for the RNN).
    let mut gru_parts: Vec<_> = slabs(&mut x_proj, gh, batch, &parts)
        .into_iter()
        .zip(slabs(&mut acts, gh, batch, &parts))
        .collect();
    gru_parts.resize_with(parts.len(), Default::default);
    let work: Vec<_> = slabs(&mut projected, gh, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(gru_parts)
        .collect();
    in_parallel(work, |((mut ps, mut hs), (mut xs, mut acts))| {
        for t in direction.times(steps) {
            let p = &mut *ps[t];
            let (prev, next) = step_states(&mut hs, direction.slots(t));
            match cell {
                SequenceCell::Gru => {
                    add_rows(xs[t], inputs.b_ih);
                    w.multiply_bias(prev, p, false, &bias);
                }
                SequenceCell::RnnTanh => w.multiply_bias(prev, p, true, &bias),
            }
            match cell {
                SequenceCell::Gru => gru_forward_keep(xs[t], p, prev, h, next, acts[t]),
                SequenceCell::RnnTanh => tanh_forward(p, next),
            }
        }
    });
    GatedTrace {
        projected,
        acts,
        hidden,
        direction,
    }
}

/// BPTT through a GRU or tanh-RNN trace, which it consumes (gradients overwrite the activations
/// and projections); `d_hidden` `[T, B, H]` is `dL/dh_1..h_T`.
pub fn gated_sequence_backward(
    cell: SequenceCell,
    trace: GatedTrace,
    inputs: &LayerInputs<'_>,
    d_hidden: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LayerGrads {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // dh_{t-1} = dP_t W_hh (+ the GRU's direct path): W_hh [G*H, H] packed once.
    let w = PackedMatrix::pack(inputs.w_hh, (gh, h), false);
    let GatedTrace {
        projected: mut d_proj,
        acts: mut d_x,
        hidden,
        direction,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let parts = row_parts(batch, steps * bh * gh);
    let mut dx_parts = slabs(&mut d_x, gh, batch, &parts);
    dx_parts.resize_with(parts.len(), Vec::new);
    // Each batch row's sums over time of `dP` and (GRU) of `dX` (for the bias gradients).
    let (mut p_sums, mut x_sums) = (vec![0f32; batch * gh], vec![0f32; batch * gh]);
    let sum_parts = slabs(&mut p_sums, gh, batch, &parts).into_iter().zip(slabs(
        &mut x_sums,
        gh,
        batch,
        &parts,
    ));
    let work: Vec<_> = dx_parts
        .into_iter()
        .zip(slabs(&mut d_proj, gh, batch, &parts))
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(parts.iter().cloned().zip(sum_parts))
        .collect();
    in_parallel(
        work,
        |(((mut dxs, mut dps), mut dh_next), (rows, (mut p_sums, mut x_sums)))| {
            let dh_next = &mut *dh_next[0];
            // `g` = dL/dh_t; `direct` = its part that reaches h_{t-1} without W_hh (GRU's z h_{t-1}).
            let (mut g, mut direct) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
            for t in direction.times(steps).rev() {
                add(&mut g, rows_of(d_hidden, t, &rows, h, batch), dh_next);
                let dp = &mut *dps[t];
                let (from, to) = direction.slots(t);
                match cell {
                    SequenceCell::Gru => {
                        let prev = rows_of(&hidden, from, &rows, h, batch);
                        gru_backward_in_place(dxs[t], dp, prev, &g, h, &mut direct);
                        accumulate(x_sums[0], dxs[t]);
                        dh_next.copy_from_slice(&direct);
                        w.multiply(dp, dh_next, true);
                    }
                    SequenceCell::RnnTanh => {
                        let y = rows_of(&hidden, to, &rows, h, batch);
                        tanh_backward(y, &g, dp);
                        w.multiply(dp, dh_next, false);
                    }
                }
                accumulate(p_sums[0], dp);
            }
        },
    );
    let h_prev = direction.entering(&hidden, bh);
    match cell {
        SequenceCell::Gru => LayerGrads::new(
            inputs,
            (&d_x, total(&x_sums, gh)),
            (&d_proj, total(&p_sums, gh)),
            h_prev,
            (dh_next, Vec::new()),
        ),
        // The RNN's pre-activation is x W_ih^T + b_ih + P_t: one gradient for both products.
        SequenceCell::RnnTanh => LayerGrads::shared(
            inputs,
            (&d_proj, total(&p_sums, gh)),
            h_prev,
            (dh_next, Vec::new()),
        ),
    }
}

/// A cell whose layer directions run as one op: the LSTM, or a GRU (reset after) / tanh RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedCell {
    /// LSTM (its state has a cell vector).
    Lstm,
    /// GRU or tanh RNN.
    Gated(SequenceCell),
}

/// A layer direction's forward pass, kept for its backward.
#[derive(Clone, Debug)]
pub enum Trace {
    /// Of an LSTM.
    Lstm(LstmTrace),
    /// Of a GRU or tanh RNN.
    Gated(SequenceCell, GatedTrace),
}

impl FusedCell {
    /// Runs a layer direction on `inputs` from `h0` and (LSTM; ignored otherwise) `c0` `[B, H]`.
    pub fn forward(
        self,
        inputs: &LayerInputs<'_>,
        (h0, c0): (&[f32], &[f32]),
        dims: (usize, usize, usize),
        direction: Direction,
    ) -> Trace {
        match self {
            FusedCell::Lstm => Trace::Lstm(lstm_sequence_forward(inputs, h0, c0, dims, direction)),
            FusedCell::Gated(cell) => Trace::Gated(
                cell,
                gated_sequence_forward(cell, inputs, h0, dims, direction),
            ),
        }
    }
}

impl Trace {
    /// The direction's output: `h_t` in time order `[T, B, H]`, then (LSTM) the final cell state
    /// `[B, H]`.
    pub fn output(&self, (steps, batch, h): (usize, usize, usize)) -> Vec<f32> {
        match self {
            Trace::Lstm(trace) => trace.output(steps, batch * h),
            Trace::Gated(_, trace) => trace.output(batch * h),
        }
    }

    /// BPTT from `grad`, the gradient of [`Self::output`].
    pub fn backward(
        self,
        inputs: &LayerInputs<'_>,
        grad: &[f32],
        dims: (usize, usize, usize),
    ) -> LayerGrads {
        let (steps, batch, h) = dims;
        let (d_hidden, d_cell) = grad.split_at(steps * batch * h);
        match self {
            Trace::Lstm(trace) => lstm_sequence_backward(trace, inputs, d_hidden, d_cell, dims),
            Trace::Gated(cell, trace) => {
                gated_sequence_backward(cell, trace, inputs, d_hidden, dims)
            }
        }
    }
}

/// Runs `a` and `b`, the two directions of a bidirectional layer over a batch of `batch` rows, at
/// the same time on the pool (each still splitting its batch rows when it is large enough: a
/// batch too small to split keeps one core busy per direction), or one after the other when the
/// batch is small enough for their products to read the weights in place and split those
/// between the threads ([`DIRECT_MAX_ROWS`]).
pub fn both<A: Send, B: Send>(
    batch: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if batch <= DIRECT_MAX_ROWS {
        (a(), b())
    } else {
        in_pool(|| rayon::join(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::check_gradients;
    use super::*;

    #[test]
    fn product_handles_the_transpositions() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
        for (a_t, b_t, want) in [
            (false, false, [19.0, 22.0, 43.0, 50.0]),
            (true, false, [26.0, 30.0, 38.0, 44.0]),
            (false, true, [17.0, 23.0, 39.0, 53.0]),
            (true, true, [23.0, 31.0, 34.0, 46.0]),
        ] {
            assert_eq!(product(&a, a_t, &b, b_t, (2, 2, 2)), want, "{a_t} {b_t}");
        }
        // A product over an empty inner dimension is all zeros.
        assert_eq!(product(&[], false, &[], false, (3, 3, 0)), [0.0; 9]);
    }

    /// A product large enough to run as row blocks on several threads (in a pool of three, so
    /// that the blocks are uneven) is the f64 product, for each layout of the operands.
    #[test]
    fn product_in_row_blocks_matches_the_reference() {
        let (m, n, k) = (150, 40, 50);
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let at = |i: usize, q: usize| a[i * k + q] as f64;
        let bt = |q: usize, j: usize| b[q * n + j] as f64;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            // The operands as `product` reads them: transposed copies where asked.
            let a_in = if a_t { transpose(&a, k) } else { a.clone() };
            let b_in = if b_t { transpose(&b, n) } else { b.clone() };
            let c = pool.install(|| product(&a_in, a_t, &b_in, b_t, (m, n, k)));
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|q| at(i, q) * bt(q, j)).sum();
                    let got = c[i * n + j] as f64;
                    assert!((got - want).abs() < 1e-4, "{a_t} {b_t} ({i}, {j})");
                }
            }
        }
    }

    /// Deterministic test values in [-0.75, 0.75].
    fn values(n: usize, s: usize) -> Vec<f32> {
        (0..n)
            .map(|k| (((k * s) % 13) as f32 - 6.0) / 8.0)
            .collect()
    }

    /// `[x, w_ih, b_ih, w_hh, b_hh]` of a layer with `gates` gate blocks and input width `i`.
    fn layer((t, b, i, h): (usize, usize, usize, usize), gates: usize) -> Vec<Vec<f32>> {
        let gh = gates * h;
        vec![
            values(t * b * i, 7),
            values(gh * i, 5),
            values(gh, 3),
            values(gh * h, 12),
            values(gh, 8),
        ]
    }

    fn inputs(v: &[Vec<f32>]) -> LayerInputs<'_> {
        LayerInputs {
            x: LayerInput::Features(&v[0]),
            w_ih: &v[1],
            b_ih: &v[2],
            w_hh: &v[3],
            b_hh: &v[4],
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum()
    }

    const DIRECTIONS: [Direction; 2] = [Direction::Forward, Direction::Reverse];

    #[test]
    fn lstm_backward_matches_central_differences() {
        let (t, b, i, h) = (3, 2, 3, 2);
        let mut args = layer((t, b, i, h), 4);
        args.extend([values(b * h, 11), values(b * h, 2)]);
        // Weights of the outputs h_1 .. h_T and of the final c.
        let wd = values((t + 1) * b * h, 9);
        for dir in DIRECTIONS {
            let loss = |a: &[Vec<f32>]| {
                let tr = lstm_sequence_forward(&inputs(a), &a[5], &a[6], (t, b, h), dir);
                dot(&tr.output(t, b * h), &wd)
            };
            let trace = lstm_sequence_forward(&inputs(&args), &args[5], &args[6], (t, b, h), dir);
            let (d_hidden, d_cell) = wd.split_at(t * b * h);
            let g = lstm_sequence_backward(trace, &inputs(&args), d_hidden, d_cell, (t, b, h));
            let grads = [&g.x, &g.w_ih, &g.b_ih, &g.w_hh, &g.b_hh, &g.h0, &g.c0];
            check_gradients(&args, &grads, loss, 3e-3);
        }
    }

    #[test]
    fn gated_backward_matches_central_differences() {
        let (t, b, i, h) = (3, 2, 3, 2);
        for (cell, dir) in [SequenceCell::Gru, SequenceCell::RnnTanh]
            .into_iter()
            .flat_map(|c| DIRECTIONS.map(|d| (c, d)))
        {
            let mut args = layer((t, b, i, h), cell.gates());
            args.push(values(b * h, 11));
            let wd = values(t * b * h, 9);
            let loss = |a: &[Vec<f32>]| {
                let tr = gated_sequence_forward(cell, &inputs(a), &a[5], (t, b, h), dir);
                dot(&tr.output(b * h), &wd)
            };
            let trace = gated_sequence_forward(cell, &inputs(&args), &args[5], (t, b, h), dir);
            let g = gated_sequence_backward(cell, trace, &inputs(&args), &wd, (t, b, h));
            let grads = [&g.x, &g.w_ih, &g.b_ih, &g.w_hh, &g.b_hh, &g.h0];
            check_gradients(&args, &grads, loss, 3e-3);
        }
    }

    /// `[T, B*w]` with its `T` slabs in the opposite order.
    fn flip(m: &[f32], steps: usize) -> Vec<f32> {
        let slab = m.len() / steps;
        m.chunks(slab).rev().flatten().copied().collect()
    }

    #[test]
    fn reverse_direction_is_the_forward_one_over_the_flipped_input() {
        let (t, b, i, h) = (5, 3, 4, 3);
        let bh = b * h;
        for cell in [None, Some(SequenceCell::Gru), Some(SequenceCell::RnnTanh)] {
            let gates = cell.map_or(4, |c| c.gates());
            let args = layer((t, b, i, h), gates);
            let mut flipped = args.clone();
            flipped[0] = flip(&args[0], t);
            let (h0, c0) = (values(bh, 11), values(bh, 2));
            // Outputs (and the LSTM's final c) of a run; `flip_outputs` puts them in the
            // reverse run's time order.
            let run = |a: &[Vec<f32>], dir, flip_outputs: bool| {
                let (mut out, tail) = match cell {
                    None => {
                        let tr = lstm_sequence_forward(&inputs(a), &h0, &c0, (t, b, h), dir);
                        let mut out = tr.output(t, bh);
                        let c = out.split_off(t * bh);
                        (out, c)
                    }
                    Some(c) => {
                        let tr = gated_sequence_forward(c, &inputs(a), &h0, (t, b, h), dir);
                        (tr.output(bh), Vec::new())
                    }
                };
                if flip_outputs {
                    out = flip(&out, t);
                }
                out.extend(tail);
                out
            };
            let reverse = run(&args, Direction::Reverse, false);
            assert_eq!(reverse, run(&flipped, Direction::Forward, true), "{cell:?}");
        }
    }

    #[test]
    fn token_inputs_are_one_hot_features() {
        // Every cell and direction, split between threads (T B H G*H >= MIN_PARALLEL_WORK).
        let (t, b, v, h) = (4, 9, 5, 160);
        let ids: Vec<usize> = (0..t * b).map(|r| (r * 7 + r / 3) % v).collect();
        let onehot: Vec<f32> = ids
            .iter()
            .flat_map(|&id| (0..v).map(move |k| f32::from(u8::from(k == id))))
            .collect();
        let (h0, c0, d_hidden) = (values(b * h, 11), values(b * h, 2), values(t * b * h, 9));
        let close = |a: &[f32], b: &[f32]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
        };
        for dir in DIRECTIONS {
            for cell in [
                FusedCell::Lstm,
                FusedCell::Gated(SequenceCell::Gru),
                FusedCell::Gated(SequenceCell::RnnTanh),
            ] {
                let gates = match cell {
                    FusedCell::Lstm => 4,
                    FusedCell::Gated(c) => c.gates(),
                };
                let args = layer((t, b, v, h), gates);
                let run = |x: LayerInput<'_>| {
                    let inputs = LayerInputs { x, ..inputs(&args) };
                    let trace = cell.forward(&inputs, (&h0, &c0), (t, b, h), dir);
                    let out = trace.output((t, b, h));
                    let grad = [&d_hidden[..], &c0].concat();
                    (out, trace.backward(&inputs, &grad, (t, b, h)))
                };
                let (out, g) = run(LayerInput::Tokens(&ids));
                let (want, w) = run(LayerInput::Features(&onehot));
                assert!(close(&out, &want), "{cell:?} {dir:?} outputs");
                assert!(g.x.is_empty(), "tokens have no gradient");
                for (name, a, b) in [
                    ("w_ih", &g.w_ih, &w.w_ih),
                    ("b_ih", &g.b_ih, &w.b_ih),
                    ("w_hh", &g.w_hh, &w.w_hh),
                    ("b_hh", &g.b_hh, &w.b_hh),
                    ("h0", &g.h0, &w.h0),
                    ("c0", &g.c0, &w.c0),
                ] {
                    assert!(close(a, b), "{cell:?} {dir:?} {name}");
                }
            }
        }
    }

    #[test]
    fn concat_padded_joins_the_parts_then_zeros() {
        // Several copy blocks (copied on the pool's threads), and one.
        for n in [3 * COPY_BLOCK + 5, 7] {
            let (a, b) = (values(n, 1), values(n / 2 + 1, 2));
            let out = concat_padded(&[&a, &b], 2 * n);
            assert_eq!(&out[..n], &a[..]);
            assert_eq!(&out[n..][..b.len()], &b[..]);
            assert!(out[n + b.len()..].iter().all(|v| *v == 0.0));
            assert_eq!(out.len(), 2 * n);
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        for (rows, cols) in [(1, 1), (3, 5), (33, 70), (64, 32)] {
            let m = values(rows * cols, 3);
            let t = transpose(&m, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], m[r * cols + c]);
                }
            }
        }
    }

    #[test]
    fn weight_gradients_joined_or_apart_agree() {
        let (t, b, i, h) = (3, 5, 7, 6);
        let args = layer((t, b, i, h), 4);
        let (d, h_prev) = (values(t * b * 4 * h, 9), values(t * b * h, 4));
        let initial = || (Vec::new(), Vec::new());
        let grads = |joined| {
            let d = (&d[..], Vec::new());
            LayerGrads::shared_with(&inputs(&args), d, &h_prev, initial(), joined)
        };
        let (one, two) = (grads(true), grads(false));
        for (a, b) in [(&one.w_ih, &two.w_ih), (&one.w_hh, &two.w_hh)] {
            assert_eq!(a.len(), b.len());
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5));
        }
        // dW_hh = d^T h_prev, entry (0, 0) by hand.
        let want: f32 = (0..t * b).map(|r| d[r * 4 * h] * h_prev[r * h]).sum();
        assert!((one.w_hh[0] - want).abs() < 1e-5);
    }

    #[test]
    fn splitting_the_batch_between_threads_changes_nothing() {
        // Large enough to split for every cell (T B H G*H >= MIN_PARALLEL_WORK), B not a multiple
        // of the parts.
        let (t, b, i, h) = (4, 13, 5, 160);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| {
                assert_eq!(row_parts(b, t * b * h * h).len(), threads);
                let h0 = values(b * h, 11);
                let mut all = Vec::new();
                for dir in DIRECTIONS {
                    let args = layer((t, b, i, h), 4);
                    let trace = lstm_sequence_forward(&inputs(&args), &h0, &h0, (t, b, h), dir);
                    all.extend([trace.hidden.clone(), trace.cell.clone()]);
                    let d_hidden = values(t * b * h, 9);
                    let g =
                        lstm_sequence_backward(trace, &inputs(&args), &d_hidden, &h0, (t, b, h));
                    all.extend([g.x, g.w_ih, g.b_ih, g.w_hh, g.b_hh, g.h0, g.c0]);
                    for cell in [SequenceCell::Gru, SequenceCell::RnnTanh] {
                        let args = layer((t, b, i, h), cell.gates());
                        let trace =
                            gated_sequence_forward(cell, &inputs(&args), &h0, (t, b, h), dir);
                        all.push(trace.hidden.clone());
                        let g = gated_sequence_backward(
                            cell,
                            trace,
                            &inputs(&args),
                            &d_hidden,
                            (t, b, h),
                        );
                        all.extend([g.x, g.w_ih, g.b_ih, g.w_hh, g.b_hh, g.h0]);
                    }
                }
                all
            })
        };
        // Each row's arithmetic is the same whichever thread runs it: equal bit for bit.
        assert_eq!(run(1), run(3));
    }
}
