//! Adam in one pass over each parameter on the CPU backends.
//!
//! Burn's [`Adam`] updates a parameter with about ten tensor ops (each allocating a tensor the
//! size of the parameter), which on Flex cost about 5 ms of a 50 ms training step of the
//! reference char-LSTM (1.1 M parameters). [`FusedAdam`] computes the same update with the same
//! state ([`AdamState`], so records and checkpoints are interchangeable with Burn's Adam) in one
//! loop that reads the gradient and writes the parameter and both moments in place, on Flex and
//! NdArray devices for f32 parameters; on every other device, for other float types and with
//! AMSGrad, it runs Burn's [`Adam`].
//!
//! The update, for step `t` (from 1), gradient `g` (plus `lambda p` with weight decay `lambda`):
//!
//! ```text
//! m = beta_1 m + (1 - beta_1) g
//! v = beta_2 v + (1 - beta_2) g^2
//! p = p - lr * m * c / (sqrt(v) + eps * s),   s = sqrt(1 - beta_2^t),  c = s / (1 - beta_1^t)
//! ```
//!
//! which is PyTorch's `torch.optim.Adam` with its bias corrections folded into `c` and `s`, as
//! Burn writes it.

use burn::config::Config;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Configuration of [`FusedAdam`], with [`AdamConfig`]'s fields and defaults.
#[derive(Config, Debug)]
pub struct FusedAdamConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to `sqrt(v)` (Burn's default; PyTorch's is `1e-8`).
    #[config(default = 1e-5)]
    pub epsilon: f32,
    /// AMSGrad (runs Burn's Adam).
    #[config(default = false)]
    pub amsgrad: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: Option<WeightDecayConfig>,
    /// Gradient clipping, per parameter as in Burn's optimizers.
    pub grad_clipping: Option<GradientClippingConfig>,
}

impl FusedAdamConfig {
    /// The optimizer alone (for [`ModuleOptimizer::with_group`]).
    pub fn build(&self) -> FusedAdam {
        let mut burn = AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_amsgrad(self.amsgrad);
        if let Some(decay) = &self.weight_decay {
            burn = burn.with_weight_decay(Some(WeightDecayConfig::new(decay.penalty)));
        }
        FusedAdam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            penalty: self.weight_decay.as_ref().map_or(0.0, |d| d.penalty),
            composed: self.amsgrad,
            burn: burn.build(),
        }
    }

    /// The optimizer for a whole module, with the configured clipping.
    pub fn init(&self) -> ModuleOptimizer {
        let mut optim = ModuleOptimizer::from(self.build());
        if let Some(clipping) = &self.grad_clipping {
            optim = optim.with_grad_clipping(clipping.init());
        }
        optim
    }
}

/// Adam with a one-pass update on the CPU backends (see the [module](self)).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    penalty: f32,
    /// Always Burn's update (AMSGrad).
    composed: bool,
    burn: Adam,
}

/// Parameters updated in one piece below this size; larger ones are split between threads.
const PARALLEL_CHUNK: usize = 1 << 15;

impl FusedAdam {
    /// The fused update of `p`, `m`, `v` from `g` at step `time` (see the [module](self)).
    fn update(&self, lr: f32, time: usize, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (b1, b2, penalty) = (self.beta_1, self.beta_2, self.penalty);
        let s = (1.0 - b2.powi(time as i32)).sqrt();
        let c = s / (1.0 - b1.powi(time as i32));
        let eps = self.epsilon * s;
        let chunk = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g + penalty * *p;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * (g * g);
                *p -= lr * (*m * c / (v.sqrt() + eps));
            }
        };
        if p.len() <= PARALLEL_CHUNK {
            return chunk(p, g, m, v);
        }
        p.par_chunks_mut(PARALLEL_CHUNK)
            .zip(g.par_chunks(PARALLEL_CHUNK))
            .zip(m.par_chunks_mut(PARALLEL_CHUNK))
            .zip(v.par_chunks_mut(PARALLEL_CHUNK))
            .for_each(|(((p, g), m), v)| chunk(p, g, m, v));
    }
}

/// A tensor's values, moved out without a copy where its backend allows (Flex, uniquely owned).
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        let f32s = [tensor.dtype(), grad.dtype()] == [DType::F32; 2];
        if self.composed || !f32s || !sequent_models::recurrent::on_host(&device) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                values(s.momentum.moment_1),
                values(s.momentum.moment_2),
            ),
            None => {
                let zeros = vec![0f32; shape.num_elements()];
                (1, zeros.clone(), zeros)
            }
        };
        let (mut p, g, mut m, mut v) = (values(tensor), values(grad), m, v);
        self.update(lr as f32, time, &mut p, &g, &mut m, &mut v);
        let to_tensor =
            |x: Vec<f32>| Tensor::<D>::from_data(TensorData::new(x, shape.clone()), &device);
        let momentum = AdaptiveMomentumState::new(time, to_tensor(m), to_tensor(v));
        (to_tensor(p), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}
