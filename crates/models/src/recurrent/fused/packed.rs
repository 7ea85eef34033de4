//! A small GEMM for the recurrent product of a time step, `C (+)= A B` with `A` `[m, k]` the
//! `m <= B` state rows of a time step and `B` `[k, n]` the recurrent weights, packed once per
//! sequence (the oneDNN design): a general GEMM re-packs the 1 MB `W_hh` at every step, which at
//! `[32 x 256] x [256 x 1024]` costs as much as the product itself (measured: 52 GFLOP/s through
//! the `gemm` crate against 199 for the hoisted input projection).
//!
//! `B` is stored as column panels of [`PANEL`] columns, each `[k, PANEL]` row-major (the last one
//! padded with zeros), so the inner loop streams one panel from L1 while it broadcasts `MR` values
//! of `A` and keeps an `MR x PANEL` tile of `C` in registers: `MR = 8` rows and two 16-lane
//! registers a row with AVX-512 (16 accumulators), 3 rows of four 8-lane registers with AVX2.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::host::math::Simd;

/// Columns per packed panel.
pub const PANEL: usize = 32;

/// Fewest elements of a matrix worth packing on several threads.
const PARALLEL_PACK: usize = 1 << 16;

/// Panel rows a transposed packing fills at a time (16 floats: one cache line of a row of `b`).
const TRANSPOSE_BLOCK: usize = 16;

/// A `[k, n]` right-hand matrix packed into column panels.
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    panels: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedMatrix {
    /// Packs `b` `[k, n]`, or `[n, k]` read transposed when `transposed` (`W_hh` `[G*H, H]` is
    /// packed transposed for the forward product `h W_hh^T`, as it is for the backward `dG W_hh`).
    pub fn pack(b: &[f32], (k, n): (usize, usize), transposed: bool) -> Self {
        assert_eq!(b.len(), k * n, "packed matrix is [k, n]");
        let count = n.div_ceil(PANEL);
        let len = count * k * PANEL;
        // Every value is written below (the last panel's padding with zeros), so the buffer is
        // not zeroed first (a memset of megabytes on one thread cost as much as the packing).
        let mut panels: Vec<f32> = Vec::with_capacity(len);
        let size = (k * PANEL).max(1);
        // Fills the panels from `first` on: from `b` `[k, n]` one row of `b` at a time across
        // the panels (reading `b` in order; panel by panel, each row of a panel would be on a
        // page of its own, a TLB miss every 128 bytes); from `[n, k]` panel by panel, in blocks
        // of [`TRANSPOSE_BLOCK`] panel rows (each of the panel's 32 rows of `b` read a cache line
        // at a time into a block of the panel that stays in L1).
        let fill = |(first, group): (usize, &mut [MaybeUninit<f32>])| {
            let mut panels: Vec<(usize, &mut [MaybeUninit<f32>])> = group
                .chunks_mut(size)
                .enumerate()
                .map(|(q, panel)| (first + q, panel))
                .collect();
            for (p, panel) in panels.iter_mut() {
                let width = PANEL.min(n - *p * PANEL);
                for row in panel.chunks_mut(PANEL) {
                    row[width..].fill(MaybeUninit::new(0.0));
                }
            }
            if transposed {
                for (p, panel) in panels {
                    let cols = p * PANEL..((p + 1) * PANEL).min(n);
                    for kk0 in (0..k).step_by(TRANSPOSE_BLOCK) {
                        let rows = TRANSPOSE_BLOCK.min(k - kk0);
                        for (c, j) in cols.clone().enumerate() {
                            for (q, v) in b[j * k + kk0..][..rows].iter().enumerate() {
                                panel[(kk0 + q) * PANEL + c].write(*v);
                            }
                        }
                    }
                }
            } else {
                for (kk, b_row) in b.chunks(n).enumerate() {
                    for (p, panel) in panels.iter_mut() {
                        let cols = *p * PANEL..((*p + 1) * PANEL).min(n);
                        panel[kk * PANEL..][..cols.len()].write_copy_of_slice(&b_row[cols]);
                    }
                }
            }
        };
        // The panels are independent: a large matrix is packed on all the pool's threads, each
        // a run of consecutive panels.
        let spare = &mut panels.spare_capacity_mut()[..len];
        if k * n >= PARALLEL_PACK {
            let per = count.div_ceil(rayon::current_num_threads()).max(1);
            spare
                .par_chunks_mut(per * size)
                .enumerate()
                .for_each(|(g, group)| fill((g * per, group)));
        } else {
            fill((0, spare));
        }
        // SAFETY: `fill` wrote every value of every panel: the valid columns of each of its `k`
        // rows from `b`, the others with zeros.
        unsafe { panels.set_len(len) };
        Self { panels, k, n }
    }

    /// `c (+)= a * self` for row-major `a` `[m, k]` and `c` `[m, n]` (`m` = `a.len() / k`), on the
    /// calling thread.
    pub fn multiply(&self, a: &[f32], c: &mut [f32], accumulate: bool) {
        self.multiply_with(Simd::detect(), a, c, accumulate, None);
    }

    /// [`Self::multiply`] plus `bias` `[n]` on every row: `c (+)= a * self + bias`, the bias
    /// added as the product is stored (a time step's gates take one pass instead of two).
    pub fn multiply_bias(&self, a: &[f32], c: &mut [f32], accumulate: bool, bias: &[f32]) {
        assert_eq!(bias.len(), self.n, "the bias has n values");
        self.multiply_with(Simd::detect(), a, c, accumulate, Some(bias));
    }

    /// [`Self::multiply`] (with `bias` if given) with the kernels of `simd`, which the CPU must
    /// support.
    fn multiply_with(
        &self,
        simd: Simd,
        a: &[f32],
        c: &mut [f32],
        accumulate: bool,
        bias: Option<&[f32]>,
    ) {
        let (k, n) = (self.k, self.n);
        let m = a.len() / k.max(1);
        assert!(
            a.len() == m * k && c.len() == m * n,
            "a is [m, k] and c is [m, n]"
        );
        if k == 0 {
            if !accumulate {
                c.fill(0.0);
            }
            if let Some(bias) = bias {
                for row in c.chunks_mut(n) {
                    row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
                }
            }
            return;
        }
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => self.tiles::<8>(a, c, (accumulate, bias), |rows, a, b| {
                // SAFETY: `Simd::Avx512` was detected, so the CPU has AVX-512 F and FMA.
                unsafe { x86::tile_avx512(rows, a, b, k) }
            }),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => self.tiles::<3>(a, c, (accumulate, bias), |rows, a, b| {
                // SAFETY: `Simd::Avx2` was detected, so the CPU has AVX2 and FMA.
                unsafe { x86::tile_avx2(rows, a, b, k) }
            }),
            _ => self.tiles::<4>(a, c, (accumulate, bias), |rows, a, b| {
                tile_scalar(rows, a, b, k)
            }),
        }
    }

    /// Walks the `MR x PANEL` tiles of `c`: `tile(rows, a_rows, panel)` returns the product of the
    /// `rows <= MR` rows starting at `a_rows` with one panel, which is then stored (or added) into
    /// the tile's valid columns, with the bias's values for those columns added if there is one.
    #[inline(always)]
    fn tiles<const MR: usize>(
        &self,
        a: &[f32],
        c: &mut [f32],
        (accumulate, bias): (bool, Option<&[f32]>),
        tile: impl Fn(usize, &[f32], &[f32]) -> [[f32; PANEL]; MR],
    ) {
        let (k, n) = (self.k, self.n);
        let m = a.len() / k;
        for (p, panel) in self.panels.chunks(k * PANEL).enumerate() {
            let (j0, width) = (p * PANEL, PANEL.min(n - p * PANEL));
            let bias = bias.map(|b| &b[j0..j0 + width]);
            for r0 in (0..m).step_by(MR) {
                let rows = MR.min(m - r0);
                let acc = tile(rows, &a[r0 * k..(r0 + rows) * k], panel);
                for (r, acc_row) in acc.iter().enumerate().take(rows) {
                    let out = &mut c[(r0 + r) * n + j0..][..width];
                    let values = out.iter_mut().zip(acc_row);
                    // The bias is added as the values are stored (copying a tile row without
                    // one is a `memmove` call).
                    match (accumulate, bias) {
                        (true, Some(b)) => values.zip(b).for_each(|((o, v), b)| *o += v + b),
                        (true, None) => values.for_each(|(o, v)| *o += v),
                        (false, Some(b)) => values.zip(b).for_each(|((o, v), b)| *o = v + b),
                        (false, None) => out.copy_from_slice(&acc_row[..width]),
                    }
                }
            }
        }
    }
}

/// The portable tile: `rows` rows of `a` (`[rows, k]`) times one panel (`[k, PANEL]`).
fn tile_scalar<const MR: usize>(
    rows: usize,
    a: &[f32],
    panel: &[f32],
    k: usize,
) -> [[f32; PANEL]; MR] {
    let mut acc = [[0f32; PANEL]; MR];
    for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
        for (kk, b) in panel.chunks_exact(PANEL).enumerate() {
            let av = a[r * k + kk];
            for (o, bv) in acc_row.iter_mut().zip(b) {
                *o += av * bv;
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Panel rows ahead the AVX-512 tile asks the cache for (8 KB). A panel that is not in L2
    /// (the packed `W_hh` of hidden 1024 is 16 MB) otherwise streams at the pace of the hardware
    /// prefetcher, which stops at every 4 KB page: measured on one core,
    /// `[16 x 1024] x [1024 x 4096]` at 91 GFLOP/s without, 109-119 with.
    const PREFETCH: usize = 64;

    /// AVX-512 tile: `MR = 8` rows, the panel as two 16-lane registers.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and FMA ([`Simd::Avx512`] checks both); `a` holds
    /// `rows <= 8` rows of `k`, `panel` `k * PANEL` (asserted).
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn tile_avx512(
        rows: usize,
        a: &[f32],
        panel: &[f32],
        k: usize,
    ) -> [[f32; PANEL]; 8] {
        assert!(rows <= 8 && a.len() >= rows * k && panel.len() >= k * PANEL);
        let mut out = [[0f32; PANEL]; 8];
        macro_rules! run {
            ($mr:literal) => {{
                let mut acc = [[_mm512_setzero_ps(); 2]; $mr];
                let (ap, bp) = (a.as_ptr(), panel.as_ptr());
                for kk in 0..k {
                    // SAFETY: kk < k, so the panel row and the `a` elements are in bounds.
                    let (b0, b1) = unsafe {
                        let ahead = bp.wrapping_add((kk + PREFETCH) * PANEL) as *const i8;
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                        (
                            _mm512_loadu_ps(bp.add(kk * PANEL)),
                            _mm512_loadu_ps(bp.add(kk * PANEL + 16)),
                        )
                    };
                    for (r, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: r < rows and kk < k, and `a` holds `rows * k` values.
                        let av = _mm512_set1_ps(unsafe { *ap.add(r * k + kk) });
                        acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                    }
                }
                for (o, acc) in out.iter_mut().zip(&acc) {
                    // SAFETY: each output row holds 32 floats.
                    unsafe {
                        _mm512_storeu_ps(o.as_mut_ptr(), acc[0]);
                        _mm512_storeu_ps(o.as_mut_ptr().add(16), acc[1]);
                    }
                }
            }};
        }
        match rows {
            8 => run!(8),
            7 => run!(7),
            6 => run!(6),
            5 => run!(5),
            4 => run!(4),
            3 => run!(3),
            2 => run!(2),
            _ => run!(1),
        }
        out
    }

    /// AVX2 tile: `MR = 3` rows, the panel as four 8-lane registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` holds `rows <= 3` rows of `k`, `panel` `k * PANEL`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2(rows: usize, a: &[f32], panel: &[f32], k: usize) -> [[f32; PANEL]; 3] {
        assert!(rows <= 3 && a.len() >= rows * k && panel.len() >= k * PANEL);
        let mut out = [[0f32; PANEL]; 3];
        macro_rules! run {
            ($mr:literal) => {{
                let mut acc = [[_mm256_setzero_ps(); 4]; $mr];
                let (ap, bp) = (a.as_ptr(), panel.as_ptr());
                for kk in 0..k {
                    // SAFETY: kk < k, so the panel row and the `a` elements are in bounds.
                    let b =
                        unsafe { [0, 8, 16, 24].map(|o| _mm256_loadu_ps(bp.add(kk * PANEL + o))) };
                    for (r, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: r < rows and kk < k, and `a` holds `rows * k` values.
                        let av = _mm256_set1_ps(unsafe { *ap.add(r * k + kk) });
                        for (acc, b) in acc.iter_mut().zip(b) {
                            *acc = _mm256_fmadd_ps(av, b, *acc);
                        }
                    }
                }
                for (o, acc) in out.iter_mut().zip(&acc) {
                    for (q, v) in acc.iter().enumerate() {
                        // SAFETY: each output row holds 32 floats.
                        unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * q), *v) };
                    }
                }
            }};
        }
        match rows {
            3 => run!(3),
            2 => run!(2),
            _ => run!(1),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference `a [m, k] * b [k, n]` in f64.
    fn reference(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|q| a[i * k + q] as f64 * b[q * n + j] as f64)
                    .sum();
            }
        }
        c
    }

    #[test]
    fn packed_product_matches_the_reference_for_ragged_shapes() {
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (8, 16, 32),
            (9, 17, 33),
            (32, 64, 100),
            (13, 40, 256),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|x| ((x * 7 % 19) as f32 - 9.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|x| ((x * 5 % 23) as f32 - 11.0) / 9.0)
                .collect();
            let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
            let want = reference(&a, &b, (m, k, n));
            let packings = [
                (PackedMatrix::pack(&b, (k, n), false), "plain"),
                (PackedMatrix::pack(&bt, (k, n), true), "transposed"),
            ];
            // Every kernel this CPU can run, down to the portable one.
            let levels = [Simd::Avx512, Simd::Avx2, Simd::Baseline];
            let first = levels.iter().position(|l| *l == Simd::detect()).unwrap();
            for ((packed, name), simd) in packings
                .iter()
                .flat_map(|p| levels[first..].iter().map(move |l| (p, *l)))
            {
                let mut c = vec![0.5f32; m * n];
                packed.multiply_with(simd, &a, &mut c, false, None);
                for (x, w) in c.iter().zip(&want) {
                    assert!(
                        (*x as f64 - w).abs() < 1e-4,
                        "{name} {simd:?} {m}x{k}x{n}: {x} vs {w}"
                    );
                }
                packed.multiply_with(simd, &a, &mut c, true, None);
                for (x, w) in c.iter().zip(&want) {
                    assert!(
                        (*x as f64 - 2.0 * w).abs() < 2e-4,
                        "{name} {simd:?} accumulate {m}x{k}x{n}"
                    );
                }
                // With a bias on every row, stored and then accumulated.
                let bias: Vec<f32> = (0..n).map(|j| j as f32 / 4.0 - 1.0).collect();
                let biased = |i: usize| want[i] + bias[i % n] as f64;
                packed.multiply_with(simd, &a, &mut c, false, Some(&bias));
                for (i, x) in c.iter().enumerate() {
                    let w = biased(i);
                    assert!(
                        (*x as f64 - w).abs() < 1e-4,
                        "{name} {simd:?} bias {m}x{k}x{n}"
                    );
                }
                packed.multiply_with(simd, &a, &mut c, true, Some(&bias));
                for (i, x) in c.iter().enumerate() {
                    let w = 2.0 * biased(i);
                    assert!(
                        (*x as f64 - w).abs() < 2e-4,
                        "{name} {simd:?} bias, accumulate"
                    );
                }
            }
        }
    }
}
