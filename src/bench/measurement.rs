//! Measurements, their medians over rounds, and the Markdown table.

use serde::Serialize;

use super::Columns;
use super::workload::{Mode, Workload};

/// One measurement, shaped like a line of `benches/torch_reference.py`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// `sequent`, `burn-nn`, `sequent-per-step` or `torch-VERSION`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// `train`, `infer` or `stream`.
    pub mode: String,
    /// `rnn`, `lstm` or `gru`.
    pub kind: String,
    /// Hidden width.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Batch size (1 for streaming).
    pub batch: usize,
    /// Sequence length.
    pub seq: usize,
    /// Bidirectional layers.
    pub bidirectional: bool,
    /// Throughput (with several rounds, the median of [`Self::runs`]).
    pub tokens_per_s: f64,
    /// Each round's throughput, in order (`--repeat`; left out of the JSON for a single round).
    #[serde(skip_serializing_if = "one_round")]
    pub runs: Vec<f64>,
    /// Whether the model folded its embedding into the first layer
    /// ([`Workload::fold_embedding`]).
    pub embedding_folded: bool,
    /// On wgpu and cuda: the kernels launched a training step, a forward pass or (streaming) a
    /// generated token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launches: Option<f64>,
}

/// Whether `runs` holds a single round (then left out of the JSON, which has the figure already).
fn one_round(runs: &[f64]) -> bool {
    runs.len() <= 1
}

/// The median of `v` (not empty): the middle value, or the mean of the two middle ones.
pub(super) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One measurement per implementation from `rounds` (each a round's measurements, the
/// implementations in the same order): the median throughput, each round's in `runs`.
pub(super) fn combine(rounds: Vec<Vec<Measurement>>) -> Vec<Measurement> {
    let mut combined = rounds[0].clone();
    for (i, m) in combined.iter_mut().enumerate() {
        m.runs = rounds.iter().map(|r| r[i].tokens_per_s).collect();
        m.tokens_per_s = median(&m.runs);
    }
    combined
}

impl Measurement {
    pub(super) fn new(implementation: &str, w: &Workload, tokens_per_s: f64) -> Self {
        Self {
            implementation: implementation.to_string(),
            mode: w.mode.name().into(),
            kind: w.kind.name().into(),
            hidden: w.hidden,
            layers: w.layers,
            batch: if w.mode == Mode::Stream { 1 } else { w.batch },
            seq: w.seq,
            bidirectional: w.bidirectional,
            tokens_per_s: (tokens_per_s * 10.0).round() / 10.0,
            runs: Vec::new(),
            embedding_folded: false,
            launches: None,
        }
    }
}

/// The ratio cell `a / b`: with several rounds, the median of the rounds' ratios and their
/// range, `1.23x (1.10-1.31x)`.
fn ratio_cell(a: &Measurement, b: &Measurement) -> String {
    if a.runs.len() > 1 {
        let ratios: Vec<f64> = a.runs.iter().zip(&b.runs).map(|(x, y)| x / y).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, 0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        format!("{:.2}x ({low:.2}-{high:.2}x)", median(&ratios))
    } else {
        format!("{:.2}x", a.tokens_per_s / b.tokens_per_s)
    }
}

/// A Markdown row for one workload's measurements (sequent first, then burn::nn, then the
/// per-step path and torch if measured): throughputs (medians over the rounds), ratios
/// (`ratio_cell`), and the kernel launches where they were counted.
pub fn markdown_row(w: &Workload, m: &[Measurement]) -> String {
    let mut cells = vec![
        w.mode.name().to_string(),
        w.kind_name(),
        w.hidden.to_string(),
        w.seq.to_string(),
    ];
    for other in &m[1..] {
        cells.push(format!("{:.0}", other.tokens_per_s));
        cells.push(ratio_cell(&m[0], other));
    }
    cells.insert(4, format!("{:.0}", m[0].tokens_per_s));
    if m[0].launches.is_some() {
        let counted = m.iter().filter_map(|x| x.launches);
        let counts: Vec<String> = counted.map(|n| format!("{n:.0}")).collect();
        cells.push(counts.join(" / "));
    }
    format!("| {} |", cells.join(" | "))
}

/// The Markdown header matching [`markdown_row`]: the `columns` measured, and a launches column
/// where they are counted. An option's ratio `sequent / +option` is the time its training step
/// takes against the plain layer's.
pub fn markdown_header(columns: &Columns, launches: bool) -> String {
    let Columns {
        per_step,
        torch,
        options,
    } = columns;
    let mut h =
        "| mode | kind | H | T | sequent tok/s | burn::nn tok/s | sequent / burn::nn |".to_string();
    let mut sep = "|---|---|---|---|---|---|---|".to_string();
    let mut counted = vec!["sequent", "burn::nn"];
    if *per_step {
        h.push_str(" per-step tok/s | sequent / per-step |");
        sep.push_str("---|---|");
        counted.push("per-step");
    }
    if *torch {
        h.push_str(" PyTorch tok/s | sequent / PyTorch |");
        sep.push_str("---|---|");
    }
    for option in options {
        let name = option.name();
        h.push_str(&format!(" +{name} tok/s | sequent / +{name} |"));
        sep.push_str("---|---|");
        counted.push(name);
    }
    if launches {
        h.push_str(&format!(" launches ({}) |", counted.join(" / ")));
        sep.push_str("---|");
    }
    format!("{h}\n{sep}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Kind;

    #[test]
    fn rounds_combine_into_medians_and_ratio_ranges() {
        let w = Workload::w1(Kind::Rnn);
        let round = |a: f64, b: f64| {
            vec![
                Measurement::new("sequent", &w, a),
                Measurement::new("burn-nn", &w, b),
            ]
        };
        let m = combine(vec![round(30.0, 10.0), round(10.0, 5.0), round(20.0, 5.0)]);
        assert_eq!((m[0].tokens_per_s, m[1].tokens_per_s), (20.0, 5.0));
        assert_eq!(m[0].runs, [30.0, 10.0, 20.0]);
        // Ratios 3, 2, 4: median 3, range 2-4 (not the ratio of the medians, 4).
        assert!(markdown_row(&w, &m).ends_with("| 20 | 5 | 3.00x (2.00-4.00x) |"));
        let json = serde_json::to_value(&m[0]).unwrap();
        assert_eq!(json["runs"], serde_json::json!([30.0, 10.0, 20.0]));
        // One round: the plain ratio, no `runs` in the JSON.
        let one = combine(vec![round(30.0, 10.0)]);
        assert!(markdown_row(&w, &one).ends_with("| 30 | 10 | 3.00x |"));
        // A third implementation and counted launches (of those that count them: not torch).
        let mut three = combine(vec![round(30.0, 10.0)]);
        three.push(Measurement::new("torch-2", &w, 60.0));
        three[0].launches = Some(12.0);
        three[1].launches = Some(480.0);
        assert!(markdown_row(&w, &three).ends_with("| 30 | 10 | 3.00x | 60 | 0.50x | 12 / 480 |"));
        let columns = Columns {
            torch: true,
            ..Columns::default()
        };
        let header = markdown_header(&columns, true);
        assert!(
            header
                .contains("| PyTorch tok/s | sequent / PyTorch | launches (sequent / burn::nn) |")
        );
        assert_eq!(
            header
                .lines()
                .map(|l| l.matches('|').count())
                .collect::<Vec<_>>(),
            [11, 11]
        );
        assert!(serde_json::to_value(&one[0]).unwrap().get("runs").is_none());
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
