//! Atomic checkpoints in burn-train's layout (`checkpoint/{model,optim,scheduler}-N.bpk`) and the
//! checks made before resuming from them.

use crate::error::TrainError;
use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

/// The three records burn-train keeps per epoch.
pub const RECORDS: [&str; 3] = ["model", "optim", "scheduler"];

/// burn-train's file checkpointer, but each record is written to `name-N.bpk.tmp` and renamed
/// over `name-N.bpk` (atomic on POSIX file systems): a run killed while saving leaves the previous
/// checkpoints intact and never a half-written `.bpk`.
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicCheckpointer {
    /// Checkpoints named `name` in `directory` (created if missing).
    pub fn new(directory: &Path, name: &str) -> Self {
        std::fs::create_dir_all(directory).ok();
        Self {
            directory: directory.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn path(&self, epoch: usize) -> PathBuf {
        record_path(&self.directory, &self.name, epoch)
    }
}

/// `directory/name-epoch.bpk`.
pub fn record_path(directory: &Path, name: &str, epoch: usize) -> PathBuf {
    directory.join(format!("{name}-{epoch}.bpk"))
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        let tmp = path.with_extension("bpk.tmp");
        record.save(tmp.clone())?;
        std::fs::rename(&tmp, &path).map_err(CheckpointerError::IOError)
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        if path.exists() {
            std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
        }
        Ok(())
    }
}

/// The newest epoch with all three records in `directory`, if any.
pub fn latest_epoch(directory: &Path) -> Option<usize> {
    let entries = std::fs::read_dir(directory).ok()?;
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let epoch = name.strip_prefix("model-")?.strip_suffix(".bpk")?;
            epoch.parse::<usize>().ok()
        })
        .filter(|&epoch| {
            RECORDS
                .iter()
                .all(|r| record_path(directory, r, epoch).is_file())
        })
        .max()
}

/// Reads every record of `epoch` once, so a damaged checkpoint is reported by name before
/// burn-train (which panics on a bad file) tries to restore it.
pub fn verify(directory: &Path, epoch: usize) -> Result<(), TrainError> {
    use burn::optim::OptimizerRecord;
    use burn::optim::lr_scheduler::LrSchedulerRecord;
    use burn::store::ModuleRecord;

    let check = |name: &str, result: Result<(), CheckpointerError>| {
        result.map_err(|e| TrainError::Checkpoint {
            path: record_path(directory, name, epoch),
            source: sequent_models::ErrorSource::new(e),
        })
    };
    let path = |name| record_path(directory, name, epoch);
    check(
        "model",
        <ModuleRecord as Checkpoint>::load(path("model")).map(drop),
    )?;
    check(
        "optim",
        <OptimizerRecord as Checkpoint>::load(path("optim")).map(drop),
    )?;
    check(
        "scheduler",
        <LrSchedulerRecord as Checkpoint>::load(path("scheduler")).map(drop),
    )
}
