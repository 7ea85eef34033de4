//! The machine's GEMM rate at a workload's shapes, the denominator of `sequent bench --gemm`.

use std::time::Instant;

/// `c = a b` for row-major `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`, through the `gemm` crate
/// on every thread of the pool: by its own threading, or (`blocks`) as one block of rows a
/// thread, each a single-threaded call (as sequent's sequence ops run their products).
fn gemm_into(c: &mut [f32], a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize), blocks: bool) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let run = |c: &mut [f32], a: &[f32], threads| {
        let rows = c.len() / n;
        // SAFETY: `a`, `b` and `c` hold the row-major rows x k, k x n and rows x n matrices the
        // strides describe (checked above, and `a`'s and `c`'s blocks are taken alike), and `c`
        // does not alias them.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                threads,
            );
        }
    };
    if blocks {
        use rayon::prelude::*;
        let per = m.div_ceil(rayon::current_num_threads()).max(1);
        c.par_chunks_mut(per * n)
            .zip(a.par_chunks(per * k))
            .for_each(|(c, a)| run(c, a, gemm::Parallelism::None));
    } else {
        run(c, a, gemm::Parallelism::Rayon(0));
    }
}

/// GFLOP/s of an f32 GEMM `[m x k] x [k x n]` through the `gemm` crate on every thread of the
/// pool (the machine's GEMM rate at that shape): the best of `reps` runs after one warm-up, each
/// threaded both ways: by the `gemm` crate's own threading, and one block of rows a thread.
pub fn gemm_gflops((m, k, n): (usize, usize, usize), reps: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut c = vec![0f32; m * n];
    let mut best = f64::INFINITY;
    for rep in 0..=reps {
        for blocks in [false, true] {
            let start = Instant::now();
            gemm_into(&mut c, &a, &b, (m, k, n), blocks);
            if rep > 0 {
                best = best.min(start.elapsed().as_secs_f64());
            }
        }
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timed_gemm_computes_the_product() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 / 4.0).collect();
        for blocks in [false, true] {
            let mut c = vec![7f32; m * n];
            gemm_into(&mut c, &a, &b, (m, k, n), blocks);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|q| a[i * k + q] * b[q * n + j]).sum();
                    assert!((c[i * n + j] - want).abs() < 1e-4, "blocks {blocks}");
                }
            }
        }
        let r = gemm_gflops((64, 64, 64), 2);
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
