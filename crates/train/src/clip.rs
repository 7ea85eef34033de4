//! Global-norm gradient clipping with PyTorch's `clip_grad_norm_` semantics (Burn's built-in
//! clipping works per parameter tensor).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Scales all gradients of `module` by `min(1, max_norm / (||g|| + 1e-6))`, where
/// `||g|| = sqrt(sum_p ||g_p||^2)` is the norm of all gradients together, exactly as
/// `torch.nn.utils.clip_grad_norm_(params, max_norm)` does. Returns the clipped gradients and the
/// total norm before clipping.
pub fn clip_grad_norm<M: Module>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
) -> (GradientsParams, f64) {
    let mut norm = SquaredNorm {
        grads: &grads,
        sum: None,
    };
    module.visit(&mut norm);
    let Some(sum) = norm.sum else {
        return (grads, 0.0);
    };
    let total = sum.sqrt().into_scalar::<f64>();
    let coef = max_norm / (total + 1e-6);
    if coef >= 1.0 {
        return (grads, total);
    }
    let mut scale = Scale { grads, coef };
    module.visit(&mut scale);
    (scale.grads, total)
}

/// Adds up `||g_p||^2` on the device.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + sq,
                None => sq,
            });
        }
    }
}

/// Multiplies every gradient by `coef`.
struct Scale {
    grads: GradientsParams,
    coef: f64,
}

impl ModuleVisitor for Scale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g * self.coef);
        }
    }
}
