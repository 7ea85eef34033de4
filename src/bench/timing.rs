//! Timing a workload: steps of training, inference or streaming generation, and on the CubeCL
//! devices (wgpu, cuda) the kernel launches of a step.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use sequent_models::recurrent::{Engine, GruConfig, Kernels, LstmConfig, RnnConfig};
use sequent_train::optim::FusedAdamConfig;

use super::models::{
    BurnBiGruStack, BurnBiLstmStack, BurnBiRnnStack, BurnGruStack, BurnLstmStack, BurnRnnStack,
    CharLm, SeqLayer,
};
use super::workload::{Implementation, Kind, LayerOption, Mode, Workload};

/// What [`tokens_per_s`] measures of a workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timed {
    /// Tokens per second.
    pub rate: f64,
    /// Whether the model folded its embedding into the first layer.
    pub folded: bool,
    /// On a CubeCL device (wgpu, cuda): the kernels launched a training step, a forward pass or
    /// (streaming) a generated token, counted over the step after the warm-up.
    pub launches: Option<f64>,
}

/// Times `steps` steps of the workload (after 2 warm-up steps; on a CubeCL device the first step
/// after them is counted in launches, untimed). Training needs an autodiff device; the other
/// modes run without gradients.
fn time_workload<R: SeqLayer>(
    model: CharLm<R>,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> Timed {
    let batch = if w.mode == Mode::Stream { 1 } else { w.batch };
    // Streaming runs the model one step at a time.
    let call_steps = if w.mode == Mode::Stream { 1 } else { w.seq };
    let folded = model.folds_embedding(w.vocab, call_steps, batch, device);
    let tokens = Tensor::<2, Int>::random(
        [batch, w.seq + 1],
        Distribution::Uniform(0.0, w.vocab as f64),
        device,
    );
    let inputs = tokens.clone().narrow(1, 0, w.seq);
    let targets = tokens.narrow(1, 1, w.seq);
    let mut model = Some(model);
    let mut optim = FusedAdamConfig::new().init();
    let mut step = || match w.mode {
        Mode::Train => {
            let m = model.take().expect("model");
            let loss = m.loss(inputs.clone(), targets.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(1e-3, m, grads));
            let _: f32 = loss.into_scalar(); // wait for the step to finish
        }
        Mode::Infer => {
            let (logits, _) = model.as_ref().expect("model").logits(inputs.clone(), None);
            let _: f32 = logits.sum().into_scalar();
        }
        Mode::Stream => {
            let m = model.as_ref().expect("model");
            let token = m.stream(inputs.clone().narrow(1, 0, 1), w.seq);
            let _: i64 = token.sum().into_scalar();
        }
    };
    for _ in 0..2 {
        step();
    }
    let launches = launches(device, &mut step).map(|n| match w.mode {
        Mode::Stream => n as f64 / w.seq as f64,
        _ => n as f64,
    });
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    let rate = (steps * batch * w.seq) as f64 / start.elapsed().as_secs_f64();
    Timed {
        rate,
        folded,
        launches,
    }
}

/// The kernel launches of one `step` on a CubeCL device; `None` elsewhere.
fn launches(device: &Device, step: &mut impl FnMut()) -> Option<usize> {
    if Kernels::Fused.engine(device) != Engine::Cube {
        return None;
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    return Some(sequent_models::device::count_launches(step));
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = step;
        None
    }
}

/// Tokens per second of workload `w` with implementation `imp` on `device` (autodiff is turned
/// on for training and off otherwise), whether the model folded its embedding into the first
/// layer (sequent's, per [`Workload::fold_embedding`]), and the kernel launches of a step on a
/// CubeCL device.
pub fn tokens_per_s(imp: Implementation, w: &Workload, device: &Device, steps: usize) -> Timed {
    let device = if w.mode == Mode::Train {
        device.clone().autodiff()
    } else {
        device.clone().without_autodiff()
    };
    let device = &device;
    let (h, l, bi) = (w.hidden, w.layers, w.bidirectional);
    // Layer k's input width (`burn::nn` has no `num_layers`).
    let width = |k: usize| if k > 0 { w.directions() * h } else { h };
    macro_rules! time {
        ($rnn:expr) => {
            time_workload(CharLm::new($rnn, w, device), w, device, steps)
        };
    }
    macro_rules! burn_stack {
        ($stack:ident, $config:ident) => {
            time!($stack {
                layers: (0..l)
                    .map(|k| burn::nn::$config::new(width(k), h, true).init(device))
                    .collect(),
            })
        };
    }
    // sequent's own layers run its fused kernels; the per-step path, the composed tensor ops.
    let kernels = match imp {
        Implementation::PerStep => Kernels::Composed,
        _ => Kernels::Fused,
    };
    let option = match imp {
        Implementation::SequentWith(option) => Some(option),
        _ => None,
    };
    // The shared options of every config, and the cell's own ones where it has them.
    macro_rules! sequent {
        ($config:expr, |$c:ident| $own:expr) => {{
            let $c = $config
                .with_num_layers(l)
                .with_bidirectional(bi)
                .with_kernels(kernels);
            let $c = match option {
                Some(LayerOption::InputDropout) => $c.with_input_dropout(0.25),
                Some(LayerOption::RecurrentDropout) => $c.with_recurrent_dropout(0.25),
                Some(LayerOption::WeightDrop) => $c.with_weight_drop(0.5),
                Some(LayerOption::Zoneout) => $c.with_zoneout(0.1),
                _ => $c,
            };
            time!($own.init(device))
        }};
    }
    let own = |o: LayerOption| option == Some(o);
    match (imp, w.kind, bi) {
        (Implementation::BurnNn, _, _) => {}
        (_, Kind::Lstm, _) => {
            return sequent!(LstmConfig::new(h, h), |c| c
                .with_layer_norm(own(LayerOption::LayerNorm))
                .with_proj_size(if own(LayerOption::Proj) { h / 2 } else { 0 }));
        }
        (_, Kind::Gru, _) => {
            return sequent!(GruConfig::new(h, h), |c| c
                .with_layer_norm(own(LayerOption::LayerNorm)));
        }
        (_, Kind::Rnn, _) => return sequent!(RnnConfig::new(h, h), |c| c),
    }
    match (w.kind, bi) {
        (Kind::Lstm, false) => burn_stack!(BurnLstmStack, LstmConfig),
        (Kind::Gru, false) => burn_stack!(BurnGruStack, GruConfig),
        (Kind::Rnn, false) => burn_stack!(BurnRnnStack, RnnConfig),
        (Kind::Lstm, true) => burn_stack!(BurnBiLstmStack, BiLstmConfig),
        (Kind::Gru, true) => burn_stack!(BurnBiGruStack, BiGruConfig),
        (Kind::Rnn, true) => burn_stack!(BurnBiRnnStack, BiRnnConfig),
    }
}
