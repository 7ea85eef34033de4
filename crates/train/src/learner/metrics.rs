//! The burn-train metrics burn lacks: bits per character (token) for language models, mean
//! squared and mean absolute error for regression.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorReadError};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes,
    NumericEntry, SerializedEntry,
};
use burn::train::{RegressionOutput, SequenceOutput};

/// burn-train's `Numeric` for a metric whose `state` field is a [`NumericMetricState`].
macro_rules! numeric_from_state {
    ($metric:ty) => {
        impl Numeric for $metric {
            fn value(&self) -> Option<NumericEntry> {
                Some(self.state.current_value())
            }

            fn running_value(&self) -> Option<NumericEntry> {
                Some(self.state.running_value())
            }

            fn final_value(&self) -> NumericEntry {
                self.state.final_value()
            }
        }
    };
}

/// Mean next-token cross-entropy `L` (nats) and the number of targets it averages.
pub struct CrossEntropyInput {
    loss: Tensor<1>,
    targets: usize,
}

impl Adaptor<CrossEntropyInput> for SequenceOutput {
    fn adapt(&self) -> CrossEntropyInput {
        let [b, t] = self.targets.dims();
        CrossEntropyInput {
            loss: self.loss.clone(),
            targets: b * t,
        }
    }
}

/// Bits per character (per token with a word tokenizer): `L / ln 2`, averaged over targets.
#[derive(Clone)]
pub struct BitsPerCharMetric {
    name: MetricName,
    state: NumericMetricState,
}

impl Default for BitsPerCharMetric {
    fn default() -> Self {
        Self {
            name: Arc::new("Bits per char".to_string()),
            state: NumericMetricState::default(),
        }
    }
}

impl BitsPerCharMetric {
    /// A new metric.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Metric for BitsPerCharMetric {
    type Input = CrossEntropyInput;

    fn update(
        &mut self,
        input: &CrossEntropyInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let nats = input.loss.clone().mean().try_into_scalar::<f64>()?;
        self.state
            .update(nats / std::f64::consts::LN_2, input.targets);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(3)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(3)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("bits".into()),
            higher_is_better: false,
        }
        .into()
    }
}

numeric_from_state!(BitsPerCharMetric);

/// Predictions and targets `[N, F]` of a regression batch.
pub struct ErrorInput {
    output: Tensor<2>,
    targets: Tensor<2>,
}

impl Adaptor<ErrorInput> for RegressionOutput {
    fn adapt(&self) -> ErrorInput {
        ErrorInput {
            output: self.output.clone(),
            targets: self.targets.clone(),
        }
    }
}

/// Which error a [`RegressionErrorMetric`] averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorKind {
    Squared,
    Absolute,
}

/// Mean squared error `mean (y_hat - y)^2` or mean absolute error `mean |y_hat - y|` over every
/// prediction and feature (in the units the model is trained in).
#[derive(Clone)]
pub struct RegressionErrorMetric {
    name: MetricName,
    kind: ErrorKind,
    state: NumericMetricState,
}

impl RegressionErrorMetric {
    /// Mean squared error.
    pub fn mse() -> Self {
        Self::build("MSE", ErrorKind::Squared)
    }

    /// Mean absolute error.
    pub fn mae() -> Self {
        Self::build("MAE", ErrorKind::Absolute)
    }

    fn build(name: &str, kind: ErrorKind) -> Self {
        Self {
            name: Arc::new(name.to_string()),
            kind,
            state: NumericMetricState::default(),
        }
    }
}

impl Metric for RegressionErrorMetric {
    type Input = ErrorInput;

    fn update(
        &mut self,
        input: &ErrorInput,
        _metadata: &MetricMetadata,
    ) -> Result<SerializedEntry, TensorReadError> {
        let [n, f] = input.targets.dims();
        let diff = input.output.clone() - input.targets.clone();
        let err = match self.kind {
            ErrorKind::Squared => diff.powi_scalar(2),
            ErrorKind::Absolute => diff.abs(),
        };
        let value = err.mean().try_into_scalar::<f64>()?;
        self.state.update(value, n * f);
        Ok(self
            .state
            .compute_update(FormatOptions::new(self.name()).precision(4)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self
            .state
            .compute_final(FormatOptions::new(self.name()).precision(4)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }
}

numeric_from_state!(RegressionErrorMetric);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Int};

    fn metadata() -> MetricMetadata {
        MetricMetadata {
            progress: burn::data::dataloader::Progress::new(1, 1, None),
            iteration: Some(0),
            lr: None,
        }
    }

    fn final_of<M: Numeric>(m: &M) -> f64 {
        match m.final_value() {
            NumericEntry::Final(v) | NumericEntry::Value(v) => v,
            NumericEntry::Aggregated {
                aggregated_value, ..
            } => aggregated_value,
        }
    }

    #[test]
    fn regression_errors_are_weighted_means() {
        let device = Device::default();
        let mut mse = RegressionErrorMetric::mse();
        let mut mae = RegressionErrorMetric::mae();
        let batches = [
            (vec![1.0f32, 2.0], vec![0.0f32, 0.0]),
            (vec![3.0, 3.0, 3.0, 3.0], vec![3.0, 3.0, 3.0, 1.0]),
        ];
        for (o, t) in batches {
            let n = o.len();
            let input = ErrorInput {
                output: Tensor::<1>::from_data(o.as_slice(), &device).reshape([n, 1]),
                targets: Tensor::<1>::from_data(t.as_slice(), &device).reshape([n, 1]),
            };
            mse.update(&input, &metadata()).unwrap();
            mae.update(&input, &metadata()).unwrap();
        }
        // Errors 1, 2, 0, 0, 0, 2 over six predictions.
        assert!(
            (final_of(&mse) - 9.0 / 6.0).abs() < 1e-9,
            "{}",
            final_of(&mse)
        );
        assert!((final_of(&mae) - 5.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn bits_per_char_is_nats_over_ln2() {
        let device = Device::default();
        let mut bpc = BitsPerCharMetric::new();
        let out = SequenceOutput::new(
            Tensor::<1>::from_data([2.0f32], &device),
            Tensor::<3>::zeros([1, 4, 3], &device),
            None,
            Tensor::<2, Int>::zeros([1, 4], &device),
        );
        bpc.update(&out.adapt(), &metadata()).unwrap();
        assert!((final_of(&bpc) - 2.0 / std::f64::consts::LN_2).abs() < 1e-6);
    }
}
