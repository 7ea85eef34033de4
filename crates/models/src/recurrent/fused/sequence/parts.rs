//! How the sequence ops split their work between the pool's threads: a time loop's batch rows
//! (each thread runs every step for its rows), and the two directions of a bidirectional layer.

use std::ops::Range;

use super::products::DIRECT_MAX_ROWS;

/// Fewest batch rows a thread takes (fewer leave its tiles mostly empty).
const MIN_ROWS_PER_THREAD: usize = 4;

/// Least multiply-adds of a whole sequence's recurrent products worth splitting between threads.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// The row ranges the batch is split into: one per pool thread, at least
/// [`MIN_ROWS_PER_THREAD`] rows each, a single range for small work (`work` multiply-adds).
pub(super) fn row_parts(batch: usize, work: usize) -> Vec<Range<usize>> {
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
pub(crate) fn slabs<'a>(
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

/// Runs `f` on a thread of the pool, blocking the caller when it is not one: the time loops' row
/// parts and the `gemm` crate's parallel products then start from inside the pool instead of
/// each being injected into it from outside (measured: 9.1 against 7.9 ms for an LSTM layer's
/// forward at the reference shape, called from the main thread).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Runs a forward pass over a batch of `batch` rows: [`in_pool`], unless the batch is small
/// enough for the products to read the weights in place ([`DIRECT_MAX_ROWS`]); those split
/// between the threads of [`team`](crate::recurrent::fused::team), and entering the pool would
/// cost more than them.
pub fn forward_in_pool<R: Send>(batch: usize, f: impl FnOnce() -> R + Send) -> R {
    if batch <= DIRECT_MAX_ROWS {
        f()
    } else {
        in_pool(f)
    }
}

/// Runs `work` on every part, the first on the calling thread and the others on the pool.
pub(super) fn in_parallel<P: Send>(parts: Vec<P>, work: impl Fn(P) + Sync) {
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
