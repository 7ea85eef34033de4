//! What training a model will need in memory, estimated before anything is allocated, so that a
//! model too large for the machine is refused with its size instead of ending in an allocator
//! abort.
//!
//! For a recurrent stack of `L` layers with `g` gate blocks per cell (tanh RNN 1, GRU 3, LSTM 4),
//! hidden width `H`, input width `I`, `D` directions, a vocabulary (or feature count) `V` and an
//! embedding width `E`, the parameters are
//! `P = V E + sum_l D g H (I_l + H + 2) + (D H + 1) V` with `I_1 = E` and `I_l = D H` after; one
//! optimiser step keeps weights, gradients and Adam's two moments (`16 P` bytes in f32). The
//! activations kept for the backward pass of a `[B, T]` batch are about
//! `4 B T (L D H (g + 2) + 2 V)` bytes (gates, states and outputs per layer, logits and their
//! gradient). The estimate is a lower bound of what the step allocates.

use crate::catalog::ModelName;
use crate::config::RunConfig;

/// Bytes in a gibibyte, for messages.
const GIB: f64 = (1u64 << 30) as f64;

/// A model's size and the memory one training step needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Footprint {
    /// Parameters.
    pub parameters: f64,
    /// Bytes for weights, gradients, optimiser state and the batch's activations.
    pub bytes: f64,
}

impl Footprint {
    /// A recurrent stack as the module doc describes it; `embedding` is 0 where the input is
    /// fed directly (series, `.ts` cases).
    #[allow(clippy::too_many_arguments)]
    pub fn recurrent(
        gates: usize,
        layers: usize,
        hidden: usize,
        directions: usize,
        embedding: usize,
        input: usize,
        vocab: usize,
        batch_steps: usize,
    ) -> Self {
        let (g, l, h, d) = (
            gates as f64,
            layers as f64,
            hidden as f64,
            directions as f64,
        );
        let (v, bt) = (vocab as f64, batch_steps as f64);
        let first = if embedding > 0 { embedding } else { input } as f64;
        let stack = d * g * h * (first + h + 2.0) + (l - 1.0) * d * g * h * (d * h + h + 2.0);
        let parameters = embedding as f64 * v + stack + (d * h + 1.0) * v;
        let activations = 4.0 * bt * (l * d * h * (g + 2.0) + 2.0 * v);
        Self {
            parameters,
            bytes: 16.0 * parameters + activations,
        }
    }

    /// The footprint of `cfg`'s model over `vocab` tokens (text, `embedding` used) or `vocab`
    /// features (series and cases).
    pub fn of_run(cfg: &RunConfig, model: ModelName, vocab: usize, text: bool) -> Self {
        let gates = match model {
            ModelName::Lstm => 4,
            ModelName::Gru | ModelName::Latent => 3,
            _ => 1,
        };
        let embedding = if text { cfg.embedding } else { 0 };
        // The autoregressive MLP reads a window of `steps` values of every feature.
        let input = if model == ModelName::Ar {
            cfg.steps.saturating_mul(vocab)
        } else {
            vocab
        };
        Self::recurrent(
            gates,
            cfg.layers,
            cfg.hidden,
            1,
            embedding,
            input,
            vocab,
            cfg.batch.saturating_mul(cfg.steps),
        )
    }

    /// An error if the footprint exceeds the memory the machine has available (Linux's
    /// `MemAvailable`; unchecked where that cannot be read).
    pub fn check(&self, what: &str) -> Result<(), String> {
        let Some(available) = available_bytes() else {
            return Ok(());
        };
        if self.bytes <= available as f64 {
            return Ok(());
        }
        Err(format!(
            "{what} needs about {:.1} GiB ({:.3e} parameters with their gradients and Adam state, \
             and the batch's activations), more than the {:.1} GiB this machine has available; \
             use a smaller --hidden, --embedding, --layers or --batch",
            self.bytes / GIB,
            self.parameters,
            available as f64 / GIB
        ))
    }
}

/// The memory available to new allocations: `MemAvailable` of `/proc/meminfo`.
fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_parameters_of_pytorch_layers() {
        // nn.Embedding(64, 32) + nn.LSTM(32, 128, 2) + nn.Linear(128, 64): 2048 + (4 * 128 *
        // (32 + 128 + 2)) + (4 * 128 * (128 + 128 + 2)) + 128 * 64 + 64.
        let f = Footprint::recurrent(4, 2, 128, 1, 32, 0, 64, 1);
        assert_eq!(f.parameters, 2048.0 + 82944.0 + 132096.0 + 8256.0);
        // A bidirectional GRU over 5 features (no embedding): 2 * 3 * 16 * (5 + 16 + 2), and the
        // second layer reads 2H.
        let f = Footprint::recurrent(3, 2, 16, 2, 0, 5, 5, 1);
        let expected =
            2.0 * 3.0 * 16.0 * 23.0 + 2.0 * 3.0 * 16.0 * (32.0 + 16.0 + 2.0) + 33.0 * 5.0;
        assert_eq!(f.parameters, expected);
    }

    #[test]
    fn a_model_beyond_the_machine_is_refused() {
        let huge = Footprint::recurrent(4, 1, 100_000_000, 1, 64, 0, 64, 1);
        if available_bytes().is_some() {
            let e = huge.check("the model").unwrap_err();
            assert!(e.contains("GiB") && e.contains("--hidden"), "{e}");
        }
        assert!(
            Footprint::recurrent(4, 1, 8, 1, 8, 0, 64, 32)
                .check("x")
                .is_ok()
        );
    }
}
