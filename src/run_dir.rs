//! A run directory belongs to one run: a fresh `sequent train` refuses a directory that holds
//! another run (unless told to `--overwrite` it), and an exclusive lock keeps a second process
//! out while one trains.
//!
//! The lock is an advisory file lock (`flock` on Linux) on `DIR/.lock`, taken exclusively by
//! training and shared by the commands that read a run (`generate`, `evaluate`, `forecast`). The
//! operating system releases it when the process ends, however it ends, so a killed run leaves
//! no stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// The file that marks a directory as holding a run.
pub const CONFIG_FILE: &str = "config.json";

/// How a training command uses its run directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A new run: the directory must be new, empty, or hold no run.
    Fresh,
    /// A new run that replaces the run the directory holds (`--overwrite`).
    Overwrite,
    /// Continue the run the directory holds (`--resume`).
    Resume,
}

impl Start {
    /// Whether the run continues from its checkpoints.
    pub fn is_resume(self) -> bool {
        self == Start::Resume
    }
}

/// A run directory held by this process: the lock lasts as long as the value.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Checks, without locking, that `dir` can be used the way `start` says: a cheap early check
    /// before the data is read ([`RunDir::train`] checks again under the lock).
    pub fn check(dir: &Path, start: Start) -> Result<(), String> {
        if dir.exists() && !dir.is_dir() {
            return Err(format!("--out {} is not a directory", dir.display()));
        }
        let holds_run = dir.join(CONFIG_FILE).is_file();
        match start {
            Start::Resume if !holds_run => Err(format!(
                "{} holds no run to resume (no {CONFIG_FILE})",
                dir.display()
            )),
            Start::Fresh if holds_run => Err(format!(
                "{} already holds a run; continue it with --resume, replace it with --overwrite, \
                 or choose another --out",
                dir.display()
            )),
            Start::Fresh | Start::Overwrite if !holds_run && !others(dir)?.is_empty() => {
                Err(format!(
                    "{} is not empty and holds no sequent run; choose a new or empty --out",
                    dir.display()
                ))
            }
            _ => Ok(()),
        }
    }

    /// Creates `dir` if needed and takes it for training: an exclusive lock (an error if another
    /// process holds the directory), the check of [`RunDir::check`], and for
    /// [`Start::Overwrite`] the old run's files removed.
    pub fn train(dir: &Path, start: Start) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "another sequent process is using {}; wait for it to finish",
                    dir.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        Self::check(dir, start)?;
        if start == Start::Overwrite {
            for entry in others(dir)? {
                let removed = if entry.is_dir() {
                    std::fs::remove_dir_all(&entry)
                } else {
                    std::fs::remove_file(&entry)
                };
                removed.map_err(|e| format!("cannot remove {}: {e}", entry.display()))?;
            }
        }
        Ok(Self {
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A shared lock on a run directory for the commands that read it; an error while a training
/// process holds it. Runs written before the lock existed have no lock file and are read as they
/// are.
pub fn lock_for_reading(dir: &Path) -> Result<Option<File>, String> {
    let path = dir.join(LOCK_FILE);
    let Ok(lock) = File::open(&path) else {
        return Ok(None);
    };
    match lock.try_lock_shared() {
        Ok(()) => Ok(Some(lock)),
        Err(TryLockError::WouldBlock) => Err(format!(
            "{} is being trained by another sequent process; wait for it to finish",
            dir.display()
        )),
        Err(TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// The entries of `dir` other than its lock file (none if `dir` does not exist).
fn others(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if entry.file_name() != LOCK_FILE {
            found.push(entry.path());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_holds_one_run_and_one_trainer() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        let first = RunDir::train(&dir, Start::Fresh).unwrap();
        // A second trainer, and a reader, are refused while the first holds the directory.
        let again = RunDir::train(&dir, Start::Resume).unwrap_err();
        assert!(again.contains("another sequent process"), "{again}");
        assert!(
            lock_for_reading(&dir)
                .unwrap_err()
                .contains("being trained")
        );
        std::fs::write(dir.join(CONFIG_FILE), "{}").unwrap();
        std::fs::write(dir.join("model.bpk"), "weights").unwrap();
        drop(first);
        assert!(lock_for_reading(&dir).unwrap().is_some());
        let fresh = RunDir::train(&dir, Start::Fresh).unwrap_err();
        assert!(fresh.contains("already holds a run"), "{fresh}");
        let replaced = RunDir::train(&dir, Start::Overwrite).unwrap();
        assert!(!dir.join("model.bpk").exists() && !dir.join(CONFIG_FILE).exists());
        drop(replaced);
        // A directory of other files is never taken, not even to overwrite.
        let other = root.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        for start in [Start::Fresh, Start::Overwrite] {
            let e = RunDir::train(&other, start).unwrap_err();
            assert!(e.contains("holds no sequent run"), "{e}");
        }
        assert!(other.join("notes.txt").is_file());
        let e = RunDir::check(&root.path().join("none"), Start::Resume).unwrap_err();
        assert!(e.contains("no run to resume"), "{e}");
    }
}
