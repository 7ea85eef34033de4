//! The regularisers inside the recurrence (`Regularisation`): input and recurrent dropout, weight
//! drop and zoneout. In evaluation the dropout-style options leave the layer as it is and zoneout
//! takes its expectation; in training the masks keep `1 - p` of the units, stay fixed over a
//! sequence (dropout) or change every step (zoneout), and weight drop's gradient is zero on the
//! dropped entries; the fused path equals the composed one under the same seed.

mod common;

use common::{assert_seeded_fused_equals_composed, max_diff};

use std::sync::{Mutex, MutexGuard};

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use sequent_models::recurrent::{
    CellKind, GruConfig, Kernels, LstmConfig, Recurrent, RecurrentState, Rnn, RnnConfig,
};

const BATCH: usize = 16;

/// The device's random generator is shared by the process: the tests take turns, so that a
/// seeded run draws the masks it seeded.
static RNG: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}
const WIDTH: usize = 64;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Asserts that `count` of `total` draws kept with probability `keep` is within 4 standard
/// deviations of `keep * total`.
fn assert_rate(what: &str, count: usize, total: usize, keep: f64) {
    let (n, mean) = (total as f64, keep * total as f64);
    let sd = (n * keep * (1.0 - keep)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= 4.0 * sd,
        "{what}: {count} of {total} kept, expected about {mean:.0}"
    );
}

/// A one-layer tanh RNN `WIDTH` wide without biases, with `W_ih` and `W_hh` as given.
fn rnn(config: RnnConfig, w_ih: f32, w_hh: f32, device: &Device) -> Rnn {
    let mut layer = config.with_bias(false).init(device);
    let eye = Tensor::<2>::eye(WIDTH, device);
    let w = &mut layer.layers[0].forward;
    w.weight_ih = Param::from_tensor(eye.clone() * w_ih);
    w.weight_hh = Param::from_tensor(eye * w_hh);
    layer
}

fn training_device() -> Device {
    common::backends()[0].1.clone()
}

#[test]
fn evaluation_equals_the_plain_layer() {
    let _turn = one_at_a_time();
    for (backend, device) in common::backends() {
        let plain_device = device.clone().without_autodiff();
        let x = Tensor::<3>::random([3, 7, 5], Distribution::Normal(0.0, 1.0), &plain_device);
        macro_rules! check {
            ($name:literal, $config:expr) => {{
                let plain = $config.init(&plain_device);
                let regularised = $config
                    .with_input_dropout(0.3)
                    .with_recurrent_dropout(0.4)
                    .with_weight_drop(0.5)
                    .init(&plain_device)
                    .load_record(plain.clone().into_record());
                let (a, sa) = plain.forward(x.clone(), None);
                let (b, sb) = regularised.forward(x.clone(), None);
                assert_eq!(values(a), values(b), "{backend} {}: outputs", $name);
                assert_eq!(values(sa.hidden), values(sb.hidden), "{backend} {}", $name);
            }};
        }
        check!("rnn", RnnConfig::new(5, 6).with_num_layers(2));
        check!("lstm", LstmConfig::new(5, 6).with_bidirectional(true));
        check!("gru", GruConfig::new(5, 6).with_num_layers(2));
    }
}

#[test]
fn recurrent_dropout_keeps_one_mask_a_sequence() {
    let _turn = one_at_a_time();
    let device = training_device();
    let p = 0.3;
    // W_ih = 0, W_hh = I: h_1 = tanh(m * h_0 / (1 - p)), h_2 = tanh(m * h_1 / (1 - p)).
    let layer = rnn(
        RnnConfig::new(WIDTH, WIDTH).with_recurrent_dropout(p),
        0.0,
        1.0,
        &device,
    );
    let x = Tensor::<3>::zeros([BATCH, 2, WIDTH], &device);
    let h0 = Tensor::<3>::full([1, BATCH, WIDTH], 0.5, &device);
    let (out, _) = layer.forward(x, Some(RecurrentState::new(h0)));
    let h1 = values(out.clone().narrow(1, 0, 1));
    let h2 = values(out.narrow(1, 1, 1));
    let kept = (0.5 / (1.0 - p) as f32).tanh();
    for (a, b) in h1.iter().zip(&h2) {
        assert!(*a == 0.0 || (a - kept).abs() < 1e-6, "h_1 entry {a}");
        assert_eq!(*a == 0.0, *b == 0.0, "the step-2 mask is the step-1 mask");
    }
    let count = h1.iter().filter(|v| **v != 0.0).count();
    assert_rate("recurrent dropout", count, h1.len(), 1.0 - p);
}

#[test]
fn input_dropout_keeps_one_mask_a_sequence() {
    let _turn = one_at_a_time();
    let device = training_device();
    let p = 0.4;
    // W_ih = I, W_hh = 0: h_t = tanh(m * x_t / (1 - p)), the same m at every step.
    let layer = rnn(
        RnnConfig::new(WIDTH, WIDTH).with_input_dropout(p),
        1.0,
        0.0,
        &device,
    );
    let x = Tensor::<3>::ones([BATCH, 3, WIDTH], &device);
    let (out, _) = layer.forward(x, None);
    let steps: Vec<Vec<f32>> = (0..3)
        .map(|t| values(out.clone().narrow(1, t, 1)))
        .collect();
    let kept = (1.0 / (1.0 - p) as f32).tanh();
    for v in &steps[0] {
        assert!(*v == 0.0 || (v - kept).abs() < 1e-6, "entry {v}");
    }
    assert_eq!(steps[0], steps[1]);
    assert_eq!(steps[0], steps[2]);
    let count = steps[0].iter().filter(|v| **v != 0.0).count();
    assert_rate("input dropout", count, steps[0].len(), 1.0 - p);
}

#[test]
fn zoneout_keeps_units_with_its_probability_and_its_expectation_in_evaluation() {
    let _turn = one_at_a_time();
    let device = training_device();
    let p = 0.25;
    // W = 0: the cell's own update is 0, so h_t is 1 where every step so far kept the unit.
    let config = RnnConfig::new(WIDTH, WIDTH).with_zoneout(p);
    let x = Tensor::<3>::zeros([BATCH, 2, WIDTH], &device);
    let h0 = || RecurrentState::new(Tensor::<3>::ones([1, BATCH, WIDTH], &device));
    let (out, _) = rnn(config.clone(), 0.0, 0.0, &device).forward(x.clone(), Some(h0()));
    let h1 = values(out.clone().narrow(1, 0, 1));
    let h2 = values(out.narrow(1, 1, 1));
    assert!(h1.iter().chain(&h2).all(|v| *v == 0.0 || *v == 1.0));
    let count = |h: &[f32]| h.iter().filter(|v| **v == 1.0).count();
    assert_rate("zoneout step 1", count(&h1), h1.len(), p);
    assert_rate("zoneout steps 1 and 2", count(&h2), h2.len(), p * p);

    // In evaluation h_t = p h_{t-1} + (1 - p) * 0 = p^t exactly.
    let plain_device = device.clone().without_autodiff();
    let layer = rnn(config, 0.0, 0.0, &plain_device);
    let h0 = RecurrentState::new(Tensor::<3>::ones([1, BATCH, WIDTH], &plain_device));
    let x = Tensor::<3>::zeros([BATCH, 2, WIDTH], &plain_device);
    let (out, last) = layer.forward(x, Some(h0));
    for (t, expected) in [(0, p), (1, p * p)] {
        let step = values(out.clone().narrow(1, t, 1));
        assert!(step.iter().all(|v| (v - expected as f32).abs() < 1e-7));
    }
    assert!(
        values(last.hidden)
            .iter()
            .all(|v| (v - (p * p) as f32).abs() < 1e-7)
    );
}

#[test]
fn weight_drop_zeroes_the_gradient_of_dropped_weights() {
    let _turn = one_at_a_time();
    let device = training_device();
    let p = 0.5;
    let x = Tensor::<3>::random([4, 6, 5], Distribution::Normal(0.0, 1.0), &device);
    let zeros = |config: LstmConfig| {
        let layer = config.init(&device);
        let (out, _) = layer.forward(x.clone(), None);
        let grads = GradientsParams::from_grads(out.sum().backward(), &layer);
        let w = &layer.layers[0].forward.weight_hh;
        let g = values(grads.get::<2>(w.id).expect("W_hh gradient"));
        (g.iter().filter(|v| **v == 0.0).count(), g.len())
    };
    let (plain, total) = zeros(LstmConfig::new(5, 8));
    assert_eq!(
        plain, 0,
        "every recurrent weight has a gradient without weight drop"
    );
    let (dropped, total_dropped) = zeros(LstmConfig::new(5, 8).with_weight_drop(p));
    assert_eq!(total, total_dropped);
    assert_rate("weight drop", total - dropped, total, 1.0 - p);
}

/// In evaluation (no autodiff), `fused` gives the composed path's outputs and final state.
fn assert_evaluation_fused_equals_composed<C: CellKind>(
    fused: Recurrent<C>,
    backend: &str,
    device: &Device,
) {
    let plain = device.clone().without_autodiff();
    let fused = fused.valid();
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    let x = Tensor::<3>::random([3, 7, 5], Distribution::Normal(0.0, 1.0), &plain);
    let (o1, s1) = fused.forward(x.clone(), None);
    let (o2, s2) = composed.forward(x, None);
    assert!(
        max_diff(o1, o2) < 1e-5,
        "{backend}: evaluation outputs differ"
    );
    let states = max_diff(s1.hidden, s2.hidden);
    assert!(states < 1e-5, "{backend}: evaluation states differ");
}

/// Input dropout, weight drop, recurrent dropout and zoneout run on the fused whole-sequence op
/// (zoneout on the host engine's; the cube engine's is checked in tests/fused.rs): with
/// the same seed each cell gives the composed path's outputs and gradients, in training and (for
/// zoneout, which acts in evaluation too) in evaluation.
#[test]
fn fused_equals_composed_with_the_dropouts() {
    let _turn = one_at_a_time();
    for (backend, device) in common::backends() {
        let lstm = LstmConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_input_dropout(0.3)
            .with_weight_drop(0.4);
        assert_seeded_fused_equals_composed(lstm.init(&device), backend, &device, None);
        let lstm = lstm.with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(lstm.init(&device), backend, &device, None);
        let gru = GruConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(gru.init(&device), backend, &device, None);
        let rnn = RnnConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(rnn.init(&device), backend, &device, None);
        let lstm = LstmConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_zoneout(0.3);
        assert_seeded_fused_equals_composed(lstm.clone().init(&device), backend, &device, None);
        assert_evaluation_fused_equals_composed(lstm.init(&device), backend, &device);
        let lstm = lstm.with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(lstm.init(&device), backend, &device, None);
        let gru = GruConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_zoneout(0.3);
        assert_seeded_fused_equals_composed(gru.clone().init(&device), backend, &device, None);
        assert_evaluation_fused_equals_composed(gru.init(&device), backend, &device);
        let rnn = RnnConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_zoneout(0.3);
        assert_seeded_fused_equals_composed(rnn.clone().init(&device), backend, &device, None);
        let relu = rnn.with_nonlinearity(sequent_models::recurrent::Nonlinearity::Relu);
        assert_seeded_fused_equals_composed(relu.init(&device), backend, &device, None);
        // With the LSTM's projection (`h` 4 wide, `c` 6).
        let lstm = LstmConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_proj_size(4)
            .with_input_dropout(0.3)
            .with_weight_drop(0.4)
            .with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(lstm.clone().init(&device), backend, &device, None);
        let lstm = lstm.with_zoneout(0.3);
        assert_seeded_fused_equals_composed(lstm.clone().init(&device), backend, &device, None);
        assert_evaluation_fused_equals_composed(lstm.init(&device), backend, &device);
        // With the layer-normalised cells' norms inside the same op.
        let lstm = LstmConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_layer_norm(true)
            .with_zoneout(0.3)
            .with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(lstm.clone().init(&device), backend, &device, None);
        assert_evaluation_fused_equals_composed(lstm.init(&device), backend, &device);
        let gru = GruConfig::new(5, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_layer_norm(true)
            .with_zoneout(0.3)
            .with_recurrent_dropout(0.25);
        assert_seeded_fused_equals_composed(gru.init(&device), backend, &device, None);
    }
}
