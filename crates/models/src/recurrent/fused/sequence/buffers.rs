//! Host buffers of the sequence ops: copies into buffers that are not zeroed first, rows joined
//! and split, transposes, sums.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The transpose `[cols, rows]` of a row-major `[rows, cols]` matrix, in 32 x 32 blocks, the
/// pool's threads taking 32 rows of the result at a time.
pub(super) fn transpose(m: &[f32], cols: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    if m.is_empty() {
        return Vec::new();
    }
    assert!(
        cols > 0 && m.len().is_multiple_of(cols),
        "{} values are not rows of {cols}",
        m.len()
    );
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
pub(super) fn accumulate(sums: &mut [f32], m: &[f32]) {
    for (s, v) in sums.iter_mut().zip(m) {
        *s += v;
    }
}

/// The column sums of the row-major `[B, width]` `per_row` (each batch row's sum over time of a
/// bias gradient), in row order: the same whichever threads summed the rows.
pub(super) fn total(per_row: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0f32; width];
    for row in per_row.chunks(width) {
        accumulate(&mut sums, row);
    }
    sums
}

/// Values a thread copies at a time in [`concat_padded`] (64 KB).
pub(super) const COPY_BLOCK: usize = 1 << 14;

/// The slices `parts` one after the other, then zeros up to `len` values in all, copied into a
/// buffer that is not zeroed first: on the pool's threads for more than one [`COPY_BLOCK`], on the
/// calling thread otherwise (handing a batch-1 step's few hundred values to the pool cost more
/// than copying them: 10-15% of the LSTM's streaming generation, measured).
///
/// # Panics
/// If the parts hold more than `len` values.
pub(crate) fn concat_padded(parts: &[&[f32]], len: usize) -> Vec<f32> {
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
pub(crate) fn join_rows(a: &[f32], wa: usize, b: &[f32], wb: usize) -> Vec<f32> {
    assert!(
        wa > 0 && wb > 0 && a.len().is_multiple_of(wa) && a.len() / wa * wb == b.len(),
        "{} and {} values are not the same number of rows of {wa} and {wb}",
        a.len(),
        b.len()
    );
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
pub(crate) fn split_rows(m: &[f32], width: usize, wa: usize) -> (Vec<f32>, Vec<f32>) {
    assert!(
        0 < wa && wa < width && m.len().is_multiple_of(width),
        "{} values are not rows of {width} to split after {wa}",
        m.len()
    );
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

/// `out = a + b` elementwise (BPTT: `dL/dh_t` is the output's gradient plus what came back from
/// step `t + 1`).
pub(super) fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a + b;
    }
}

/// Adds `v` to every row of the row-major `m`.
pub(super) fn add_rows(m: &mut [f32], v: &[f32]) {
    for row in m.chunks_mut(v.len()) {
        for (o, b) in row.iter_mut().zip(v) {
            *o += b;
        }
    }
}
