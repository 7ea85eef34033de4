//! `--data`: a shipped data set's short name, or a path whose extension says what it holds; and
//! the fingerprint (length and SHA-256) a run keeps of its data files, so that a run never
//! silently scores data that changed since it trained.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file in a run directory that holds its data files' fingerprints.
pub const FINGERPRINT_FILE: &str = "data.json";

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
                Err(if p.exists() {
                    format!("data {} is not a regular file", p.display())
                } else {
                    format!("data file {} does not exist", p.display())
                })
            }
            _ => Ok(source),
        }
    }
}

impl DataSource {
    /// The files this source reads (none for generated data).
    pub fn files(&self) -> Vec<&Path> {
        match self {
            DataSource::Text(p) | DataSource::Series { path: p, .. } => vec![p],
            DataSource::Cases { train, test } => std::iter::once(train.as_path())
                .chain(test.as_deref())
                .collect(),
            DataSource::Sine => Vec::new(),
        }
    }
}

/// `--data` as a run stores it: a shipped name as it is, a path made absolute, so that the run
/// directory works from any working directory.
pub fn absolute(data: &str) -> String {
    if SHIPPED.contains(&data) {
        return data.to_string();
    }
    std::fs::canonicalize(data)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| data.to_string())
}

/// A data file's length and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its SHA-256, in hexadecimal.
    pub sha256: String,
}

impl Fingerprint {
    /// Reads `path` and fingerprints it.
    pub fn of(path: &Path) -> Result<Self, String> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        let bytes = std::io::copy(&mut file, &mut hasher)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            sha256,
        })
    }
}

/// Writes the fingerprints of `source`'s files to `dir/data.json`.
pub fn write_fingerprints(dir: &Path, source: &DataSource) -> Result<(), String> {
    let prints = source
        .files()
        .into_iter()
        .map(Fingerprint::of)
        .collect::<Result<Vec<_>, _>>()?;
    let json = serde_json::to_string_pretty(&prints).expect("serialises");
    sequent_train::io::write_atomic(&dir.join(FINGERPRINT_FILE), json.as_bytes())
        .map_err(String::from)
}

/// Checks that the data files of the run in `dir` are the ones it trained on: an error naming
/// the file that changed. Runs without `data.json` are not checked.
pub fn check_fingerprints(dir: &Path) -> Result<(), String> {
    let path = dir.join(FINGERPRINT_FILE);
    let Ok(json) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let saved: Vec<Fingerprint> =
        serde_json::from_str(&json).map_err(|e| format!("{}: {e}", path.display()))?;
    for print in saved {
        let now = Fingerprint::of(&print.path)
            .map_err(|e| format!("{e}; the run in {} trained on that file", dir.display()))?;
        if now != print {
            return Err(format!(
                "{} changed since the run in {} trained on it ({} bytes then, {} now; SHA-256 \
                 {} then, {} now); restore it, or train a new run on it",
                print.path.display(),
                dir.display(),
                print.bytes,
                now.bytes,
                &print.sha256[..12],
                &now.sha256[..12]
            ));
        }
    }
    Ok(())
}
