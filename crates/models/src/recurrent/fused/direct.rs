//! `C (+)= A W^T` for a few rows `A` (`[m, k]`, `m` small: batch-1 streaming, a step of a tiny
//! batch) with the weights `W` `[n, k]` read where they are stored, as dot products: packing
//! `W` ([`super::packed::PackedMatrix`]) pays off only over many rows, and for one row the
//! product is a matrix-vector product bound by how fast `W` streams from the caches.
//!
//! The rows of `W` are split in fixed contiguous parts between the calling thread and the
//! helpers of [`team`], each part always on the same helper: called again and again with the
//! same weights (one call per generated token), each core reads the same part each time, which
//! then stays in that core's L2 (a GRU's two 256-wide layers hold 3.1 MB of weights, more than
//! one core's 2 MB L2, about half of it a core).

use std::ops::Range;

use super::sequence::slabs;
use super::team;
use crate::host::math::multiversion;

/// Values a dot product takes at a time: one AVX-512 register of f32.
const LANES: usize = 16;

/// Weight rows whose dot products run together (independent accumulators hide the add latency).
const BLOCK: usize = 4;

/// Fewest multiply-adds of one product worth splitting between threads.
const MIN_SPLIT_WORK: usize = 1 << 16;

/// A `[n, k]` weight matrix applied as `a W^T` by dot products against its rows.
#[derive(Clone, Copy, Debug)]
pub struct DirectMatrix<'a> {
    w: &'a [f32],
    k: usize,
    n: usize,
}

impl<'a> DirectMatrix<'a> {
    /// `w` `[n, k]` row-major.
    pub fn new(w: &'a [f32], (n, k): (usize, usize)) -> Self {
        assert!(
            k > 0 && n > 0 && w.len() == n * k,
            "direct matrix is [n, k], both nonzero"
        );
        Self { w, k, n }
    }

    /// `c (+)= a W^T` for row-major `a` `[m, k]` and `c` `[m, n]`: `c[r, j] (+)= a[r] . W[j]`.
    pub fn multiply(&self, a: &[f32], c: &mut [f32], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        let m = a.len() / k;
        assert!(
            a.len() == m * k && c.len() == m * n,
            "a is [m, k] and c is [m, n]"
        );
        let parts = self.parts(m);
        // Each part's columns of every row of `c` (each row a slab of `n` one-value columns).
        let outs = slabs(c, 1, n, &parts);
        let work: Vec<_> = parts.into_iter().zip(outs).collect();
        team::in_team(work, |(cols, mut out)| {
            dot_rows(
                a,
                &self.w[cols.start * k..cols.end * k],
                k,
                &mut out,
                accumulate,
            )
        });
    }

    /// The weight rows each thread takes: one part per thread of the [`team`] for `m` rows of
    /// work enough to split, in multiples of [`LANES`] rows.
    fn parts(&self, m: usize) -> Vec<Range<usize>> {
        let n = self.n;
        let threads = if m * n * self.k < MIN_SPLIT_WORK {
            1
        } else {
            team::size().min(n / LANES).max(1)
        };
        let step = n.div_ceil(threads).next_multiple_of(LANES);
        (0..threads)
            .map(|p| (p * step).min(n)..((p + 1) * step).min(n))
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// The sum of `v`'s lanes, halving (a tree: vectorises, where a running sum is a serial chain).
#[inline(always)]
fn lane_sum(mut v: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            v[l] += v[l + width];
        }
        width /= 2;
    }
    v[0]
}

/// `out[r][b] (+)= a[r] . w[b]` for the `NB` rows `w` and every row `a[r]` (`k` values each).
#[inline(always)]
fn dot_block<const NB: usize>(
    a: &[f32],
    w: [&[f32]; NB],
    k: usize,
    out: &mut [&mut [f32]],
    j: usize,
    accumulate: bool,
) {
    let full = k - k % LANES;
    for (x, o) in a.chunks_exact(k).zip(out.iter_mut()) {
        let mut acc = [[0f32; LANES]; NB];
        for q in (0..full).step_by(LANES) {
            let xv: &[f32; LANES] = x[q..q + LANES].try_into().expect("LANES values");
            for (acc, w) in acc.iter_mut().zip(&w) {
                // The same line of the row NB rows further on (the next block).
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a prefetch does not access memory (an address past the matrix is
                // harmless); the pointer is only computed, with wrapping arithmetic.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(w.as_ptr().wrapping_add(NB * k + q) as *const i8);
                }
                let wv: &[f32; LANES] = w[q..q + LANES].try_into().expect("LANES values");
                for l in 0..LANES {
                    acc[l] += xv[l] * wv[l];
                }
            }
        }
        for (b, (acc, w)) in acc.into_iter().zip(&w).enumerate() {
            let tail: f32 = (full..k).map(|q| x[q] * w[q]).sum();
            let s = lane_sum(acc) + tail;
            o[j + b] = if accumulate { o[j + b] + s } else { s };
        }
    }
}

multiversion! {
    /// `out[r][j] (+)= a[r] . w[j]` for `a` `[m, k]`, `w` `[n, k]` and `out` `m` rows of `n`.
    fn dot_rows(a: &[f32], w: &[f32], k: usize, out: &mut [&mut [f32]], accumulate: bool) {
        let n = w.len() / k;
        let blocks = n / BLOCK;
        for j in (0..blocks * BLOCK).step_by(BLOCK) {
            let rows: [&[f32]; BLOCK] = std::array::from_fn(|b| &w[(j + b) * k..][..k]);
            dot_block(a, rows, k, out, j, accumulate);
        }
        for j in blocks * BLOCK..n {
            dot_block(a, [&w[j * k..][..k]], k, out, j, accumulate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_product_matches_an_f64_reference() {
        for (m, k, n) in [(1, 1, 1), (1, 17, 5), (2, 256, 768), (3, 40, 1030)] {
            let a: Vec<f32> = (0..m * k)
                .map(|x| ((x * 7 % 19) as f32 - 9.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|x| ((x * 5 % 23) as f32 - 11.0) / 9.0)
                .collect();
            let want: Vec<f64> = (0..m * n)
                .map(|i| {
                    let (r, j) = (i / n, i % n);
                    (0..k)
                        .map(|q| a[r * k + q] as f64 * w[j * k + q] as f64)
                        .sum()
                })
                .collect();
            let d = DirectMatrix::new(&w, (n, k));
            let mut c = vec![0.5f32; m * n];
            d.multiply(&a, &mut c, false);
            for (x, y) in c.iter().zip(&want) {
                assert!((*x as f64 - y).abs() < 1e-4, "{m}x{k}x{n}: {x} vs {y}");
            }
            d.multiply(&a, &mut c, true);
            for (x, y) in c.iter().zip(&want) {
                assert!((*x as f64 - 2.0 * y).abs() < 2e-4, "accumulate {m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn split_parts_cover_the_rows_once() {
        let w = vec![0f32; 1030 * 64];
        let d = DirectMatrix::new(&w, (1030, 64));
        let parts = d.parts(1);
        assert_eq!(parts.first().map(|r| r.start), Some(0));
        assert_eq!(parts.last().map(|r| r.end), Some(1030));
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }
}
