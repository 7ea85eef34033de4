//! Epoch-aware data set wrapper: seeded per-epoch shuffling that a resumed run replays exactly.
//!
//! burn's `DataLoaderBuilder::shuffle(seed)` draws each epoch's order from one generator that
//! restarts when training resumes from a checkpoint, so epoch `k + 1` of a resumed run would see
//! epoch 1's order. [`EpochDataset`] instead derives epoch `e`'s permutation from `(seed, e)` and
//! counts epochs itself (every index is read exactly once per pass), so a run resumed after epoch
//! `k` ([`EpochDataset::starting_at_epoch`]) sees the same batches as an uninterrupted one. Each
//! item comes back [`Tagged`] with its epoch and its position in the epoch's order.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataset::{Dataset, DatasetError};
use sequent_models::rng::SplitMix64;

/// An item with the epoch (from 0) it is read in and its position in that epoch's order.
#[derive(Clone, Debug)]
pub struct Tagged<I> {
    /// Epoch, counted from 0.
    pub epoch: usize,
    /// Position in the epoch's order (0 is the first item the loader reads).
    pub position: usize,
    /// The item.
    pub item: I,
}

/// Wraps a data set; reads its items in a per-epoch order (identity, or a seeded permutation).
pub struct EpochDataset<I> {
    items: Vec<I>,
    shuffle: Option<u64>,
    reads: AtomicUsize,
    order: Mutex<(usize, Vec<usize>)>,
}

impl<I: Clone + Send + Sync> EpochDataset<I> {
    /// Items read in their own order every epoch.
    pub fn ordered(items: Vec<I>) -> Self {
        Self::new(items, None)
    }

    /// Items read in a fresh permutation each epoch, determined by `(seed, epoch)`.
    pub fn shuffled(items: Vec<I>, seed: u64) -> Self {
        Self::new(items, Some(seed))
    }

    /// [`Self::shuffled`] with `Some(seed)`, [`Self::ordered`] with `None`.
    pub fn new(items: Vec<I>, shuffle: Option<u64>) -> Self {
        let order = permutation(items.len(), shuffle, 0);
        Self {
            items,
            shuffle,
            reads: AtomicUsize::new(0),
            order: Mutex::new((0, order)),
        }
    }

    /// Continues after `epochs` completed epochs (for a resumed run).
    pub fn starting_at_epoch(self, epochs: usize) -> Self {
        self.reads
            .store(epochs * self.items.len(), Ordering::SeqCst);
        self
    }
}

/// Fisher-Yates permutation of `0..n` from `(seed, epoch)`, or the identity without a seed.
fn permutation(n: usize, seed: Option<u64>, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = seed {
        let mut rng = SplitMix64::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
    }
    order
}

impl<I: Clone + Send + Sync> Dataset<Tagged<I>> for EpochDataset<I> {
    fn get(&self, index: usize) -> Result<Tagged<I>, DatasetError> {
        let n = self.items.len();
        let epoch = self.reads.fetch_add(1, Ordering::SeqCst) / n.max(1);
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        if order.0 != epoch {
            *order = (epoch, permutation(n, self.shuffle, epoch));
        }
        Ok(Tagged {
            epoch,
            position: index,
            item: self.items[order.1[index]].clone(),
        })
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_order(ds: &EpochDataset<u32>) -> Vec<u32> {
        (0..ds.len()).map(|i| ds.get(i).unwrap().item).collect()
    }

    #[test]
    fn ordered_keeps_order_and_counts_epochs() {
        let ds = EpochDataset::ordered(vec![10, 11, 12]);
        assert_eq!(epoch_order(&ds), vec![10, 11, 12]);
        let second = ds.get(0).unwrap();
        assert_eq!((second.epoch, second.position, second.item), (1, 0, 10));
    }

    #[test]
    fn shuffled_epochs_differ_and_resume_replays_them() {
        let items: Vec<u32> = (0..20).collect();
        let full = EpochDataset::shuffled(items.clone(), 7);
        let e0 = epoch_order(&full);
        let e1 = epoch_order(&full);
        let e2 = epoch_order(&full);
        assert_ne!(e0, e1);
        let mut sorted = e1.clone();
        sorted.sort();
        assert_eq!(sorted, items);
        let resumed = EpochDataset::shuffled(items, 7).starting_at_epoch(1);
        assert_eq!(epoch_order(&resumed), e1);
        assert_eq!(epoch_order(&resumed), e2);
    }
}
