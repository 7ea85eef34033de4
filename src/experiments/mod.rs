//! What the example programs (`cargo run --release --example NAME`) share: their flags
//! ([`ExampleOptions`]), their results table ([`Table`]) and their `main`. Each example holds its
//! whole program on one page (`examples/NAME.rs`: data, model, learner and evaluation) and
//! reproduces a claim of the lecture; `--quick` runs a small version (under a minute) that the
//! test suite executes; the full run's tables are in `docs/results.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// The flags every example takes.
#[derive(Clone, Debug, Parser)]
pub struct ExampleOptions {
    /// Device: flex, ndarray, wgpu or cuda (those compiled in).
    #[arg(long, default_value = crate::device::default_name())]
    pub device: String,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// A small, fast version of the experiment (what the test suite runs).
    #[arg(long)]
    pub quick: bool,
    /// Output directory (default runs/examples/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl AsRef<ExampleOptions> for ExampleOptions {
    fn as_ref(&self) -> &ExampleOptions {
        self
    }
}

impl ExampleOptions {
    /// The output directory of example `name`.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/examples").join(name))
    }
}

/// A results table: a header row and rows of formatted cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each as many cells as there are columns.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = line(&self.columns);
        s.push_str(&format!("|{}\n", "---|".repeat(self.columns.len())));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }

    /// Comma-separated values with a header (RFC 4180: a cell with a comma or a quote is
    /// quoted).
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in std::iter::once(&self.columns).chain(&self.rows) {
            w.write_record(r).expect("writes to memory");
        }
        let bytes = w.into_inner().expect("writes to memory");
        String::from_utf8(bytes).expect("the cells are text")
    }

    /// Writes `NAME.md` and `NAME.csv` into `out`.
    pub fn write(&self, out: &Path, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        sequent_train::io::write_atomic(
            &out.join(format!("{name}.md")),
            self.markdown().as_bytes(),
        )?;
        sequent_train::io::write_atomic(&out.join(format!("{name}.csv")), self.csv().as_bytes())
            .map_err(String::from)
    }

    /// The cell in `row` under `column`, parsed as a number (`None` if absent or not a number).
    pub fn number(&self, row: usize, column: &str) -> Option<f64> {
        let j = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(j)?.parse().ok()
    }
}

/// The smallest, median and largest of `values` (non-empty; the upper median of an even count).
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// `values` over seeds as `median [smallest, largest]` with 3 decimals, or the one value.
pub fn median_and_range(values: &[f64]) -> String {
    let (lo, mid, hi) = spread(values);
    if values.len() > 1 {
        format!("{mid:.3} [{lo:.3}, {hi:.3}]")
    } else {
        format!("{mid:.3}")
    }
}

/// Formats a figure with 4 significant decimals.
pub fn fmt(x: f64) -> String {
    format!("{x:.4}")
}

/// The `main` of an example: keeps freed memory for reuse ([`crate::memory`]), parses the flags,
/// runs `run`, prints the table it returns.
pub fn main(name: &str, run: fn(&ExampleOptions) -> Result<Table, String>) -> ExitCode {
    main_with(name, run)
}

/// [`main`] for an example with flags of its own besides [`ExampleOptions`] (`A` flattens them in).
pub fn main_with<A: Parser + AsRef<ExampleOptions>>(
    name: &str,
    run: fn(&A) -> Result<Table, String>,
) -> ExitCode {
    crate::memory::retain_freed_memory();
    let args = A::parse();
    match run(&args) {
        Ok(table) => {
            println!("\n{}", table.markdown());
            println!("written: {}", args.as_ref().out_dir(name).display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
