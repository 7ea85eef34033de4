//! Which way a layer direction visits time, and where its states sit in the `[T + 1, B, H]`
//! state buffers.

use std::ops::Range;

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
    /// The times `0..steps` in the order the forward pass visits them (BPTT visits them in the
    /// opposite order): the one iterator over time of the fused and the composed paths.
    pub fn times(self, steps: usize) -> impl DoubleEndedIterator<Item = usize> {
        (0..steps).map(move |i| match self {
            Direction::Forward => i,
            Direction::Reverse => steps - 1 - i,
        })
    }

    /// The state-buffer slots `(entering, leaving)` of time `t`.
    pub(super) fn slots(self, t: usize) -> (usize, usize) {
        match self {
            Direction::Forward => (t, t + 1),
            Direction::Reverse => (t + 1, t),
        }
    }

    /// The slot of the initial state (of `steps` steps).
    pub(super) fn first_slot(self, steps: usize) -> usize {
        match self {
            Direction::Forward => 0,
            Direction::Reverse => steps,
        }
    }

    /// The slot of the final state (of `steps` steps).
    pub(super) fn last_slot(self, steps: usize) -> usize {
        match self {
            Direction::Forward => steps,
            Direction::Reverse => 0,
        }
    }

    /// The outputs `h_t` of a `[T + 1, B*H]` state buffer, `[T, B*H]` in time order.
    pub(super) fn outputs(self, states: &[f32], bh: usize) -> &[f32] {
        match self {
            Direction::Forward => &states[bh..],
            Direction::Reverse => &states[..states.len() - bh],
        }
    }

    /// The states entering each time (what `W_hh` multiplied), `[T, B*H]` in time order.
    pub(super) fn entering(self, states: &[f32], bh: usize) -> &[f32] {
        match self {
            Direction::Forward => Direction::Reverse,
            Direction::Reverse => Direction::Forward,
        }
        .outputs(states, bh)
    }
}

/// From the slabs of a state buffer, the state at `slots.0` to read and the one at `slots.1` to
/// write.
pub(super) fn step_states<'a>(
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
pub(super) fn rows_of<'a>(
    buf: &'a [f32],
    s: usize,
    rows: &Range<usize>,
    width: usize,
    batch: usize,
) -> &'a [f32] {
    &buf[(s * batch + rows.start) * width..(s * batch + rows.end) * width]
}
