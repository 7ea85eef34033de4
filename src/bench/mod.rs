//! Benchmarks of a char-level language model `embedding(V -> H) -> L recurrent layers x H (one
//! or two directions) -> linear(D H -> V)`: training step (cross-entropy, Adam), batched
//! inference and batch-1 streaming generation, timed for sequent's layers and `burn::nn`'s of the
//! same kind on the same device, (with `--per-step`) for sequent's layers on the composed tensor
//! ops, (with `--with-torch`) for PyTorch through `benches/torch_reference.py`, and (with
//! `--option`) for sequent's layers with an option beyond PyTorch's, in the same run. On wgpu and
//! cuda each measurement also counts its kernel launches.

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
pub use timing::{Timed, tokens_per_s};
pub use torch::{torch_available, torch_measurement};
pub use workload::{Implementation, Kind, LayerOption, Mode, Workload, workloads};

/// What a bench run measures besides sequent and `burn::nn`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    /// sequent's layers on the composed tensor ops, step by step.
    pub per_step: bool,
    /// PyTorch (`benches/torch_reference.py`).
    pub torch: bool,
    /// sequent's layers with each of these options.
    pub options: Vec<LayerOption>,
}

/// Measures every workload with sequent and `burn::nn` on `device` (and the other `columns`),
/// in `repeat` rounds (each round measures every implementation once, side by side, so that a
/// slow patch of the machine hits all of them), calling `report` with each workload's
/// measurements (medians over the rounds) as soon as they exist.
pub fn run(
    workloads: &[Workload],
    device: &Device,
    (steps, repeat): (usize, usize),
    columns: &Columns,
    mut report: impl FnMut(&Workload, &[Measurement]),
) -> Result<(), String> {
    for w in workloads {
        let rounds = (0..repeat.max(1))
            .map(|_| round(w, device, steps, columns))
            .collect::<Result<Vec<_>, String>>()?;
        report(w, &combine(rounds));
    }
    Ok(())
}

/// One round of workload `w`: sequent, `burn::nn`, then the per-step path, PyTorch and sequent
/// with each option as `columns` asks.
fn round(
    w: &Workload,
    device: &Device,
    steps: usize,
    columns: &Columns,
) -> Result<Vec<Measurement>, String> {
    let measure = |imp: Implementation| {
        let timed = tokens_per_s(imp, w, device, steps);
        Measurement {
            embedding_folded: timed.folded,
            launches: timed.launches,
            ..Measurement::new(imp.name(), w, timed.rate)
        }
    };
    let mut row = vec![
        measure(Implementation::Sequent),
        measure(Implementation::BurnNn),
    ];
    if columns.per_step {
        row.push(measure(Implementation::PerStep));
    }
    if columns.torch {
        row.push(torch_measurement(w, steps)?);
    }
    for &option in &columns.options {
        row.push(measure(Implementation::SequentWith(option)));
    }
    Ok(row)
}
