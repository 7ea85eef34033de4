//! Losses of a model's output, with a fused CPU kernel.

mod op;

use burn::backend::Dispatch;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::recurrent::on_host;
use op::LossOps;

/// Mean cross-entropy of `logits` `[N, V]` against the classes `targets` `[N]`:
/// `(1/N) sum_n (ln sum_j e^{x_nj} - x_{n t_n})`, what Burn's `CrossEntropyLoss` (no smoothing,
/// weights or padding) and PyTorch's `cross_entropy` compute.
///
/// On Flex and NdArray devices it is one op (a softmax and the row losses in one vectorised pass;
/// its backward `(softmax - onehot(t)) / N` in another), where Burn's composed loss runs about
/// ten tensor ops, each with its own backward node and scalar `exp`; elsewhere it is Burn's loss.
///
/// # Panics
/// If there are no rows or no classes, a target is not a class index (`0 <= t < V`), or the
/// lengths differ.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, v] = logits.dims();
    assert!(n > 0 && v > 0, "cross-entropy of {n} rows of {v} classes");
    assert_eq!(targets.dims()[0], n, "one target a row of logits");
    if on_host(&logits.device()) {
        Tensor::from_dispatch(<Dispatch as LossOps>::cross_entropy(
            logits.into_dispatch(),
            targets.into_dispatch(),
        ))
    } else {
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets)
    }
}

/// Mean cross-entropy of a sequence model's `logits` `[B, T, V]` against `targets` `[B, T]`: the
/// [`cross_entropy`] of all `B T` steps. The steps are taken in time-major order (the mean does
/// not depend on the order), which reads the output of [`crate::time_major::every_step`] as it is
/// stored: flattening its batch-first view would copy it (through Flex's tiled transpose, about
/// 1 ms a step for the reference language model's 1120 x 64 logits).
///
/// # Panics
/// As [`cross_entropy`], or if `targets` is not `[B, T]`.
pub fn sequence_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    assert_eq!(targets.dims(), [b, t], "one target a step of the logits");
    cross_entropy(
        logits.swap_dims(0, 1).reshape([t * b, v]),
        targets.swap_dims(0, 1).reshape([t * b]),
    )
}
