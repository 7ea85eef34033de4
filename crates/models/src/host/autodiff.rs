//! The one way a hand-written backward enters Burn's autodiff graph: [`tracked`] runs an op and
//! records its backward node when a parent needs a gradient; [`register`] and
//! [`one_parent_backward`] hand the node's host-computed gradients back as tensors.

use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;

use super::{device_tensor, host};

/// Runs `op` under autodiff: with `backward` recorded over `nodes` (the op's parents) when one of
/// them needs a gradient.
pub(crate) fn tracked<B: Backend, C: CheckpointStrategy, T: Backward<B, N>, const N: usize>(
    backward: T,
    nodes: [NodeGuard; N],
    op: impl FnOnce() -> (T::State, FloatTensor<B>),
) -> FloatTensor<Autodiff<B, C>> {
    match backward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (state, out) = op();
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(op().1),
    }
}

/// Registers `values` as the gradients of the op's `parents`, in order.
pub(crate) fn register<B: Backend>(
    parents: impl IntoIterator<Item = Option<NodeId>>,
    values: impl IntoIterator<Item = (Vec<f32>, Shape)>,
    like: &FloatTensor<B>,
    grads: &mut Gradients,
) {
    for (id, (values, shape)) in parents.into_iter().zip(values) {
        if let Some(id) = id {
            grads.register::<B>(id, device_tensor::<B>(values, shape, like));
        }
    }
}

/// The backward of a one-parent op: `dx(state, g)` maps the output's gradient `g` (on the host)
/// to the parent's values and shape, which are registered as its gradient. The output's gradient
/// is consumed either way; `dx` runs only when the parent needs a gradient.
pub(crate) fn one_parent_backward<B: Backend, S>(
    ops: Ops<S, 1>,
    grads: &mut Gradients,
    dx: impl FnOnce(S, &[f32]) -> (Vec<f32>, Shape),
) {
    let [node] = ops.parents;
    let grad = grads.consume::<B>(&ops.node);
    if let Some(node) = node {
        let like = grad.clone();
        let (g, _) = host::<B>(grad);
        let (values, shape) = dx(ops.state, &g);
        grads.register::<B>(node.id, device_tensor::<B>(values, shape, &like));
    }
}
