//! The matrix products of the sequence ops: products over all steps as one GEMM in row blocks
//! ([`product`]), and the recurrent weights in the form that suits one step's product
//! ([`Weights`]).

use std::mem::MaybeUninit;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::buffers::add_rows;
use crate::recurrent::fused::direct::DirectMatrix;
use crate::recurrent::fused::packed::PackedMatrix;

/// Most rows a product takes as dot products against the stored weights ([`DirectMatrix`])
/// instead of packing them first ([`PackedMatrix`], whose tiles take 8 rows at a time).
pub(crate) const DIRECT_MAX_ROWS: usize = 2;

/// A layer's weights `W` `[n, k]` as the right-hand side of `a W^T`, in the form that suits
/// products of `rows` rows at a time: packed once, or read where they are.
pub(super) enum Weights<'a> {
    Packed(PackedMatrix),
    Direct(DirectMatrix<'a>),
}

impl<'a> Weights<'a> {
    pub(super) fn new(w: &'a [f32], (n, k): (usize, usize), rows: usize) -> Self {
        if rows <= DIRECT_MAX_ROWS {
            Weights::Direct(DirectMatrix::new(w, (n, k)))
        } else {
            Weights::Packed(PackedMatrix::pack(w, (k, n), true))
        }
    }

    /// `c (+)= a W^T + bias` (`bias` on every row). The packed product runs on the calling
    /// thread (the time loops split the batch rows between the threads) and adds the bias as it
    /// stores its tiles; the direct one splits the weight rows.
    pub(super) fn multiply_bias(&self, a: &[f32], c: &mut [f32], accumulate: bool, bias: &[f32]) {
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

/// `a * b`, row-major `[m, n]`; `a` is `[m, k]` (or `[k, m]` read transposed when `a_t`), `b` is
/// `[k, n]` (or `[n, k]` read transposed when `b_t`). The GEMM writes every value of a buffer that
/// is not zeroed first (zeroing megabytes that are then overwritten took 3-6% of a training step
/// in `memset` and page faults).
///
/// A large product runs as one block of rows a thread, each a single-threaded `gemm` call: on one
/// thread the `gemm` crate reaches 161-168 GFLOP/s at the reference shapes, on two through its
/// own threading 210-270 (measured in the training step against its threading, alternating:
/// LSTM 1.04x, GRU 1.06x, tanh RNN at hidden 1024 1.00x).
pub(super) fn product(
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

/// The gradient `d^T m` `[G*H, W]` of a weight from `d` `[R, G*H]`, the gradient of `m W^T`, and
/// `m` `[R, W]`: one GEMM over all steps, reading `d` transposed (each thread's block of rows of
/// the result is a block of columns of `d`; measured against transposing `d` first: LSTM at
/// hidden 1024, 32.5-38 against 38-44 ms for one product of the input weights, the transpose
/// alone 3.8-7.9 ms).
pub(super) fn weight_grad(d: &[f32], m: &[f32], gh: usize) -> Vec<f32> {
    let rows = d.len() / gh;
    let width = m.len() / rows;
    product(d, true, m, false, (gh, width, rows))
}
