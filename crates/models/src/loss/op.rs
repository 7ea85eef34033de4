//! The fused cross-entropy as a Burn backend extension: implemented for Flex and NdArray (one
//! vectorised pass over the logits on the host) and for their `Autodiff` wrappers (its backward
//! `(softmax - onehot(t)) / N` in one more pass). [`super::cross_entropy`] calls it on the CPU
//! backends only.

// burn-ndarray is deprecated in Burn 0.22 but still a backend sequent supports.
#![allow(deprecated)]

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, backend_extension};
use burn::tensor::Shape;

use crate::host::autodiff::{one_parent_backward, tracked};
use crate::host::math::{LANES, exp, multiversion};
use crate::host::{device_tensor, host, host_indices};

/// The fused loss of a model's output.
#[backend_extension(
    Autodiff,
    NdArray: cfg(feature = "ndarray"),
    Flex: cfg(feature = "flex")
)]
pub trait LossOps: Backend {
    /// Mean cross-entropy of `logits` `[N, V]` against the classes `targets` `[N]` -> `[1]`:
    /// `(1/N) sum_n (ln sum_j e^{x_nj} - x_{n t_n})`.
    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
}

multiversion! {
    /// Softmax of each row of `logits` `[N, V]` into `probs`, and each row's cross-entropy
    /// `-ln p[target] = ln sum_j e^{x_j} - x_target` into `losses` `[N]` (computed as
    /// `m + ln sum_j e^{x_j - m}` with `m` the row's maximum, so large logits do not overflow).
    pub fn softmax_cross_entropy(
        logits: &[f32],
        targets: &[usize],
        probs: &mut [f32],
        losses: &mut [f32],
    ) {
        let v = logits.len() / losses.len().max(1);
        for (((x, p), &target), loss) in logits
            .chunks(v)
            .zip(probs.chunks_mut(v))
            .zip(targets)
            .zip(losses.iter_mut())
        {
            // Maximum and sum in `LANES` partial results (a sequential float reduction does not
            // vectorise).
            let mut max = [f32::NEG_INFINITY; LANES];
            for j0 in (0..v).step_by(LANES) {
                let w = LANES.min(v - j0);
                for (m, &x) in max.iter_mut().zip(&x[j0..j0 + w]) {
                    *m = m.max(x);
                }
            }
            let m = max.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sums = [0f32; LANES];
            for j0 in (0..v).step_by(LANES) {
                let w = LANES.min(v - j0);
                for ((s, p), &x) in sums.iter_mut().zip(&mut p[j0..j0 + w]).zip(&x[j0..j0 + w]) {
                    *p = exp(x - m);
                    *s += *p;
                }
            }
            let sum: f32 = sums.iter().sum();
            let inv = 1.0 / sum;
            p.iter_mut().for_each(|p| *p *= inv);
            *loss = m + sum.ln() - x[target];
        }
    }
}

/// The softmax of `logits` `[N, V]` (row-major, on the host) and the mean cross-entropy against
/// `targets` `[N]`, as a `[1]` tensor like `logits`.
fn cross_entropy_host<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> (FloatTensor<B>, Vec<f32>, Vec<usize>) {
    let like = logits.clone();
    let (x, shape) = host::<B>(logits);
    let (n, v) = (shape[0], shape[1]);
    let (targets, _) = host_indices::<B>(targets, v, "cross-entropy target");
    assert_eq!(targets.len(), n, "one target a row of logits");
    let (mut probs, mut losses) = (vec![0f32; n * v], vec![0f32; n]);
    softmax_cross_entropy(&x, &targets, &mut probs, &mut losses);
    let mean = losses.iter().map(|l| *l as f64).sum::<f64>() / n.max(1) as f64;
    let loss = device_tensor::<B>(vec![mean as f32], Shape::new([1]), &like);
    (loss, probs, targets)
}

macro_rules! host_backend {
    ($backend:ty) => {
        impl LossOps for $backend {
            fn cross_entropy(
                logits: FloatTensor<Self>,
                targets: IntTensor<Self>,
            ) -> FloatTensor<Self> {
                cross_entropy_host::<Self>(logits, targets).0
            }
        }
    };
}

#[cfg(feature = "ndarray")]
host_backend!(burn::backend::NdArray);
#[cfg(feature = "flex")]
host_backend!(burn::backend::Flex);

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward {
    /// The softmax of the logits and the targets.
    type State = (Vec<f32>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        one_parent_backward::<B, _>(ops, grads, |(mut d, targets), g| {
            let n = targets.len();
            let v = d.len() / n.max(1);
            // dL/dx_nj = g (p_nj - [j = t_n]) / N
            let scale = g[0] / n as f32;
            for (row, t) in d.chunks_mut(v).zip(targets) {
                row[t] -= 1.0;
                row.iter_mut().for_each(|x| *x *= scale);
            }
            (d, Shape::new([n, v]))
        });
    }
}

impl<B: Backend, C: CheckpointStrategy> LossOps for Autodiff<B, C> {
    fn cross_entropy(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        tracked::<B, C, _, 1>(CrossEntropyBackward, [logits.node()], || {
            let (loss, probs, targets) = cross_entropy_host::<B>(logits.into_primitive(), targets);
            ((probs, targets), loss)
        })
    }
}
