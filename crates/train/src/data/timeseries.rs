//! Time series from CSV files: column selection, normalisation fitted on the training part only,
//! split by time, and sliding windows (`tau` inputs -> `horizon` targets).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What can go wrong reading a series.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the file system said.
        source: sequent_models::ErrorSource,
    },
    /// The file has a header but no data rows.
    #[error("{0} has no data rows")]
    Empty(String),
    /// A requested column is not in the header.
    #[error("{path} has no column `{column}` (columns: {available})")]
    UnknownColumn {
        /// The file.
        path: String,
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// A cell is not a finite number (NaN and infinite values are refused), or a row is short.
    #[error("{path}, line {line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The series is too short for the windows or the split asked for.
    #[error("{0}")]
    TooShort(String),
    /// Covariates that cannot be fitted or encoded: an unusable date, a covariate given twice,
    /// calendar covariates without a date.
    #[error("{0}")]
    Covariates(String),
}

/// A multivariate series `[T][F]` read from the named columns of a CSV file with a header row
/// (RFC 4180 through the `csv` crate: quoted fields, CRLF line ends and a UTF-8 byte-order mark
/// are read as such; blank lines are skipped). Every value must be a finite number: a cell that
/// is not (NaN, infinities, `"1,000"`), a row with a different number of cells than the header,
/// and a column named twice in the header are errors naming the line or column.
pub fn read_csv(path: &Path, columns: &[&str]) -> Result<Vec<Vec<f32>>, SeriesError> {
    read_csv_with(path, columns, Missing::Error)
}

/// What to do with a missing value in a series: an empty cell, `NaN` or an infinity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Refuse the file, naming the line and column (the default).
    #[default]
    Error,
    /// Leave out every row with a missing value in a selected column.
    Drop,
    /// Repeat the column's previous value (pandas' `ffill`); a missing value before the first
    /// present one is still an error.
    Previous,
}

impl std::str::FromStr for Missing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "drop" => Ok(Self::Drop),
            "previous" => Ok(Self::Previous),
            _ => Err(format!(
                "unknown missing-value policy `{s}`; expected error, drop or previous"
            )),
        }
    }
}

/// [`read_csv`] with a policy for missing values (empty cells, `NaN`, infinities): with
/// [`Missing::Error`] exactly `read_csv`. A cell that is not a number is an error under every
/// policy.
pub fn read_csv_with(
    path: &Path,
    columns: &[&str],
    missing: Missing,
) -> Result<Vec<Vec<f32>>, SeriesError> {
    Ok(read_frame(path, columns, &[], missing)?.values)
}

/// A series read together with other columns known in advance (covariates, dates), as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The file, for messages.
    pub path: String,
    /// The series `[T][F]`.
    pub values: Vec<Vec<f32>>,
    /// The names of the known columns.
    pub known_names: Vec<String>,
    /// The known columns' cells `[T'][K]`: one row for each row of `values`, then one for each
    /// row at the end of the file whose series cells are all empty (the known future, `T' - T`
    /// rows).
    pub known: Vec<Vec<String>>,
    /// The 1-based line of each row of `known`.
    pub lines: Vec<usize>,
}

/// [`read_csv_with`] for the series `columns`, with the cells of the `known` columns of every
/// row kept as text. When `known` names columns, rows at the end of the file whose series cells
/// are all empty are the known future: their known cells are kept in [`Frame::known`] past the
/// series' rows. A row left out under [`Missing::Drop`] is left out of both.
pub fn read_frame(
    path: &Path,
    columns: &[&str],
    known: &[&str],
    missing: Missing,
) -> Result<Frame, SeriesError> {
    let name = path.display().to_string();
    let mut reader = reader(path)?;
    let header = header_of(&mut reader, &name)?;
    let index = |names: &[&str]| -> Result<Vec<usize>, SeriesError> {
        names
            .iter()
            .map(|c| column_index(&header, c, &name))
            .collect()
    };
    let (idx, kidx) = (index(columns)?, index(known)?);
    let records = reader
        .records()
        .map(|r| r.map_err(|e| malformed(&name, &e)))
        .collect::<Result<Vec<_>, _>>()?;
    let future = if known.is_empty() {
        records.len()
    } else {
        records
            .iter()
            .rposition(|r| idx.iter().any(|&j| !r[j].is_empty()))
            .map_or(0, |i| i + 1)
    };
    let mut frame = Frame {
        path: name.clone(),
        values: Vec::new(),
        known_names: known.iter().map(|k| k.to_string()).collect(),
        known: Vec::new(),
        lines: Vec::new(),
    };
    for (r, record) in records.iter().enumerate() {
        let line = record.position().map_or(0, csv::Position::line) as usize;
        if r < future {
            let Some(row) = parse_row(record, &idx, &header, missing, frame.values.last())
                .map_err(|message| SeriesError::Malformed {
                    path: name.clone(),
                    line,
                    message,
                })?
            else {
                continue;
            };
            frame.values.push(row);
        }
        frame
            .known
            .push(kidx.iter().map(|&j| record[j].to_string()).collect());
        frame.lines.push(line);
    }
    if frame.values.is_empty() {
        return Err(SeriesError::Empty(name));
    }
    Ok(frame)
}

/// The values of the `idx` columns of one record, `None` for a row [`Missing::Drop`] leaves
/// out, or what is wrong with a cell.
fn parse_row(
    record: &csv::StringRecord,
    idx: &[usize],
    header: &[String],
    missing: Missing,
    previous: Option<&Vec<f32>>,
) -> Result<Option<Vec<f32>>, String> {
    let mut row = Vec::with_capacity(idx.len());
    let mut dropped = false;
    for (k, &j) in idx.iter().enumerate() {
        let cell = &record[j];
        let bad = |what: &str| format!("`{cell}` in column `{}` is {what}", header[j]);
        let parsed = cell.parse::<f32>();
        let absent = cell.is_empty() || parsed.as_ref().is_ok_and(|v| !v.is_finite());
        let value = match parsed {
            Ok(v) if v.is_finite() => v,
            _ if absent && missing == Missing::Error => {
                return Err(bad(
                    "a missing value (a series must not hold empty, NaN or infinite \
                     values; --missing drop or previous handles them)",
                ));
            }
            _ if absent => match (missing, previous) {
                (Missing::Previous, Some(previous)) => previous[k],
                (Missing::Previous, None) => {
                    return Err(bad(
                        "missing before any value to repeat (--missing previous)",
                    ));
                }
                _ => {
                    dropped = true;
                    f32::NAN
                }
            },
            _ => return Err(bad("not a number")),
        };
        row.push(value);
    }
    Ok((!dropped).then_some(row))
}

/// The column names of a CSV file's header row.
pub fn csv_header(path: &Path) -> Result<Vec<String>, SeriesError> {
    let name = path.display().to_string();
    header_of(&mut reader(path)?, &name)
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, SeriesError> {
    let file = std::fs::File::open(path).map_err(|e| SeriesError::Io {
        path: path.display().to_string(),
        source: sequent_models::ErrorSource::new(e),
    })?;
    Ok(csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file))
}

fn header_of(
    reader: &mut csv::Reader<std::fs::File>,
    name: &str,
) -> Result<Vec<String>, SeriesError> {
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| malformed(name, &e))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(SeriesError::Empty(name.to_string()));
    }
    Ok(header)
}

/// Where `column` is in `header`: an error if it is missing or named twice.
fn column_index(header: &[String], column: &str, name: &str) -> Result<usize, SeriesError> {
    let found: Vec<usize> = (0..header.len()).filter(|&j| header[j] == column).collect();
    match found[..] {
        [j] => Ok(j),
        [] => Err(SeriesError::UnknownColumn {
            path: name.to_string(),
            column: column.to_string(),
            available: header.join(", "),
        }),
        _ => Err(SeriesError::Malformed {
            path: name.to_string(),
            line: 1,
            message: format!(
                "the header names column `{column}` {} times (columns {}); rename them apart",
                found.len(),
                found
                    .iter()
                    .map(|j| (j + 1).to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }),
    }
}

/// A `csv` reader's error as a line-numbered [`SeriesError`].
fn malformed(name: &str, e: &csv::Error) -> SeriesError {
    let line = e.position().map_or(0, csv::Position::line) as usize;
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} cells where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_string(),
        csv::ErrorKind::Io(io) => {
            return SeriesError::Io {
                path: name.to_string(),
                source: sequent_models::ErrorSource::new(std::io::Error::new(
                    io.kind(),
                    io.to_string(),
                )),
            };
        }
        _ => e.to_string(),
    };
    SeriesError::Malformed {
        path: name.to_string(),
        line,
        message,
    }
}

/// Per-feature standardisation `z = (x - mean) / std`, fitted on the training part only and stored
/// with the model so that forecasts can be mapped back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Mean of each feature over the training part.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature over the training part (1 where it is 0).
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Fits on `train` (`[T][F]`, non-empty).
    pub fn fit(train: &[Vec<f32>]) -> Self {
        let n = train.len() as f64;
        let f = train[0].len();
        let mean: Vec<f64> = (0..f)
            .map(|j| train.iter().map(|r| r[j] as f64).sum::<f64>() / n)
            .collect();
        let std = (0..f)
            .map(|j| {
                let var = train
                    .iter()
                    .map(|r| (r[j] as f64 - mean[j]).powi(2))
                    .sum::<f64>()
                    / n;
                if var > 0.0 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// `(x - mean) / std` row by row.
    pub fn apply(&self, series: &[Vec<f32>]) -> Vec<Vec<f32>> {
        series
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, &x)| (x - self.mean[j]) / self.std[j])
                    .collect()
            })
            .collect()
    }

    /// `z * std + mean` row by row.
    pub fn invert(&self, series: &[Vec<f32>]) -> Vec<Vec<f32>> {
        series
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, &z)| z * self.std[j] + self.mean[j])
                    .collect()
            })
            .collect()
    }
}

/// One training example: `tau` consecutive rows and the `horizon` rows after them.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// `[tau][F]`.
    pub inputs: Vec<Vec<f32>>,
    /// `[horizon][F]`.
    pub targets: Vec<Vec<f32>>,
}

/// Every window of `tau` inputs and `horizon` targets inside `series`, in time order.
pub fn windows(
    series: &[Vec<f32>],
    tau: usize,
    horizon: usize,
) -> Result<Vec<Window>, SeriesError> {
    if tau == 0 || horizon == 0 {
        return Err(SeriesError::TooShort(format!(
            "tau and horizon must be at least 1, got {tau} and {horizon}"
        )));
    }
    if series.len() < tau + horizon {
        return Err(SeriesError::TooShort(format!(
            "a series of {} steps has no window of tau {tau} + horizon {horizon}",
            series.len()
        )));
    }
    Ok((0..=series.len() - tau - horizon)
        .map(|s| Window {
            inputs: series[s..s + tau].to_vec(),
            targets: series[s + tau..s + tau + horizon].to_vec(),
        })
        .collect())
}

/// A series split by time (never shuffled across the split) and normalised with statistics of
/// the training part only.
#[derive(Clone, Debug)]
pub struct SplitSeries {
    /// The first part, normalised.
    pub train: Vec<Vec<f32>>,
    /// The rest, normalised with the training statistics.
    pub valid: Vec<Vec<f32>>,
    /// The normaliser (fitted on `train`).
    pub normalizer: Normalizer,
}

/// Splits `series` at `train_len` and normalises both parts with the training statistics.
pub fn split(series: &[Vec<f32>], train_len: usize) -> Result<SplitSeries, SeriesError> {
    if train_len == 0 || train_len >= series.len() {
        return Err(SeriesError::TooShort(format!(
            "cannot split {} steps at {train_len}: both parts must be non-empty",
            series.len()
        )));
    }
    let normalizer = Normalizer::fit(&series[..train_len]);
    Ok(SplitSeries {
        train: normalizer.apply(&series[..train_len]),
        valid: normalizer.apply(&series[train_len..]),
        normalizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_columns_and_reports_bad_files_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "ok.csv",
            "year,month,births\n1969,1,8486\n1969,2,9002\n\n1969,3,9542\n",
        );
        assert_eq!(
            read_csv(&p, &["births"]).unwrap(),
            vec![vec![8486.0], vec![9002.0], vec![9542.0]]
        );
        assert_eq!(
            read_csv(&p, &["month", "births"]).unwrap()[1],
            vec![2.0, 9002.0]
        );
        let err = read_csv(&p, &["deaths"]).unwrap_err();
        assert!(
            matches!(err, SeriesError::UnknownColumn { ref available, .. } if available == "year, month, births"),
            "{err}"
        );
        let bad = write(&dir, "bad.csv", "a,b\n1,2\n3,x\n");
        assert!(matches!(
            read_csv(&bad, &["b"]).unwrap_err(),
            SeriesError::Malformed { line: 3, .. }
        ));
        for (file, value) in [("nan.csv", "NaN"), ("inf.csv", "-inf"), ("big.csv", "1e39")] {
            let path = write(&dir, file, &format!("a,b\n1,2\n3,{value}\n"));
            let err = read_csv(&path, &["b"]).unwrap_err();
            assert!(
                matches!(err, SeriesError::Malformed { line: 3, ref message, .. }
                    if message.contains("a missing value") && message.contains("`b`")),
                "{err}"
            );
        }
        // RFC 4180: a byte-order mark, CRLF and quoted cells are read as written.
        let crlf = write(
            &dir,
            "crlf.csv",
            "\u{feff}\"a\",b\r\n\"1\",2\r\n\r\n3,4.5\r\n",
        );
        assert_eq!(
            read_csv(&crlf, &["a", "b"]).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.5]]
        );
        let quoted = write(&dir, "quoted.csv", "a,b\n1,\"1,000\"\n");
        assert!(matches!(
            read_csv(&quoted, &["b"]).unwrap_err(),
            SeriesError::Malformed { line: 2, ref message, .. } if message.contains("`1,000`")
        ));
        let long = write(&dir, "long.csv", "a,b\n1,2\n3,4,5\n");
        assert!(matches!(
            read_csv(&long, &["a"]).unwrap_err(),
            SeriesError::Malformed { line: 3, ref message, .. } if message.contains("3 cells where the header has 2")
        ));
        let twice = write(&dir, "twice.csv", "a,b,a\n1,2,3\n");
        assert_eq!(read_csv(&twice, &["b"]).unwrap(), vec![vec![2.0]]);
        assert!(matches!(
            read_csv(&twice, &["a"]).unwrap_err(),
            SeriesError::Malformed { line: 1, ref message, .. } if message.contains("columns 1 and 3")
        ));
        // Missing values (empty, NaN, infinite) dropped or carried forward when asked.
        let gaps = write(&dir, "gaps.csv", "a,b\n1,2\n2,\n3,NaN\n4,inf\n5,6\n");
        assert_eq!(
            read_csv_with(&gaps, &["a", "b"], Missing::Drop).unwrap(),
            vec![vec![1.0, 2.0], vec![5.0, 6.0]]
        );
        let filled = read_csv_with(&gaps, &["b"], Missing::Previous).unwrap();
        assert_eq!(
            filled,
            vec![vec![2.0]; 4]
                .into_iter()
                .chain([vec![6.0]])
                .collect::<Vec<_>>()
        );
        assert!(matches!(
            read_csv(&gaps, &["b"]).unwrap_err(),
            SeriesError::Malformed { line: 3, .. }
        ));
        let leading = write(&dir, "leading.csv", "a\nNaN\n1\n");
        assert!(matches!(
            read_csv_with(&leading, &["a"], Missing::Previous).unwrap_err(),
            SeriesError::Malformed { line: 2, ref message, .. } if message.contains("before any value")
        ));
        assert!(matches!(
            read_csv_with(&bad, &["b"], Missing::Drop).unwrap_err(),
            SeriesError::Malformed { line: 3, ref message, .. } if message.contains("not a number")
        ));
        let short = write(&dir, "short.csv", "a,b\n1,2\n3\n");
        assert!(matches!(
            read_csv(&short, &["b"]).unwrap_err(),
            SeriesError::Malformed { line: 3, .. }
        ));
        assert!(matches!(
            read_csv(&write(&dir, "empty.csv", "a,b\n"), &["a"]).unwrap_err(),
            SeriesError::Empty(_)
        ));
        assert!(matches!(
            read_csv(&write(&dir, "none.csv", ""), &["a"]).unwrap_err(),
            SeriesError::Empty(_)
        ));
        assert!(matches!(
            read_csv(Path::new("/nonexistent.csv"), &["a"]).unwrap_err(),
            SeriesError::Io { .. }
        ));
    }

    #[test]
    fn windows_have_the_right_boundaries() {
        let s: Vec<Vec<f32>> = (0..6).map(|t| vec![t as f32]).collect();
        let w = windows(&s, 3, 2).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].inputs, vec![vec![0.0], vec![1.0], vec![2.0]]);
        assert_eq!(w[0].targets, vec![vec![3.0], vec![4.0]]);
        assert_eq!(w[1].targets, vec![vec![4.0], vec![5.0]]);
        assert!(windows(&s, 5, 2).is_err());
        assert!(windows(&s, 0, 1).is_err());
    }

    #[test]
    fn normalisation_uses_training_statistics_only_and_inverts() {
        let s: Vec<Vec<f32>> = vec![vec![1.0], vec![3.0], vec![100.0], vec![200.0]];
        let sp = split(&s, 2).unwrap();
        assert_eq!(
            sp.normalizer,
            Normalizer {
                mean: vec![2.0],
                std: vec![1.0]
            },
            "no leakage from the validation part"
        );
        assert_eq!(sp.train, vec![vec![-1.0], vec![1.0]]);
        assert_eq!(sp.valid, vec![vec![98.0], vec![198.0]]);
        assert_eq!(sp.normalizer.invert(&sp.valid), s[2..].to_vec());
        assert!(split(&s, 4).is_err());
    }
}
