//! Known-future covariates of a series: what `--covariate` names, how each is encoded, and the
//! rows a forecaster with covariates reads.
//!
//! A covariate is a CSV column (numeric, standardised with the training part's statistics, or
//! categorical, one-hot) or a calendar feature computed from the rows' dates (the weekday and
//! the month, one-hot; a US federal holiday indicator). The fitted encoding
//! ([`CovariateEncoder`]) is saved with a run, so that evaluation and forecasting encode the
//! covariates exactly as training did.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::data::calendar::{extend, is_us_federal_holiday, parse_dates};
use crate::data::timeseries::{Frame, Normalizer, SeriesError};

/// A known-future covariate, as written after `--covariate`: `COLUMN` or `COLUMN:numeric` (a
/// numeric column, standardised), `COLUMN:onehot` (a categorical column, one-hot),
/// `calendar:weekday`, `calendar:month` (one-hot) or `calendar:us_holiday` (0 or 1), the last
/// three computed from the date (`--date`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Covariate {
    /// A numeric column, standardised with the training part's mean and deviation.
    Numeric(String),
    /// A categorical column: one 0/1 column for each value the file holds.
    Categorical(String),
    /// The day of the week, one-hot (Monday first).
    Weekday,
    /// The month of the year, one-hot (January first).
    Month,
    /// 1 on a day US federal offices observe a holiday, else 0
    /// ([`crate::data::calendar::is_us_federal_holiday`]).
    UsHoliday,
}

impl std::str::FromStr for Covariate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, kind) = s.rsplit_once(':').unwrap_or((s, "numeric"));
        match (name, kind) {
            ("calendar", "weekday") => Ok(Self::Weekday),
            ("calendar", "month") => Ok(Self::Month),
            ("calendar", "us_holiday") => Ok(Self::UsHoliday),
            ("calendar", other) => Err(format!(
                "unknown calendar covariate `{other}`; expected calendar:weekday, calendar:month or calendar:us_holiday"
            )),
            ("", _) => Err(format!("covariate `{s}` names no column")),
            (name, "numeric") => Ok(Self::Numeric(name.into())),
            (name, "onehot") => Ok(Self::Categorical(name.into())),
            (_, other) => Err(format!(
                "unknown encoding `{other}` in covariate `{s}`; expected COLUMN, COLUMN:numeric, COLUMN:onehot or calendar:FEATURE"
            )),
        }
    }
}

impl std::fmt::Display for Covariate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Numeric(c) => write!(f, "{c}"),
            Self::Categorical(c) => write!(f, "{c}:onehot"),
            Self::Weekday => write!(f, "calendar:weekday"),
            Self::Month => write!(f, "calendar:month"),
            Self::UsHoliday => write!(f, "calendar:us_holiday"),
        }
    }
}

impl TryFrom<String> for Covariate {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Covariate> for String {
    fn from(c: Covariate) -> String {
        c.to_string()
    }
}

impl Covariate {
    /// The CSV column it reads, if it is not a calendar feature.
    pub fn column(&self) -> Option<&str> {
        match self {
            Self::Numeric(c) | Self::Categorical(c) => Some(c),
            _ => None,
        }
    }
}

/// How one covariate is encoded, fitted on a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `(x - mean) / std` with the training part's statistics.
    Standardised {
        /// Mean over the training rows.
        mean: f32,
        /// Deviation over the training rows (1 where it is 0).
        std: f32,
    },
    /// One column for each category, in this order.
    OneHot {
        /// The values the file holds.
        categories: Vec<String>,
    },
    /// A calendar feature of the row's date.
    Calendar,
}

/// The covariates of a series fitted to a file: which they are, where the dates come from, and
/// how each is encoded. Saved with a run as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CovariateEncoder {
    /// The date column (ISO dates), or the year, month and day columns; empty without calendar
    /// covariates.
    pub date: Vec<String>,
    /// Each covariate and its encoding, in column order.
    pub covariates: Vec<(Covariate, Encoding)>,
}

impl CovariateEncoder {
    /// The columns a [`Frame`] must hold as known columns for `covariates` with dates from `date`.
    pub fn columns(covariates: &[Covariate], date: &[String]) -> Vec<String> {
        let mut columns: Vec<String> = Vec::new();
        let calendar = covariates.iter().any(|c| c.column().is_none());
        let named = covariates
            .iter()
            .filter_map(|c| c.column().map(String::from));
        for c in named.chain(date.iter().filter(|_| calendar).cloned()) {
            if !columns.contains(&c) {
                columns.push(c);
            }
        }
        columns
    }

    /// Checks what [`Self::fit`] checks before it reads the file: no covariate given twice,
    /// and calendar covariates with a date of one column or three.
    pub fn check(covariates: &[Covariate], date: &[String]) -> Result<(), SeriesError> {
        let invalid = SeriesError::Covariates;
        let mut given = covariates.iter().enumerate();
        if let Some((i, c)) = given.find(|(i, c)| covariates[..*i].contains(c)) {
            return Err(invalid(format!(
                "covariate `{c}` is given twice (position {})",
                i + 1
            )));
        }
        let calendar = covariates.iter().any(|c| c.column().is_none());
        if calendar && !matches!(date.len(), 1 | 3) {
            return Err(invalid(format!(
                "calendar covariates need the date: one column of dates or the year, month and \
                 day columns (--date), got {} column(s)",
                date.len()
            )));
        }
        Ok(())
    }

    /// Fits `covariates` on `frame` (whose known columns are [`Self::columns`]): numeric columns
    /// are standardised with the statistics of the first `train_len` rows (at least one), categorical ones take
    /// every value the file holds. Errors: a calendar covariate without `date` (one column of
    /// ISO dates, or year, month and day), a covariate given twice, a cell that is not a finite
    /// number in a numeric covariate, a date that does not parse.
    pub fn fit(
        covariates: &[Covariate],
        date: &[String],
        frame: &Frame,
        train_len: usize,
    ) -> Result<Self, SeriesError> {
        Self::check(covariates, date)?;
        let calendar = covariates.iter().any(|c| c.column().is_none());
        let fitted = Self {
            date: if calendar { date.to_vec() } else { Vec::new() },
            covariates: Vec::new(),
        };
        let mut encoded = Vec::with_capacity(covariates.len());
        for c in covariates {
            let encoding = match c {
                Covariate::Numeric(name) => {
                    let values = fitted.numbers(frame, name)?;
                    let train: Vec<Vec<f32>> = values[..train_len.clamp(1, values.len())]
                        .iter()
                        .map(|&v| vec![v])
                        .collect();
                    let fitted = Normalizer::fit(&train);
                    Encoding::Standardised {
                        mean: fitted.mean[0],
                        std: fitted.std[0],
                    }
                }
                Covariate::Categorical(name) => {
                    let mut categories: Vec<String> = Vec::new();
                    for cell in fitted.cells(frame, name)? {
                        if !categories.contains(cell) {
                            categories.push(cell.clone());
                        }
                    }
                    Encoding::OneHot { categories }
                }
                _ => Encoding::Calendar,
            };
            encoded.push((c.clone(), encoding));
        }
        let fitted = Self {
            covariates: encoded,
            ..fitted
        };
        fitted.encode(frame, frame.known.len())?;
        Ok(fitted)
    }

    /// How many rows [`Self::encode`] can give for `frame`: the file's rows when a covariate is
    /// a CSV column, `None` (any number) with calendar covariates only.
    pub fn known_rows(&self, frame: &Frame) -> Option<usize> {
        let columns = self.covariates.iter().any(|(c, _)| c.column().is_some());
        columns.then_some(frame.known.len())
    }

    /// The number `C` of columns the covariates take.
    pub fn width(&self) -> usize {
        self.covariates
            .iter()
            .map(|(c, e)| match (c, e) {
                (_, Encoding::OneHot { categories }) => categories.len(),
                (Covariate::Weekday, _) => 7,
                (Covariate::Month, _) => 12,
                _ => 1,
            })
            .sum()
    }

    /// The encoded covariates of the first `rows` rows of `frame` (`[rows][C]`). Rows past the
    /// file's known rows exist for calendar covariates only (the dates continue at their
    /// spacing); for a CSV column they are an error (the horizon reaches past the known
    /// covariates), as is a category the fit did not see.
    pub fn encode(&self, frame: &Frame, rows: usize) -> Result<Vec<Vec<f32>>, SeriesError> {
        let known = frame.known.len();
        let mut out = vec![Vec::with_capacity(self.width()); rows];
        let dates = if self.date.is_empty() {
            Vec::new()
        } else {
            let columns = self
                .date
                .iter()
                .map(|d| self.cells(frame, d))
                .collect::<Result<Vec<_>, _>>()?;
            let cells: Vec<Vec<String>> = (0..known)
                .map(|r| columns.iter().map(|c| c[r].clone()).collect())
                .collect();
            let dates = parse_dates(&cells, &frame.lines).map_err(|e| self.error(frame, e))?;
            extend(&dates, rows.saturating_sub(known)).map_err(|e| self.error(frame, e))?
        };
        for (c, encoding) in &self.covariates {
            if c.column().is_some() && rows > known {
                return Err(SeriesError::TooShort(format!(
                    "covariate `{c}` is known for {known} rows of {}, the forecast needs {rows} \
                     (add the future rows to the file, with the series' cells empty)",
                    frame.path
                )));
            }
            match (c, encoding) {
                (Covariate::Numeric(name), Encoding::Standardised { mean, std }) => {
                    for (row, v) in out.iter_mut().zip(self.numbers(frame, name)?) {
                        row.push((v - mean) / std);
                    }
                }
                (Covariate::Categorical(name), Encoding::OneHot { categories }) => {
                    let cells = self.cells(frame, name)?;
                    for (r, row) in out.iter_mut().enumerate() {
                        let Some(k) = categories.iter().position(|v| v == cells[r]) else {
                            return Err(SeriesError::Malformed {
                                path: frame.path.clone(),
                                line: frame.lines[r],
                                message: format!(
                                    "`{}` in covariate column `{name}` is not one of the categories the model was trained with ({})",
                                    cells[r],
                                    categories.join(", ")
                                ),
                            });
                        };
                        one_hot(categories.len(), k, row);
                    }
                }
                (calendar, Encoding::Calendar) => {
                    for (row, date) in out.iter_mut().zip(&dates) {
                        calendar_feature(calendar, *date, row);
                    }
                }
                (c, e) => {
                    return Err(
                        self.error(frame, format!("covariate `{c}` cannot be encoded as {e:?}"))
                    );
                }
            }
        }
        Ok(out)
    }

    fn error(&self, frame: &Frame, message: String) -> SeriesError {
        SeriesError::Covariates(format!("{}: {message}", frame.path))
    }

    /// The cells of known column `name`.
    fn cells<'a>(&self, frame: &'a Frame, name: &str) -> Result<Vec<&'a String>, SeriesError> {
        let Some(j) = frame.known_names.iter().position(|k| k == name) else {
            return Err(self.error(
                frame,
                format!("column `{name}` was not read with the series"),
            ));
        };
        Ok(frame.known.iter().map(|r| &r[j]).collect())
    }

    /// The cells of known column `name` as finite numbers.
    fn numbers(&self, frame: &Frame, name: &str) -> Result<Vec<f32>, SeriesError> {
        self.cells(frame, name)?
            .into_iter()
            .zip(&frame.lines)
            .map(|(cell, &line)| match cell.parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(SeriesError::Malformed {
                    path: frame.path.clone(),
                    line,
                    message: format!(
                        "`{cell}` in covariate column `{name}` is not a finite number (a categorical column is written `{name}:onehot`)"
                    ),
                }),
            })
            .collect()
    }
}

/// Appends the one-hot encoding of category `k` of `n` to `row`.
fn one_hot(n: usize, k: usize, row: &mut Vec<f32>) {
    row.extend((0..n).map(|j| (j == k) as u8 as f32));
}

/// Appends the encoding of calendar feature `c` of `date` to `row`.
fn calendar_feature(c: &Covariate, date: NaiveDate, row: &mut Vec<f32>) {
    match c {
        Covariate::Weekday => one_hot(7, date.weekday().num_days_from_monday() as usize, row),
        Covariate::Month => one_hot(12, date.month0() as usize, row),
        _ => row.push(is_us_federal_holiday(date) as u8 as f32),
    }
}

/// The rows a forecaster with covariates reads: `[x_s, c_{s+1}]` for every step `s` whose next
/// step's covariates are known (`min(T, T' - 1)` rows for `values` `[T][F]` and `covariates`
/// `[T'][C]`; see `sequent_models::forecast`).
pub fn lead_rows(values: &[Vec<f32>], covariates: &[Vec<f32>]) -> Vec<Vec<f32>> {
    values
        .iter()
        .zip(covariates.iter().skip(1))
        .map(|(x, c)| x.iter().chain(c).copied().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::timeseries::{Missing, read_frame};

    fn frame(text: &str, known: &[&str]) -> Frame {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, text).unwrap();
        read_frame(&path, &["y"], known, Missing::Error).unwrap()
    }

    #[test]
    fn specs_parse_and_print_back() {
        for (spec, parsed) in [
            ("temp", Covariate::Numeric("temp".into())),
            ("temp:numeric", Covariate::Numeric("temp".into())),
            ("shop:onehot", Covariate::Categorical("shop".into())),
            ("calendar:weekday", Covariate::Weekday),
            ("calendar:month", Covariate::Month),
            ("calendar:us_holiday", Covariate::UsHoliday),
        ] {
            assert_eq!(spec.parse::<Covariate>().unwrap(), parsed);
            let again: Covariate = parsed.to_string().parse().unwrap();
            assert_eq!(again, parsed);
        }
        for (bad, says) in [
            ("calendar:easter", "unknown calendar covariate"),
            ("temp:log", "unknown encoding `log`"),
            (":onehot", "names no column"),
        ] {
            let err = bad.parse::<Covariate>().unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn columns_and_calendar_are_encoded_with_the_future_rows() {
        // Two rows of the series, then one future row with the series' cell empty.
        let f = frame(
            "date,y,temp,shop\n1969-01-01,1,10,a\n1969-01-02,2,20,b\n1969-01-03,,40,a\n",
            &["temp", "shop", "date"],
        );
        assert_eq!((f.values.len(), f.known.len()), (2, 3));
        assert_eq!(f.lines, vec![2, 3, 4]);
        let covariates: Vec<Covariate> = [
            "temp",
            "shop:onehot",
            "calendar:weekday",
            "calendar:us_holiday",
        ]
        .map(|s| s.parse().unwrap())
        .to_vec();
        let date = ["date".to_string()];
        assert_eq!(
            CovariateEncoder::columns(&covariates, &date),
            ["temp", "shop", "date"]
        );
        let enc = CovariateEncoder::fit(&covariates, &date, &f, 2).unwrap();
        assert_eq!(enc.width(), 1 + 2 + 7 + 1);
        assert_eq!(enc.known_rows(&f), Some(3));
        let rows = enc.encode(&f, 3).unwrap();
        // temp standardised with the first two rows (mean 15, std 5); 1969-01-01 was a
        // Wednesday and New Year's Day.
        let wednesday = [0., 0., 1., 0., 0., 0., 0.];
        let expected_0: Vec<f32> = [-1.0, 1.0, 0.0]
            .into_iter()
            .chain(wednesday)
            .chain([1.0])
            .collect();
        assert_eq!(rows[0], expected_0);
        assert_eq!(rows[2][..3], [5.0, 1.0, 0.0]);
        assert_eq!(rows[2][3 + 4], 1.0, "1969-01-03 was a Friday");
        let err = enc.encode(&f, 4).unwrap_err().to_string();
        assert!(
            err.contains("covariate `temp` is known for 3 rows"),
            "{err}"
        );
        // Calendar covariates alone continue past the file.
        let calendar = [Covariate::Weekday];
        let enc = CovariateEncoder::fit(&calendar, &date, &f, 2).unwrap();
        assert_eq!(enc.known_rows(&f), None);
        assert_eq!(
            enc.encode(&f, 5).unwrap()[4][6],
            1.0,
            "1969-01-05 was a Sunday"
        );
        // The encoding saved with a run reads back as it was.
        let json = serde_json::to_string(&enc).unwrap();
        assert_eq!(
            serde_json::from_str::<CovariateEncoder>(&json).unwrap(),
            enc
        );
    }

    #[test]
    fn bad_covariates_are_refused_with_what_to_fix() {
        let f = frame(
            "date,y,word,shop\n2000-01-01,1,x,a\n2000-01-02,2,y,b\n",
            &["word", "shop", "date"],
        );
        let date = ["date".to_string()];
        let fit = |c: &[&str], date: &[String]| {
            let c: Vec<Covariate> = c.iter().map(|s| s.parse().unwrap()).collect();
            CovariateEncoder::fit(&c, date, &f, 1)
                .map(drop)
                .unwrap_err()
                .to_string()
        };
        let err = fit(&["word"], &date);
        assert!(
            err.contains("line 2")
                && err.contains("`x` in covariate column `word` is not a finite number"),
            "{err}"
        );
        assert!(fit(&["calendar:weekday"], &[]).contains("need the date"));
        assert!(fit(&["shop:onehot", "shop:onehot"], &date).contains("given twice"));
        // A category the fit did not see.
        let enc =
            CovariateEncoder::fit(&[Covariate::Categorical("shop".into())], &[], &f, 1).unwrap();
        let other = frame(
            "date,y,word,shop\n2000-01-01,1,x,c\n",
            &["word", "shop", "date"],
        );
        let err = enc.encode(&other, 1).unwrap_err().to_string();
        assert!(
            err.contains("`c` in covariate column `shop` is not one of the categories"),
            "{err}"
        );
        // A date that does not parse.
        let bad = frame("date,y\n2000-02-30,1\n", &["date"]);
        let err = CovariateEncoder::fit(&[Covariate::Month], &date, &bad, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`2000-02-30` is not a date"), "{err}");
    }

    #[test]
    fn lead_rows_pair_each_value_with_the_next_covariates() {
        let x = vec![vec![1.0], vec![2.0], vec![3.0]];
        let c = vec![vec![10.0], vec![20.0], vec![30.0]];
        assert_eq!(lead_rows(&x, &c), vec![vec![1.0, 20.0], vec![2.0, 30.0]]);
        let more = vec![vec![10.0], vec![20.0], vec![30.0], vec![40.0], vec![50.0]];
        assert_eq!(lead_rows(&x, &more).len(), 3);
    }
}
