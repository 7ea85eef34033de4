//! The fused recurrent ops on the GPU backends (wgpu, cuda) as CubeCL kernels: the whole-sequence
//! op (`sequence`, its kernels in `recurrence`), a whole stack's step for generation
//! (`stack_step`) and the single steps of a cell (`step`).

mod norm;
mod recurrence;
mod sequence;
mod stack_step;
mod step;

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

pub(crate) use sequence::{Zoneout, sequence};
pub(crate) use stack_step::PackedStack;
pub use step::CubeCellOps;

/// The logistic function.
#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-x))
}

/// An LSTM step's backward for one unit: from `dh` and the `dc` flowing back from the next step,
/// the activations `i, f, g, o`, `tanh(c)` and `c_prev` -> the gate pre-activations' gradients
/// and the cell's total gradient `dc` (`dc_prev = dc f`).
#[cube]
#[allow(clippy::too_many_arguments)]
fn lstm_backward<F: Float>(
    dh: F,
    dc_next: F,
    i: F,
    f: F,
    g: F,
    o: F,
    tc: F,
    c_prev: F,
) -> (F, F, F, F, F) {
    let one = F::new(1.0);
    let dc = dc_next + dh * o * (one - tc * tc);
    (
        dc * g * i * (one - i),
        dc * c_prev * f * (one - f),
        dc * i * (one - g * g),
        dh * tc * o * (one - o),
        dc,
    )
}

/// A GRU (reset after) step's backward for one unit: from `dh` (of `h'`), the activations
/// `r, z, n`, the recurrent product's `n` block `hn` and `h_prev` -> `dr, dz, dn`:
/// `dn = dh (1 - z) (1 - n^2)`, `dz = dh (h_prev - n) z (1 - z)`, `dr = dn hn r (1 - r)` (the
/// input side's gradients `[dr, dz, dn]`, the recurrent side's `[dr, dz, dn r]`, `h_prev`'s
/// direct part `dh z`).
#[cube]
fn gru_backward<F: Float>(dh: F, r: F, z: F, n: F, hn: F, h_prev: F) -> (F, F, F) {
    let one = F::new(1.0);
    let dn = dh * (one - z) * (one - n * n);
    let dz = dh * (h_prev - n) * z * (one - z);
    (dn * hn * r * (one - r), dz, dn)
}
