//! Token streams cut into training windows, with d2l's two partitions:
//!
//! * **sequential** — the corpus (after a seeded offset `o < T`) is laid out as `B` parallel
//!   streams of `L = (N - o - 1) / B` tokens; block `j` holds `x[b, jT .. (j+1)T]` of every stream
//!   `b` with targets shifted by one. Consecutive blocks continue the same streams, so the recurrent
//!   state can be carried from one block to the next (truncated BPTT).
//! * **random** — non-overlapping windows of `T + 1` tokens starting at `o + kT`, shuffled by the
//!   loader; every window starts from the zero state.
//!
//! A corpus is split into train / validation / test by position, never shuffled across the split.

use crate::error::TrainError;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::epoch::{EpochDataset, Tagged};

/// How a token stream is cut into training windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    /// Parallel streams, consecutive blocks continue each other (state carried, truncated BPTT).
    Sequential,
    /// Independent shuffled windows (state starts at zero).
    Random,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sequential" => Ok(Self::Sequential),
            "random" => Ok(Self::Random),
            _ => Err(format!(
                "unknown partition `{s}`; expected sequential or random"
            )),
        }
    }
}

/// The three parts of a corpus split by position: `[0, a)`, `[a, b)`, `[b, N)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSplit {
    /// Training tokens (the first part).
    pub train: Vec<u32>,
    /// Validation tokens.
    pub valid: Vec<u32>,
    /// Test tokens (the last part; may be empty).
    pub test: Vec<u32>,
}

/// Splits `tokens` by position into fractions `valid` and `test` at the end (`train` is the rest).
pub fn split_by_position(tokens: &[u32], valid: f64, test: f64) -> Result<TokenSplit, TrainError> {
    if !(0.0..1.0).contains(&valid) || !(0.0..1.0).contains(&test) || valid + test >= 1.0 {
        return Err(TrainError::Invalid(format!(
            "validation ({valid}) and test ({test}) fractions must be in [0, 1) and sum below 1"
        )));
    }
    let n = tokens.len();
    let n_test = (n as f64 * test).round() as usize;
    let n_valid = (n as f64 * valid).round() as usize;
    let a = n - n_test - n_valid;
    Ok(TokenSplit {
        train: tokens[..a].to_vec(),
        valid: tokens[a..a + n_valid].to_vec(),
        test: tokens[a + n_valid..].to_vec(),
    })
}

/// One training block: inputs and targets `[rows, steps]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBlock {
    /// Number of rows (streams or windows).
    pub rows: usize,
    /// Tokens per row `T`.
    pub steps: usize,
    /// Inputs `x[.., t]`, `rows * steps` ids.
    pub input: Vec<i64>,
    /// Targets `x[.., t + 1]`, `rows * steps` ids.
    pub target: Vec<i64>,
}

/// Sequential partition: lays `tokens[offset..]` out as `batch` parallel streams and cuts them into
/// blocks of `steps` tokens; block `j` is the `j`-th batch of an epoch (load them in order, one
/// block per batch). Errors if not even one block fits.
pub fn stream_blocks(
    tokens: &[u32],
    batch: usize,
    steps: usize,
    offset: usize,
) -> Result<Vec<TokenBlock>, TrainError> {
    if batch == 0 || steps == 0 {
        return Err(TrainError::Invalid(
            "batch size and sequence length must be at least 1".into(),
        ));
    }
    let per_stream = tokens.len().saturating_sub(offset + 1) / batch;
    let count = per_stream / steps;
    if count == 0 {
        return Err(TrainError::Invalid(format!(
            "{} tokens are too few for one block of {batch} streams x {steps} steps (need {})",
            tokens.len(),
            offset + batch * steps + 1
        )));
    }
    let src = &tokens[offset..];
    let ids = |a: usize| src[a..a + steps].iter().map(|&t| t as i64);
    Ok((0..count)
        .map(|j| {
            let starts = (0..batch).map(|b| b * per_stream + j * steps);
            TokenBlock {
                rows: batch,
                steps,
                input: starts.clone().flat_map(ids).collect(),
                target: starts.flat_map(|a| ids(a + 1)).collect(),
            }
        })
        .collect())
}

/// Random partition: the non-overlapping windows `tokens[offset + kT .. offset + (k+1)T + 1]`, one
/// row each (the loader shuffles and batches them). Errors if there is none.
pub fn random_windows(
    tokens: &[u32],
    steps: usize,
    offset: usize,
) -> Result<Vec<TokenBlock>, TrainError> {
    if steps == 0 {
        return Err(TrainError::Invalid(
            "sequence length must be at least 1".into(),
        ));
    }
    let count = tokens.len().saturating_sub(offset + 1) / steps;
    if count == 0 {
        return Err(TrainError::Invalid(format!(
            "{} tokens are too few for one window of {steps} steps (need {})",
            tokens.len(),
            offset + steps + 1
        )));
    }
    let ids = |a: usize| tokens[a..a + steps].iter().map(|&t| t as i64).collect();
    Ok((0..count)
        .map(|k| {
            let s = offset + k * steps;
            TokenBlock {
                rows: 1,
                steps,
                input: ids(s),
                target: ids(s + 1),
            }
        })
        .collect())
}

/// What the recurrent state does at the start of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFlow {
    /// Start from zero and forget the final state (random partition).
    Zero,
    /// Start from zero and keep the final state for the next batch (first block of an epoch).
    Start,
    /// Continue from the final state of the block just before this one, detached (truncated
    /// BPTT); from zero if that block has not run (the first block a device sees when training
    /// splits the blocks across devices: its streams' first half ran elsewhere, or not yet).
    Continue,
}

/// A language-model batch: inputs and targets `[B, T]`, and what the state does.
#[derive(Clone, Debug)]
pub struct TokenBatch {
    /// Inputs `[B, T]`.
    pub input: Tensor<2, Int>,
    /// Targets `[B, T]` (the inputs shifted by one).
    pub target: Tensor<2, Int>,
    /// State handling for this batch.
    pub flow: StateFlow,
    /// Epoch (from 0) the batch belongs to.
    pub epoch: usize,
    /// Position of the batch's first item in the epoch's order: for the sequential partition the
    /// block's index, so a state continues only from the block just before it (see
    /// [`StateFlow::Continue`]).
    pub position: usize,
}

/// Stacks [`TokenBlock`]s into a [`TokenBatch`]; `carry` marks the sequential partition.
#[derive(Clone, Debug)]
pub struct TokenBatcher {
    /// Whether consecutive batches continue each other (sequential partition).
    pub carry: bool,
}

impl Batcher<Tagged<TokenBlock>, TokenBatch> for TokenBatcher {
    fn batch(&self, items: Vec<Tagged<TokenBlock>>, device: &Device) -> TokenBatch {
        let first = &items[0];
        let flow = match (self.carry, first.position) {
            (false, _) => StateFlow::Zero,
            (true, 0) => StateFlow::Start,
            (true, _) => StateFlow::Continue,
        };
        let (epoch, position) = (first.epoch, first.position);
        let steps = first.item.steps;
        let rows: usize = items.iter().map(|i| i.item.rows).sum();
        let mut input = Vec::with_capacity(rows * steps);
        let mut target = Vec::with_capacity(rows * steps);
        for tagged in items {
            input.extend(tagged.item.input);
            target.extend(tagged.item.target);
        }
        let tensor = |ids: Vec<i64>| {
            Tensor::<2, Int>::from_data(TensorData::new(ids, [rows, steps]), device)
        };
        TokenBatch {
            input: tensor(input),
            target: tensor(target),
            flow,
            epoch,
            position,
        }
    }
}

/// Cuts `tokens` into blocks for `partition` and wraps them in a loader of [`TokenBatch`]es:
/// sequential blocks in order, one per batch; random windows reshuffled every epoch from
/// `(seed, epoch)`, `batch` per batch. `start_epoch` is the number of epochs already done (resume).
pub fn token_loader(
    tokens: &[u32],
    partition: Partition,
    batch: usize,
    steps: usize,
    seed: u64,
    start_epoch: usize,
) -> Result<Arc<dyn DataLoader<TokenBatch>>, TrainError> {
    // d2l starts the partition at a random offset below T; a fixed seeded one keeps resumed
    // runs identical.
    let offset = (seed % steps.max(1) as u64) as usize;
    let (data, rows_per_batch, carry) = match partition {
        Partition::Sequential => (
            EpochDataset::ordered(stream_blocks(tokens, batch, steps, offset)?),
            1,
            true,
        ),
        Partition::Random => (
            EpochDataset::shuffled(random_windows(tokens, steps, offset)?, seed),
            batch,
            false,
        ),
    };
    Ok(DataLoaderBuilder::new(TokenBatcher { carry })
        .batch_size(rows_per_batch)
        .build(data.starting_at_epoch(start_epoch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_blocks_continue_their_streams() {
        let tokens: Vec<u32> = (0..23).collect();
        // offset 1: 21 usable -> 2 streams of 10 -> 3 blocks of 3 steps.
        let ds = stream_blocks(&tokens, 2, 3, 1).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds[0].input, vec![1, 2, 3, 11, 12, 13]);
        assert_eq!(ds[0].target, vec![2, 3, 4, 12, 13, 14]);
        assert_eq!(ds[1].input, vec![4, 5, 6, 14, 15, 16]);
        assert_eq!(ds[2].target, vec![8, 9, 10, 18, 19, 20]);
    }

    #[test]
    fn random_windows_do_not_overlap() {
        let tokens: Vec<u32> = (0..12).collect();
        let ds = random_windows(&tokens, 4, 2).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].input, vec![2, 3, 4, 5]);
        assert_eq!(ds[1].input, vec![6, 7, 8, 9]);
        assert_eq!(ds[1].target, vec![7, 8, 9, 10]);
    }

    #[test]
    fn too_little_text_is_an_error() {
        let tokens: Vec<u32> = (0..5).collect();
        assert!(stream_blocks(&tokens, 2, 3, 0).is_err());
        assert!(random_windows(&tokens, 5, 0).is_err());
        assert!(stream_blocks(&tokens, 0, 3, 0).is_err());
    }

    #[test]
    fn split_by_position_keeps_order() {
        let tokens: Vec<u32> = (0..10).collect();
        let s = split_by_position(&tokens, 0.2, 0.1).unwrap();
        assert_eq!(s.train, (0..7).collect::<Vec<_>>());
        assert_eq!(s.valid, vec![7, 8]);
        assert_eq!(s.test, vec![9]);
        assert!(split_by_position(&tokens, 0.6, 0.5).is_err());
    }
}
