//! `FusedAdam` against Burn's `Adam` (the same update and state) and against the analytic first
//! step `p - lr g / (|g| + eps)`, on both CPU backends.

mod common;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor};
use sequent_models::heads::LanguageModel;
use sequent_models::recurrent::LstmKind;
use sequent_train::optim::FusedAdamConfig;

/// All parameters of `model`, flattened, in visiting order.
fn parameters(model: &LanguageModel<LstmKind>) -> Vec<f32> {
    let mut out = Vec::new();
    struct Collect<'a>(&'a mut Vec<f32>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.extend(
                param
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .expect("f32 values"),
            );
        }
    }
    model.visit(&mut Collect(&mut out));
    out
}

/// A small LSTM language model and a batch of tokens for it (drawn once: the tests of a binary
/// share the backend's generator, so a second draw would differ).
fn setup(device: &Device) -> (LanguageModel<LstmKind>, Tensor<2, Int>) {
    let model = common::lm(device, 3);
    let tokens = Tensor::<2, Int>::random([4, 7], Distribution::Uniform(0.0, 5.0), device);
    (model, tokens)
}

/// The loss the tests minimise.
fn loss(model: &LanguageModel<LstmKind>, tokens: &Tensor<2, Int>) -> Tensor<1> {
    let (logits, _) = model.forward(tokens.clone(), None);
    logits.powi_scalar(2).mean()
}

/// `steps` training steps of `model` on `tokens` with `optim`; the parameters after each.
fn train(
    (mut model, tokens): (LanguageModel<LstmKind>, Tensor<2, Int>),
    mut optim: ModuleOptimizer,
    lr: f64,
    steps: usize,
) -> Vec<Vec<f32>> {
    let mut after = Vec::new();
    for _ in 0..steps {
        let grads = GradientsParams::from_grads(loss(&model, &tokens).backward(), &model);
        model = optim.step(lr, model, grads);
        after.push(parameters(&model));
    }
    after
}

#[allow(clippy::vec_init_then_push)] // each push is behind its own feature
fn backends() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex().autodiff()));
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    out.push(("ndarray", Device::ndarray().autodiff()));
    out
}

#[test]
fn fused_adam_takes_burns_adam_steps() {
    for (name, device) in backends() {
        let start = setup(&device);
        for decay in [None, Some(0.1)] {
            let fused = FusedAdamConfig::new()
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .init();
            let burn = AdamConfig::new()
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .init();
            let (a, b) = (
                train(start.clone(), fused, 0.01, 5),
                train(start.clone(), burn, 0.01, 5),
            );
            for (step, (a, b)) in a.iter().zip(&b).enumerate() {
                let diff = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(
                    diff < 1e-6,
                    "{name}, decay {decay:?}: step {} differs by {diff}",
                    step + 1
                );
            }
        }
    }
}

#[test]
fn first_step_moves_each_parameter_by_lr_times_the_gradient_sign() {
    for (name, device) in backends() {
        let start = setup(&device);
        let before = parameters(&start.0);
        // A large epsilon makes the step size depend on |g|: lr g / (|g| + eps).
        let (lr, eps) = (0.5f32, 1e-3f32);
        let after = train(
            start.clone(),
            FusedAdamConfig::new().with_epsilon(eps).init(),
            lr as f64,
            1,
        );
        let (model, tokens) = start;
        let grads = GradientsParams::from_grads(loss(&model, &tokens).backward(), &model);
        let mut g = Vec::new();
        struct Grads<'a>(&'a GradientsParams, &'a mut Vec<f32>);
        impl burn::module::ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let grad = self
                    .0
                    .get::<D>(param.id)
                    .expect("every parameter has a gradient");
                self.1
                    .extend(grad.into_data().try_to_vec::<f32>().expect("f32"));
            }
        }
        model.visit(&mut Grads(&grads, &mut g));
        for ((p0, p1), g) in before.iter().zip(&after[0]).zip(&g) {
            let want = p0 - lr * g / (g.abs() + eps);
            assert!(
                (p1 - want).abs() < 1e-5,
                "{name}: {p0} -> {p1}, want {want} (g = {g})"
            );
        }
    }
}
