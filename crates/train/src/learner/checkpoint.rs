//! Atomic checkpoints in burn-train's layout (`checkpoint/{model,optim,scheduler}-N.bpk`) and the
//! checks made before resuming from them.

use crate::error::TrainError;
use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use crate::learner::control::{History, StepControl};

/// The three records burn-train keeps per epoch.
pub const RECORDS: [&str; 3] = ["model", "optim", "scheduler"];

/// burn-train's file checkpointer, but each record is written to `name-N.bpk.tmp` and renamed
/// over `name-N.bpk` (atomic on POSIX file systems): a run killed while saving leaves the previous
/// checkpoints intact and never a half-written `.bpk`. A record that cannot be written (a full
/// disk, an unwritable file) stops training through the [`StepControl`] with a message naming
/// the file, where burn-train would panic. The model's checkpointer also keeps the control's loss
/// [`History`] (`history-N.json`), from which a resumed run continues its `metrics.csv` and
/// `steps.csv`.
pub struct AtomicCheckpointer {
    directory: PathBuf,
    name: String,
    control: StepControl,
}

impl AtomicCheckpointer {
    /// Checkpoints named `name` in `directory` (created if missing), reporting to `control`.
    pub fn new(directory: &Path, name: &str, control: StepControl) -> Self {
        std::fs::create_dir_all(directory).ok();
        Self {
            directory: directory.to_path_buf(),
            name: name.to_string(),
            control,
        }
    }

    fn path(&self, epoch: usize) -> PathBuf {
        record_path(&self.directory, &self.name, epoch)
    }

    fn keeps_history(&self) -> bool {
        self.name == RECORDS[0]
    }

    fn write<R: Checkpoint>(&self, epoch: usize, record: R) -> Result<(), String> {
        let path = self.path(epoch);
        let tmp = path.with_extension("bpk.tmp");
        let saved = record.save(tmp.clone()).map_err(|e| e.to_string());
        if let Err(e) = saved {
            std::fs::remove_file(&tmp).ok();
            return Err(format!("cannot write {}: {e}", tmp.display()));
        }
        if self.keeps_history() {
            let json = serde_json::to_string(&self.control.history(epoch)).expect("serialises");
            crate::io::write_atomic(&history_path(&self.directory, epoch), json.as_bytes())
                .map_err(|e| e.to_string())?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// `directory/name-epoch.bpk`.
pub fn record_path(directory: &Path, name: &str, epoch: usize) -> PathBuf {
    directory.join(format!("{name}-{epoch}.bpk"))
}

/// `directory/history-epoch.json`: the losses recorded up to the end of `epoch`.
pub fn history_path(directory: &Path, epoch: usize) -> PathBuf {
    directory.join(format!("history-{epoch}.json"))
}

/// The loss history kept with `epoch`'s checkpoint.
pub fn load_history(directory: &Path, epoch: usize) -> Result<History, TrainError> {
    let path = history_path(directory, epoch);
    let damaged = |problem: String| {
        TrainError::Invalid(format!(
            "{}: {problem}; the checkpoint of epoch {epoch} is incomplete",
            path.display()
        ))
    };
    let json = std::fs::read_to_string(&path).map_err(|e| damaged(e.to_string()))?;
    serde_json::from_str(&json).map_err(|e| damaged(e.to_string()))
}

impl<R: Checkpoint> Checkpointer<R> for AtomicCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        if let Err(e) = self.write(epoch, record) {
            self.control.fail(format!(
                "{e}; training stopped, epoch {epoch} has no checkpoint and the complete checkpoints \
                 of other epochs are kept"
            ));
        }
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        let mut paths = vec![self.path(epoch)];
        if self.keeps_history() {
            paths.push(history_path(&self.directory, epoch));
        }
        for path in paths {
            if path.exists() {
                std::fs::remove_file(path).map_err(CheckpointerError::IOError)?;
            }
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
