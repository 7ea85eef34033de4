//! The fused recurrent ops on the GPU backends (wgpu, cuda) as CubeCL kernels: the whole-sequence
//! op (`sequence`, its kernels in `recurrence`) and the single steps (`step`).

mod recurrence;
mod sequence;
mod step;

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

pub(crate) use sequence::sequence;
pub use step::CubeCellOps;

/// The logistic function.
#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-x))
}
