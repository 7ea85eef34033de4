//! Writing files so that a crash never leaves a half-written one.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// `path` with `.tmp` appended: where [`write_atomic`] writes before the rename.
pub(crate) fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Renames the finished temporary file `tmp` to `path` (atomic on POSIX file systems).
pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|source| TrainError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` through `path.tmp` and a rename (atomic on POSIX file systems).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path);
    std::fs::write(&tmp, bytes).map_err(|source| TrainError::Write {
        path: tmp.clone(),
        source,
    })?;
    commit(&tmp, path)
}
