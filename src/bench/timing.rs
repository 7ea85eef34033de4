//! Timing a workload: steps of training, inference or streaming generation.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use sequent_models::recurrent::{GruConfig, LstmConfig, RnnConfig};
use sequent_train::optim::FusedAdamConfig;

use super::models::{
    BurnBiGruStack, BurnBiLstmStack, BurnBiRnnStack, BurnGruStack, BurnLstmStack, BurnRnnStack,
    CharLm, SeqLayer,
};
use super::workload::{Implementation, Kind, Mode, Workload};

/// Times `steps` steps of the workload (after 2 warm-up steps) and returns tokens per second,
/// and whether the model folded its embedding into the first layer. Training needs an autodiff
/// device; the other modes run without gradients.
fn time_workload<R: SeqLayer>(
    model: CharLm<R>,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> (f64, bool) {
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
            let (mut token, mut state) = (inputs.clone().narrow(1, 0, 1), None);
            for _ in 0..w.seq {
                let (logits, s) = m.logits(token, state);
                state = Some(s);
                token = logits.argmax(2).reshape([1, 1]);
            }
            let _: i64 = token.sum().into_scalar();
        }
    };
    for _ in 0..2 {
        step();
    }
    let start = Instant::now();
    for _ in 0..steps {
        step();
    }
    let rate = (steps * batch * w.seq) as f64 / start.elapsed().as_secs_f64();
    (rate, folded)
}

/// Tokens per second of workload `w` with implementation `imp` on `device` (autodiff is turned
/// on for training and off otherwise), and whether the model folded its embedding into the
/// first layer (sequent's, per [`Workload::fold_embedding`]).
pub fn tokens_per_s(
    imp: Implementation,
    w: &Workload,
    device: &Device,
    steps: usize,
) -> (f64, bool) {
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
    match (imp, w.kind, bi) {
        (Implementation::Sequent, Kind::Lstm, _) => time!(
            LstmConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::Sequent, Kind::Gru, _) => time!(
            GruConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::Sequent, Kind::Rnn, _) => time!(
            RnnConfig::new(h, h)
                .with_num_layers(l)
                .with_bidirectional(bi)
                .init(device)
        ),
        (Implementation::BurnNn, Kind::Lstm, false) => burn_stack!(BurnLstmStack, LstmConfig),
        (Implementation::BurnNn, Kind::Gru, false) => burn_stack!(BurnGruStack, GruConfig),
        (Implementation::BurnNn, Kind::Rnn, false) => burn_stack!(BurnRnnStack, RnnConfig),
        (Implementation::BurnNn, Kind::Lstm, true) => burn_stack!(BurnBiLstmStack, BiLstmConfig),
        (Implementation::BurnNn, Kind::Gru, true) => burn_stack!(BurnBiGruStack, BiGruConfig),
        (Implementation::BurnNn, Kind::Rnn, true) => burn_stack!(BurnBiRnnStack, BiRnnConfig),
    }
}
