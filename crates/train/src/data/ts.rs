//! Sequence classification data in the sktime / UEA `.ts` text format, and padded batches with
//! lengths.
//!
//! A `.ts` file has `#` comments, `@` header lines (`@dimensions D`, `@classLabel true c1 c2 ...`,
//! ...), then after `@data` one case per line: `D` dimensions separated by `:`, each a
//! comma-separated series (all of one case the same length; cases may differ), then the class label.

use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::epoch::Tagged;

/// What can go wrong reading a `.ts` file; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the file system said.
        source: sequent_models::ErrorSource,
    },
    /// A line does not follow the format.
    #[error("{path}, line {line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file has no cases.
    #[error("{0} has no cases after @data")]
    Empty(String),
}

/// Labelled variable-length multivariate series: case `i` is `series[i]` (`[T_i][F]`) of class
/// `labels[i]` (an index into `classes`).
#[derive(Clone, Debug, PartialEq)]
pub struct TsData {
    /// The cases, `[N][T_i][F]`.
    pub series: Vec<Vec<Vec<f32>>>,
    /// Class index of each case.
    pub labels: Vec<usize>,
    /// Class names from `@classLabel`, in their declared order.
    pub classes: Vec<String>,
}

impl TsData {
    /// Number of features `F`.
    pub fn features(&self) -> usize {
        self.series
            .first()
            .and_then(|s| s.first())
            .map_or(0, Vec::len)
    }

    /// Reads a `.ts` file.
    pub fn read(path: &Path) -> Result<Self, TsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TsError::Io {
            path: name.clone(),
            source: sequent_models::ErrorSource::new(e),
        })?;
        Self::parse(&text, &name)
    }

    /// Parses the text of a `.ts` file named `name` (for messages).
    pub fn parse(text: &str, name: &str) -> Result<Self, TsError> {
        let bad = |line: usize, message: String| TsError::Malformed {
            path: name.to_string(),
            line,
            message,
        };
        let mut classes: Option<Vec<String>> = None;
        let mut dimensions: Option<usize> = None;
        let mut in_data = false;
        let mut data = TsData {
            series: Vec::new(),
            labels: Vec::new(),
            classes: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            let (n, line) = (i + 1, raw.trim());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !in_data {
                let mut words = line.split_whitespace();
                match words.next().map(str::to_ascii_lowercase).as_deref() {
                    Some("@data") => in_data = true,
                    Some("@dimensions") => {
                        let d = words.next().and_then(|w| w.parse().ok());
                        dimensions = Some(d.ok_or_else(|| bad(n, "bad @dimensions".into()))?);
                    }
                    Some("@classlabel") => {
                        if words.next() != Some("true") {
                            return Err(bad(
                                n,
                                "only labelled files (@classLabel true ...) are supported".into(),
                            ));
                        }
                        classes = Some(words.map(String::from).collect());
                    }
                    Some(h) if h.starts_with('@') => {}
                    _ => return Err(bad(n, format!("`{}` before @data", short(line)))),
                }
                continue;
            }
            let classes = classes
                .as_ref()
                .ok_or_else(|| bad(n, "no @classLabel line before @data".into()))?;
            let mut fields: Vec<&str> = line.split(':').collect();
            let label = fields.pop().unwrap_or_default().trim();
            if fields.is_empty() || label.contains(',') {
                return Err(bad(
                    n,
                    format!(
                        "`{}` ends without a class label (a case is `dimension:...:dimension:label`; \
                         is the line cut short?)",
                        short(line)
                    ),
                ));
            }
            let label = classes.iter().position(|c| c == label).ok_or_else(|| {
                bad(
                    n,
                    format!(
                        "class `{label}` is not declared in @classLabel ({})",
                        classes.join(" ")
                    ),
                )
            })?;
            if let Some(d) = dimensions
                && fields.len() != d
            {
                return Err(bad(
                    n,
                    format!("{} dimensions, @dimensions says {d}", fields.len()),
                ));
            }
            let dims: Vec<Vec<f32>> = fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    f.split(',')
                        .map(|v| {
                            let what = match v.trim().parse::<f32>() {
                                Ok(x) if x.is_finite() => return Ok(x),
                                Ok(_) => "not a finite number",
                                Err(_) => "not a number",
                            };
                            Err(bad(
                                n,
                                format!("`{}` in dimension {} is {what}", v.trim(), j + 1),
                            ))
                        })
                        .collect::<Result<Vec<f32>, _>>()
                })
                .collect::<Result<_, _>>()?;
            let steps = dims.first().map_or(0, Vec::len);
            if steps == 0 || dims.iter().any(|d| d.len() != steps) {
                return Err(bad(
                    n,
                    "the dimensions of a case must have the same, non-zero length".into(),
                ));
            }
            if let Some(first) = data.series.first()
                && first[0].len() != dims.len()
            {
                return Err(bad(
                    n,
                    format!(
                        "{} dimensions, earlier cases have {}",
                        dims.len(),
                        first[0].len()
                    ),
                ));
            }
            data.series.push(
                (0..steps)
                    .map(|t| dims.iter().map(|d| d[t]).collect())
                    .collect(),
            );
            data.labels.push(label);
        }
        if data.series.is_empty() {
            return Err(TsError::Empty(name.to_string()));
        }
        data.classes = classes.unwrap_or_default();
        Ok(data)
    }
}

fn short(line: &str) -> String {
    line.chars().take(40).collect()
}

/// One labelled case.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `[T][F]`.
    pub series: Vec<Vec<f32>>,
    /// Class index.
    pub label: usize,
}

impl TsData {
    /// The cases as items for a loader.
    pub fn cases(&self) -> Vec<Case> {
        self.series
            .iter()
            .zip(&self.labels)
            .map(|(s, &label)| Case {
                series: s.clone(),
                label,
            })
            .collect()
    }
}

/// A padded batch: inputs `[B, T_max, F]` (zeros after each case's end), lengths and labels.
#[derive(Clone, Debug)]
pub struct CaseBatch {
    /// Zero-padded inputs.
    pub inputs: Tensor<3>,
    /// Valid length of each case.
    pub lengths: Vec<usize>,
    /// Class indices `[B]`.
    pub labels: Tensor<1, Int>,
    /// Epoch (from 0) of the batch.
    pub epoch: usize,
}

/// Pads cases to the longest in the batch.
#[derive(Clone, Debug, Default)]
pub struct CaseBatcher;

impl Batcher<Tagged<Case>, CaseBatch> for CaseBatcher {
    fn batch(&self, items: Vec<Tagged<Case>>, device: &Device) -> CaseBatch {
        let epoch = items[0].epoch;
        let f = items[0].item.series[0].len();
        let t_max = items.iter().map(|c| c.item.series.len()).max().unwrap_or(1);
        let b = items.len();
        let mut flat = vec![0.0f32; b * t_max * f];
        for (i, c) in items.iter().enumerate() {
            for (t, row) in c.item.series.iter().enumerate() {
                flat[(i * t_max + t) * f..(i * t_max + t + 1) * f].copy_from_slice(row);
            }
        }
        let labels: Vec<i64> = items.iter().map(|c| c.item.label as i64).collect();
        CaseBatch {
            inputs: Tensor::from_data(TensorData::new(flat, [b, t_max, f]), device),
            lengths: items.iter().map(|c| c.item.series.len()).collect(),
            labels: Tensor::from_data(TensorData::new(labels, [b]), device),
            epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# comment\n@problemName toy\n@dimensions 2\n@classLabel true a b\n@data\n\
                        1,2,3:4,5,6:b\n7,8:9,10:a\n";

    #[test]
    fn parses_variable_length_multivariate_cases() {
        let d = TsData::parse(GOOD, "toy.ts").unwrap();
        assert_eq!(d.classes, vec!["a", "b"]);
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(
            d.series[0],
            vec![vec![1.0, 4.0], vec![2.0, 5.0], vec![3.0, 6.0]]
        );
        assert_eq!(d.series[1].len(), 2);
        assert_eq!(d.features(), 2);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            (
                "@dimensions 2\n@classLabel true a\n@data\n1,x:2,3:a\n",
                4,
                "`x` in dimension 1",
            ),
            (
                "@dimensions 2\n@classLabel true a\n@data\n1,2:3:a\n",
                4,
                "same, non-zero length",
            ),
            (
                "@dimensions 2\n@classLabel true a\n@data\n1:2:c\n",
                4,
                "class `c`",
            ),
            (
                "@dimensions 3\n@classLabel true a\n@data\n1:2:a\n",
                4,
                "@dimensions says 3",
            ),
            (
                "@classLabel true a\n@data\n1,2,3\n",
                3,
                "ends without a class label",
            ),
            (
                "@classLabel true a\n@data\n1,2:3,4\n",
                3,
                "ends without a class label",
            ),
            (
                "@classLabel true a\n@data\n1,NaN:a\n",
                3,
                "`NaN` in dimension 1 is not a finite number",
            ),
            ("@data\n1:2:a\n", 2, "no @classLabel"),
            ("hello\n", 1, "before @data"),
        ];
        for (text, line, what) in cases {
            match TsData::parse(text, "bad.ts") {
                Err(TsError::Malformed {
                    line: l, message, ..
                }) => {
                    assert_eq!(l, line, "{text}");
                    assert!(message.contains(what), "{message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            TsData::parse("@classLabel true a\n@data\n", "e.ts"),
            Err(TsError::Empty(_))
        ));
    }

    #[test]
    fn reads_the_shipped_japanese_vowels() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/classification/JapaneseVowels_TRAIN.ts");
        let d = TsData::read(&path).unwrap();
        assert_eq!(d.series.len(), 270);
        assert_eq!(d.features(), 12);
        assert_eq!(d.classes.len(), 9);
        let lengths: Vec<usize> = d.series.iter().map(Vec::len).collect();
        assert_eq!(lengths.iter().min(), Some(&7));
        assert_eq!(lengths.iter().max(), Some(&26));
        assert!(TsData::read(Path::new("/no/such.ts")).is_err());
    }

    #[test]
    fn batches_are_padded_with_lengths() {
        let d = TsData::parse(GOOD, "toy.ts").unwrap();
        let items = d
            .cases()
            .into_iter()
            .enumerate()
            .map(|(position, item)| Tagged {
                epoch: 0,
                position,
                item,
            })
            .collect();
        let device = Device::default();
        let b = CaseBatcher.batch(items, &device);
        assert_eq!(b.inputs.dims(), [2, 3, 2]);
        assert_eq!(b.lengths, vec![3, 2]);
        let v = b.inputs.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(&v[6..], &[7.0, 9.0, 8.0, 10.0, 0.0, 0.0]);
    }
}
