//! `--data`: a shipped data set's short name, or a path whose extension says what it holds.

use std::path::{Path, PathBuf};

/// The folder of shipped data sets (`datasets/` in the source tree).
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets")
}

/// What a `--data` value names.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// A text file (`.txt`): language modelling.
    Text(PathBuf),
    /// A CSV file with a header row: forecasting; `column` is the default column.
    Series {
        /// The file.
        path: PathBuf,
        /// The column modelled when the config names none (`None`: the last column).
        column: Option<String>,
    },
    /// Labelled sequences in `.ts` files: training cases and, if there is one, a test file.
    Cases {
        /// Training cases (validation is drawn from them).
        train: PathBuf,
        /// Held-out test cases.
        test: Option<PathBuf>,
    },
    /// d2l's synthetic series `sin(0.01 t) + N(0, 0.2^2)`, `t = 1..1000`.
    Sine,
}

/// The short names `--data` accepts.
pub const SHIPPED: &[&str] = &[
    "shakespeare",
    "births",
    "airline",
    "sunspots",
    "sine",
    "japanese_vowels",
];

impl DataSource {
    /// Resolves a short name or a path; a missing file or unknown extension is a one-line error.
    pub fn resolve(name: &str) -> Result<Self, String> {
        let dir = shipped_dir();
        let series = |file: &str, column: &str| DataSource::Series {
            path: dir.join("timeseries").join(file),
            column: Some(column.to_string()),
        };
        let source = match name {
            "shakespeare" => DataSource::Text(dir.join("text/shakespeare.txt")),
            "births" => series("us_births_1969_1988.csv", "births"),
            "airline" => series("airline.csv", "Passengers"),
            "sunspots" => series("sunspots_yearly.csv", "SUNACTIVITY"),
            "sine" => return Ok(DataSource::Sine),
            "japanese_vowels" => DataSource::Cases {
                train: dir.join("classification/JapaneseVowels_TRAIN.ts"),
                test: Some(dir.join("classification/JapaneseVowels_TEST.ts")),
            },
            path => {
                let path = PathBuf::from(path);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("txt") => DataSource::Text(path),
                    Some("csv") => DataSource::Series { path, column: None },
                    Some("ts") => {
                        // NAME_TRAIN.ts pairs with NAME_TEST.ts when that exists.
                        let name = path.to_string_lossy();
                        let test = name
                            .strip_suffix("_TRAIN.ts")
                            .map(|stem| PathBuf::from(format!("{stem}_TEST.ts")))
                            .filter(|p| p.is_file());
                        DataSource::Cases { train: path, test }
                    }
                    _ => {
                        return Err(format!(
                            "--data `{name}` is neither a shipped data set ({}) nor a .txt, .csv or .ts file",
                            SHIPPED.join(", ")
                        ));
                    }
                }
            }
        };
        match &source {
            DataSource::Text(p)
            | DataSource::Series { path: p, .. }
            | DataSource::Cases { train: p, .. }
                if !p.is_file() =>
            {
                Err(format!("data file {} does not exist", p.display()))
            }
            _ => Ok(source),
        }
    }
}
