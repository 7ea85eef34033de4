//! Regularisation inside the recurrence: input and recurrent (variational) dropout, weight drop
//! and zoneout, options of every recurrent config.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::fused::on_host;
use super::state::CellState;
use crate::error::{Result, SequentError};
use crate::rng::SplitMix64;

/// The regularisers a recurrent stack applies inside its layers (all off, `0.0`, by default).
///
/// With `p` a probability and `m ~ Bernoulli(1 - p) / (1 - p)` an inverted-dropout mask, for
/// every layer `l` and direction:
///
/// ```text
/// input_dropout      x_t      -> m_x * x_t                 one m_x [B, I] a layer and call
/// recurrent_dropout  W_hh h   -> W_hh (m_h * h_{t-1})       one m_h [B, R] a layer, direction, call
/// weight_drop        W_hh     -> m_W * W_hh                 one m_W [G*H, R] a layer, direction, call
/// zoneout            h_t      -> d_t * h_{t-1} + (1 - d_t) * h_t,   d_t ~ Bernoulli(p) a step
///                    (the LSTM's c_t alike, with its own d_t; in evaluation d_t = p)
/// ```
///
/// Input and recurrent dropout are Gal & Ghahramani's variational dropout (2016; Keras'
/// `dropout` and `recurrent_dropout`): the same mask at every step of a sequence, and the
/// recurrent mask only on the recurrent product (a GRU's `z * h_{t-1}` keeps the whole `h`).
/// Weight drop is DropConnect on the recurrent weights (Wan et al. 2013) as AWD-LSTM uses it
/// (Merity et al. 2018); the gradient reaches the entries the mask keeps. Zoneout is Krueger et
/// al. 2016. Dropout-style masks act in training only (an autodiff device and the stack's
/// `dropout` module in training); zoneout takes its expectation in evaluation. The masks come from
/// the device's random generator, so a seeded run draws the same ones.
///
/// All four run on the fused whole-sequence ops of both engines.
///
/// The options are set on the layer's config; evaluation (a device without autodiff, or the
/// module after `valid()`) runs the plain layer, with zoneout's expectation:
///
/// ```
/// use burn::tensor::{Device, Distribution, Tensor, TensorData};
/// use sequent_models::recurrent::LstmConfig;
///
/// let device = Device::flex().autodiff();
/// let lstm = LstmConfig::new(8, 16)
///     .with_recurrent_dropout(0.25)
///     .with_weight_drop(0.5)
///     .with_zoneout(0.1)
///     .init(&device);
/// assert_eq!(lstm.regularise.weight_drop, 0.5);
/// let x = Tensor::<3>::random([4, 10, 8], Distribution::Normal(0.0, 1.0), &device);
/// let (train, _) = lstm.forward(x.clone(), None); // fresh masks each call
/// let (again, _) = lstm.forward(x, None);
/// assert!((train - again).abs().max().into_scalar::<f32>() > 0.0);
///
/// // Probabilities outside [0, 1) are typed errors.
/// assert!(LstmConfig::new(8, 16).with_zoneout(1.0).try_init(&device).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Regularisation {
    /// Probability of dropping a unit of each layer's input `x_t` (one mask a sequence).
    pub input_dropout: f64,
    /// Probability of dropping a unit of `h_{t-1}` in the recurrent product (one mask a sequence).
    pub recurrent_dropout: f64,
    /// Probability of dropping an entry of `W_hh` (one mask a forward call).
    pub weight_drop: f64,
    /// Probability that a unit of `h` (and of an LSTM's `c`) keeps its previous value at a step.
    pub zoneout: f64,
}

impl Regularisation {
    /// A typed error for a probability outside `[0, 1)`.
    pub(crate) fn validate(&self) -> Result<()> {
        let named = [
            ("input_dropout", self.input_dropout),
            ("recurrent_dropout", self.recurrent_dropout),
            ("weight_drop", self.weight_drop),
            ("zoneout", self.zoneout),
        ];
        match named.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
            Some((name, p)) => Err(SequentError::InvalidConfig(format!(
                "{name} must be in [0, 1), got {p}"
            ))),
            None => Ok(()),
        }
    }

    /// Recurrent dropout's probability in `training`, 0 otherwise.
    pub(crate) fn recurrent_dropout_in(&self, training: bool) -> f64 {
        if training {
            self.recurrent_dropout
        } else {
            0.0
        }
    }
}

/// An inverted-dropout mask `Bernoulli(1 - p) / (1 - p)` of `shape` in `training`, or `None`
/// (nothing drawn) if `p = 0` or not training.
pub(crate) fn dropout_mask<const D: usize>(
    p: f64,
    shape: [usize; D],
    device: &Device,
    training: bool,
) -> Option<Tensor<D>> {
    (training && p > 0.0).then(|| bernoulli(1.0 - p, shape, device) * (1.0 / (1.0 - p)))
}

/// A 0/1 mask of `shape` on `device` whose entries are 1 with probability `keep`, drawn from the
/// device's random generator.
///
/// On the host engine (Flex, NdArray) the device gives only the seed, 48 bits, and the crate's
/// SplitMix64 draws the entries: Flex's own Bernoulli draw takes about 22 ns an entry (5.7 ms
/// for the `[1024, 256]` weight-drop mask of an LSTM layer at `H = 256`, against 0.05 ms for an
/// elementwise product of the same size; 2-core AMD EPYC, 5 December 2026), a fifth of the
/// reference training step for a 2-layer LSTM. Elsewhere the device draws the entries itself.
fn bernoulli<const D: usize>(keep: f64, shape: [usize; D], device: &Device) -> Tensor<D> {
    if !on_host(device) {
        return Tensor::random(shape, Distribution::Bernoulli(keep), device);
    }
    let entries = host_bernoulli(keep, shape.iter().product(), device);
    Tensor::from_data(TensorData::new(entries, shape), device)
}

/// The entries of [`bernoulli`] on the host engine, `n` of them, as values on the host.
fn host_bernoulli(keep: f64, n: usize, device: &Device) -> Vec<f32> {
    let seed = Tensor::<1>::random([2], Distribution::Default, device)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("two f32 draws")
        .iter()
        .fold(0u64, |s, u| (s << 24) | (u * (1 << 24) as f32) as u64);
    SplitMix64::new(seed).bernoulli(n, keep)
}

/// Zoneout's per-step masks of one layer direction: `d_t` for `h` `[T, B, R]` and for `c`
/// `[T, B, H]` (LSTM) in training; `None` in evaluation, where the expectation `p` is used.
pub(crate) struct Zoneout {
    p: f64,
    masks: Option<(Tensor<3>, Option<Tensor<3>>)>,
}

impl Zoneout {
    /// Zoneout with probability `p` over `steps` steps of `start`'s shape; masks drawn if
    /// `training`.
    pub(crate) fn new(p: f64, steps: usize, start: &CellState, training: bool) -> Self {
        let masks = training.then(|| {
            let mut masks = Self::masks(p, steps, start).into_iter();
            (masks.next().expect("h's masks"), masks.next())
        });
        Self { p, masks }
    }

    /// The masks [`Self::new`] draws in training for `steps` steps of `start`'s shape:
    /// `[T, B, R]` for `h` and then (LSTM) `[T, B, H]` for `c`.
    pub(crate) fn masks(p: f64, steps: usize, start: &CellState) -> Vec<Tensor<3>> {
        std::iter::once(&start.hidden)
            .chain(start.cell.as_ref())
            .map(|t| {
                let [batch, width] = t.dims();
                bernoulli(p, [steps, batch, width], &t.device())
            })
            .collect()
    }

    /// On the host engine, the masks [`Self::new`] draws in training for `steps` steps of
    /// `start`'s shape, as values on the host: `[T, B, R]` for `h` and then (LSTM) `[T, B, H]`
    /// for `c` (the same entries from the same seeds, without the tensors).
    pub(crate) fn host_masks(p: f64, steps: usize, start: &CellState) -> Vec<Vec<f32>> {
        std::iter::once(&start.hidden)
            .chain(start.cell.as_ref())
            .map(|t| host_bernoulli(p, steps * t.dims().iter().product::<usize>(), &t.device()))
            .collect()
    }

    /// `next` after zoneout at step `t` from `previous`.
    pub(crate) fn apply(&self, t: usize, next: CellState, previous: &CellState) -> CellState {
        let keep = |new: Tensor<2>, old: &Tensor<2>, mask: Option<&Tensor<3>>| match mask {
            Some(m) => {
                let [_, batch, width] = m.dims();
                let d = m.clone().narrow(0, t, 1).reshape([batch, width]);
                new.clone() + (old.clone() - new) * d
            }
            None => new * (1.0 - self.p) + old.clone() * self.p,
        };
        let (h_mask, c_mask) = match &self.masks {
            Some((h, c)) => (Some(h), c.as_ref()),
            None => (None, None),
        };
        CellState {
            hidden: keep(next.hidden, &previous.hidden, h_mask),
            cell: match (next.cell, &previous.cell) {
                (Some(new), Some(old)) => Some(keep(new, old, c_mask)),
                _ => None,
            },
        }
    }
}
