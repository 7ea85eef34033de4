//! Training forecasters on sliding windows of a series (mean squared error).

use crate::error::TrainError;
use std::marker::PhantomData;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::{Module, ModuleDisplay};
use burn::nn::loss::{MseLoss, Reduction};
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::metric::LossMetric;
use burn::train::{RegressionOutput, SupervisedTraining};
use sequent_models::classical::{AutoregressiveMlp, LatentAutoregressive};
use sequent_models::forecast::Forecaster;
use sequent_models::heads::{DirectForecaster, SequenceForecaster};
use sequent_models::recurrent::CellKind;

use crate::data::epoch::{EpochDataset, Tagged};
use crate::learner::control::Split;
use crate::learner::metrics::RegressionErrorMetric;
use crate::learner::task::{Step, Task, TaskBatch, TaskLearner};

/// A forecaster that can be trained on windows of `tau + 1` rows.
pub trait SeriesModel: Module + ModuleDisplay + Forecaster + 'static {
    /// Predictions and their targets `[N, F]` for windows `[B, tau + 1, F + C]` of the rows the
    /// model reads (`[x_s, c_{s+1}]` with `C` covariates, see [`sequent_models::forecast`]). By
    /// default the model predicts the last row's values from the `tau` rows before it (`N = B`).
    fn training_pairs(&self, windows: Tensor<3>) -> (Tensor<2>, Tensor<2>) {
        let [b, n, width] = windows.dims();
        let f = width - self.covariates();
        let pred = self.predict_next(windows.clone().narrow(1, 0, n - 1));
        (
            pred,
            windows.narrow(1, n - 1, 1).narrow(2, 0, f).reshape([b, f]),
        )
    }
}

impl SeriesModel for AutoregressiveMlp {}

impl<C: CellKind> SeriesModel for SequenceForecaster<C> {}

/// The latent model is trained at every step of the window (teacher forcing): `f(h_t)` predicts
/// `x_{t+1}` for `t = 1..tau`, `N = B * tau`.
impl<C: CellKind> SeriesModel for LatentAutoregressive<C> {
    fn training_pairs(&self, windows: Tensor<3>) -> (Tensor<2>, Tensor<2>) {
        let [b, n, width] = windows.dims();
        let f = width - self.covariates;
        let (pred, _) = self.forward(windows.clone().narrow(1, 0, n - 1), None);
        let targets = windows.narrow(1, 1, n - 1).narrow(2, 0, f);
        (
            pred.reshape([b * (n - 1), f]),
            targets.reshape([b * (n - 1), f]),
        )
    }
}

/// The direct forecaster is trained on windows of `tau + H` rows: the first `tau` are read, the
/// values of the last `H` are the targets (`N = B * H`). Its loaders take `tau + H - 1` as the
/// window (see [`forecast_loaders`]).
impl<C: CellKind> SeriesModel for DirectForecaster<C> {
    fn training_pairs(&self, windows: Tensor<3>) -> (Tensor<2>, Tensor<2>) {
        let [b, _, _] = windows.dims();
        let (tau, h, f) = (self.window, self.horizon, self.features);
        let pred = self.forward(windows.clone().narrow(1, 0, tau));
        let targets = windows.narrow(1, tau, h).narrow(2, 0, f);
        (pred.reshape([b * h, f]), targets.reshape([b * h, f]))
    }
}

/// Windows of `tau + 1` consecutive rows, `[B, tau + 1, F]`.
#[derive(Clone, Debug)]
pub struct WindowBatch {
    /// The windows.
    pub windows: Tensor<3>,
    /// Epoch (from 0) of the batch.
    pub epoch: usize,
}

/// Stacks windows (`Vec` of `tau + 1` rows of `F` values) into a [`WindowBatch`].
#[derive(Clone, Debug, Default)]
pub struct WindowBatcher;

impl Batcher<Tagged<Vec<Vec<f32>>>, WindowBatch> for WindowBatcher {
    fn batch(&self, items: Vec<Tagged<Vec<Vec<f32>>>>, device: &Device) -> WindowBatch {
        let epoch = items[0].epoch;
        let (n, f) = (items[0].item.len(), items[0].item[0].len());
        let b = items.len();
        let flat: Vec<f32> = items.into_iter().flat_map(|t| t.item).flatten().collect();
        WindowBatch {
            windows: Tensor::from_data(TensorData::new(flat, [b, n, f]), device),
            epoch,
        }
    }
}

/// Every window of `tau + 1` rows of `series`, reshuffled each epoch from `(seed, epoch)` when
/// `shuffle` is set, `batch` per batch. Errors if the series is shorter than `tau + 1`.
pub fn window_loader(
    series: &[Vec<f32>],
    tau: usize,
    batch: usize,
    shuffle: Option<u64>,
    start_epoch: usize,
) -> Result<Arc<dyn DataLoader<WindowBatch>>, TrainError> {
    if tau == 0 || batch == 0 {
        return Err(TrainError::Invalid(
            "tau and the batch size must be at least 1".into(),
        ));
    }
    if series.len() <= tau {
        return Err(TrainError::Invalid(format!(
            "a series of {} steps has no window of tau {tau} + 1",
            series.len()
        )));
    }
    let windows: Vec<Vec<Vec<f32>>> = series.windows(tau + 1).map(<[_]>::to_vec).collect();
    let data = EpochDataset::new(windows, shuffle);
    Ok(DataLoaderBuilder::new(WindowBatcher)
        .batch_size(batch)
        .build(data.starting_at_epoch(start_epoch)))
}

/// The loaders of a series split by time at `train_len`: every window of `tau + 1` rows of
/// `series[..train_len]` for training (reshuffled each epoch from `(seed, epoch)`), and for
/// validation the windows whose targets are the held-out rows `series[train_len..]` (their inputs
/// may reach back into the training part, their targets never do).
pub fn forecast_loaders(
    series: &[Vec<f32>],
    train_len: usize,
    tau: usize,
    batch: usize,
    seed: u64,
    start_epoch: usize,
) -> Result<(WindowLoader, WindowLoader), TrainError> {
    if train_len < tau || train_len >= series.len() {
        return Err(TrainError::Invalid(format!(
            "a split at {train_len} of {} steps leaves no windows of tau {tau} on one side",
            series.len()
        )));
    }
    let train = window_loader(&series[..train_len], tau, batch, Some(seed), start_epoch)?;
    let valid = window_loader(&series[train_len - tau..], tau, batch, None, start_epoch)?;
    Ok((train, valid))
}

/// A loader of [`WindowBatch`]es.
pub type WindowLoader = Arc<dyn DataLoader<WindowBatch>>;

/// Forecasting: `L = mean (x_hat - x)^2` over the model's training pairs.
#[derive(Clone, Debug)]
pub struct Forecasting<M>(PhantomData<fn() -> M>);

impl<M> Default for Forecasting<M> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl TaskBatch for WindowBatch {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn device(&self) -> Device {
        self.windows.device()
    }
}

impl<M: SeriesModel> Task for Forecasting<M> {
    type Model = M;
    type Batch = WindowBatch;
    type Output = RegressionOutput;

    fn step(&self, model: &M, batch: WindowBatch, _split: Split) -> Step<RegressionOutput> {
        let (output, targets) = model.training_pairs(batch.windows);
        let loss = MseLoss::new().forward(output.clone(), targets.clone(), Reduction::Mean);
        Step {
            loss: loss.clone(),
            targets: targets.dims()[0],
            output: RegressionOutput::new(loss, output, targets),
        }
    }

    fn metrics(
        training: SupervisedTraining<TaskLearner<Self>>,
    ) -> SupervisedTraining<TaskLearner<Self>> {
        training.metrics((
            LossMetric::new(),
            RegressionErrorMetric::mse(),
            RegressionErrorMetric::mae(),
        ))
    }
}
