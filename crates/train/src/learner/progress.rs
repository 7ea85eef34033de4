//! A one-line progress bar for burn-train's loop: epoch, split, items done, running loss.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use burn::train::LearnerSummary;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use crate::learner::control::StepControl;

/// Draws `epoch 2/5  train [#####.....] 120/300  loss 1.87` on standard error, redrawn in place
/// on a terminal (at most 10 times a second), printed every 10 s and at the end of each split
/// otherwise (logs, CI).
pub struct ProgressBar {
    control: StepControl,
    epochs: usize,
    epoch: usize,
    split: String,
    total: usize,
    done: usize,
    tty: bool,
    last_draw: Option<Instant>,
    split_start: Option<Instant>,
}

impl ProgressBar {
    /// A bar reading the running loss from `control`.
    pub fn new(control: StepControl) -> Self {
        Self {
            control,
            epochs: 0,
            epoch: 0,
            split: String::new(),
            total: 0,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            split_start: None,
        }
    }

    /// Items per second in the current split.
    fn rate(&self) -> String {
        match self.split_start {
            Some(t) if self.done > 0 => {
                format!(
                    "  {:.0} items/s",
                    self.done as f64 / t.elapsed().as_secs_f64()
                )
            }
            _ => String::new(),
        }
    }

    fn line(&self) -> String {
        let width = 30;
        let filled = (width * self.done) / self.total.max(1);
        let loss = self
            .control
            .last_step_loss()
            .map(|l| format!("  loss {l:.4}"))
            .unwrap_or_default();
        format!(
            "epoch {}/{}  {:5} [{}{}] {}/{}{}{}",
            self.epoch,
            self.epochs,
            self.split,
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.total,
            if self.split == "train" { &loss } else { "" },
            self.rate()
        )
    }

    fn draw(&mut self, force: bool) {
        let every = Duration::from_millis(if self.tty { 100 } else { 10_000 });
        let due = self.last_draw.is_none_or(|t| t.elapsed() >= every);
        if !(force || due) {
            return;
        }
        if self.tty {
            eprint!("\r{}\x1b[K", self.line());
            std::io::stderr().flush().ok();
        } else {
            eprintln!("{}", self.line());
        }
        self.last_draw = Some(Instant::now());
    }
}

impl MetricsRendererTraining for ProgressBar {
    fn update_train(&mut self, _state: MetricState) {}

    fn update_valid(&mut self, _state: MetricState) {}

    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for ProgressBar {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl TrainingProgressLogger for ProgressBar {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        _label: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch.saturating_sub(1);
    }

    fn update_epoch(&mut self, _epoch: usize) {}

    fn start_split(&mut self, split: &str, total_items: usize) {
        if split == "train" {
            self.epoch += 1;
        }
        self.split = split.to_string();
        self.total = total_items;
        self.done = 0;
        self.split_start = Some(Instant::now());
    }

    fn update_split(&mut self, items_processed: usize) {
        self.done = items_processed;
        self.draw(false);
    }

    fn end_split(&mut self) {
        self.draw(true);
        if self.tty {
            eprintln!();
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for ProgressBar {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, _name: &str, _total_items: usize) {}

    fn update_test_progress(&mut self, _items_processed: usize) {}

    fn end_test(&mut self) {}

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for ProgressBar {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
