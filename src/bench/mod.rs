//! Benchmarks of a char-level language model `embedding(V -> H) -> L recurrent layers x H (one
//! or two directions) -> linear(D H -> V)`: training step (cross-entropy, Adam), batched
//! inference and batch-1 streaming generation, timed for sequent's layers and `burn::nn`'s of the
//! same kind on the same device, and (with `--with-torch`) for PyTorch through
//! `benches/torch_reference.py` in the same run.

mod gemm;
mod measurement;
mod models;
mod timing;
mod torch;
mod workload;

use burn::tensor::Device;

pub use gemm::gemm_gflops;
use measurement::combine;
pub use measurement::{Measurement, markdown_header, markdown_row};
pub use models::{CharLm, SeqLayer};
pub use timing::tokens_per_s;
pub use torch::{torch_available, torch_measurement};
pub use workload::{Implementation, Kind, Mode, Workload, workloads};

/// Measures every workload with sequent and `burn::nn` on `device` (and PyTorch when
/// `with_torch`), in `repeat` rounds (each round measures every implementation once, side by
/// side, so that a slow patch of the machine hits all of them), calling `report` with each
/// workload's measurements (medians over the rounds) as soon as they exist.
pub fn run(
    workloads: &[Workload],
    device: &Device,
    (steps, repeat): (usize, usize),
    with_torch: bool,
    mut report: impl FnMut(&Workload, &[Measurement]),
) -> Result<(), String> {
    for w in workloads {
        let rounds = (0..repeat.max(1))
            .map(|_| round(w, device, steps, with_torch))
            .collect::<Result<Vec<_>, String>>()?;
        report(w, &combine(rounds));
    }
    Ok(())
}

/// One round of workload `w`: sequent, `burn::nn`, and PyTorch when `with_torch`.
fn round(
    w: &Workload,
    device: &Device,
    steps: usize,
    with_torch: bool,
) -> Result<Vec<Measurement>, String> {
    let measure = |imp: Implementation| {
        let (rate, folded) = tokens_per_s(imp, w, device, steps);
        Measurement {
            embedding_folded: folded,
            ..Measurement::new(imp.name(), w, rate)
        }
    };
    let mut row = vec![
        measure(Implementation::Sequent),
        measure(Implementation::BurnNn),
    ];
    if with_torch {
        row.push(torch_measurement(w, steps)?);
    }
    Ok(row)
}
