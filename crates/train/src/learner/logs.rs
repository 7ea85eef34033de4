//! burn-train's per-epoch metric logs, `DIR/{train,valid}/epoch-N/NAME.log` (one value a line,
//! the layout of burn-train's `FileMetricLogger`), written so that a failed write (a full disk,
//! an unwritable file) stops training through the [`StepControl`] with a message naming the file,
//! where burn-train's logger panics in its writer thread.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::train::logger::{InMemoryMetricLogger, MetricLogger};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::learner::control::StepControl;

/// The metric logger of [`fit`](crate::learner::fit()): files as burn-train writes them, and the
/// values in memory for burn-train's early stopping and checkpoint choice to read.
pub struct MetricLogs {
    directory: PathBuf,
    control: StepControl,
    names: HashMap<MetricId, String>,
    files: HashMap<PathBuf, File>,
    epoch: Option<usize>,
    failed: bool,
    memory: InMemoryMetricLogger,
}

impl MetricLogs {
    /// Logs under `directory`, reporting a failed write to `control`.
    pub fn new(directory: &Path, control: StepControl) -> Self {
        Self {
            directory: directory.to_path_buf(),
            control,
            names: HashMap::new(),
            files: HashMap::new(),
            epoch: None,
            failed: false,
            memory: InMemoryMetricLogger::new(),
        }
    }

    fn append(&mut self, path: PathBuf, value: &str) -> std::io::Result<()> {
        let file = match self.files.get_mut(&path) {
            Some(file) => file,
            None => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                self.files.entry(path.clone()).or_insert(file)
            }
        };
        writeln!(file, "{value}")
    }
}

impl MetricLogger for MetricLogs {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        if self.epoch != Some(epoch) {
            self.files.clear();
            self.epoch = Some(epoch);
        }
        let entries = update
            .entries
            .iter()
            .chain(update.entries_numeric.iter().map(|u| &u.entry));
        let mut lines = Vec::new();
        for entry in entries {
            if entry.serialized_entry.is_not_available() {
                continue;
            }
            if let Some(name) = self.names.get(&entry.metric_id) {
                let path = self
                    .directory
                    .join(split.to_string())
                    .join(format!("epoch-{epoch}"))
                    .join(format!("{}.log", name.replace(' ', "_")));
                lines.push((path, entry.serialized_entry.serialized.clone()));
            }
        }
        for (path, value) in lines {
            if self.failed {
                break;
            }
            if let Err(e) = self.append(path.clone(), &value) {
                self.failed = true;
                self.control.fail(format!(
                    "cannot write {}: {e}; training stopped in epoch {epoch}, the checkpoints of \
                     earlier epochs are kept",
                    path.display()
                ));
            }
        }
        self.memory.log(update, epoch, split);
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.memory.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
        self.memory.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.files.clear();
        self.memory.log_epoch_summary(summary);
    }
}
