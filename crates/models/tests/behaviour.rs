//! Layer behaviour beyond parity: dropout only in training, initialisers, state carrying.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use sequent_models::recurrent::*;

fn device() -> Device {
    common::backends()[0].1.clone()
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn dropout_acts_between_layers_in_training_only() {
    let d = device();
    let x = Tensor::<3>::random([4, 6, 3], Distribution::Normal(0.0, 1.0), &d);
    let lstm = LstmConfig::new(3, 8)
        .with_num_layers(2)
        .with_dropout(0.5)
        .init(&d);
    // valid(): inference, no dropout -> deterministic.
    let eval = lstm.valid();
    let x_eval = Tensor::<3>::from_data(x.to_data(), &d.clone().without_autodiff());
    let a = host(eval.forward(x_eval.clone(), None).0);
    let b = host(eval.forward(x_eval, None).0);
    assert_eq!(a, b);
    // Training (autodiff device): dropout changes the output.
    let c = host(lstm.forward(x.clone(), None).0);
    assert!(
        a.iter().zip(&c).any(|(p, q)| (p - q).abs() > 1e-6),
        "dropout had no effect in training"
    );
    // A single layer has nothing to drop between layers.
    let one = LstmConfig::new(3, 8).with_dropout(0.5).init(&d);
    assert_eq!(
        host(one.forward(x.clone(), None).0),
        host(one.forward(x, None).0)
    );
}

#[test]
fn carrying_the_state_equals_one_long_run() {
    let d = device();
    let gru = GruConfig::new(3, 5)
        .with_num_layers(2)
        .with_bidirectional(false)
        .init(&d);
    let x = Tensor::<3>::random([2, 8, 3], Distribution::Normal(0.0, 1.0), &d);
    let (full, _) = gru.forward(x.clone(), None);
    let (first, s) = gru.forward(x.clone().narrow(1, 0, 5), None);
    let (second, _) = gru.forward(x.narrow(1, 5, 3), Some(s.detach()));
    let joined = Tensor::cat(vec![first, second], 1);
    let diff = host(full)
        .iter()
        .zip(host(joined))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn default_init_is_pytorch_uniform() {
    let d = device();
    let h = 16;
    let lstm = LstmConfig::new(5, h)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&d);
    let bound = 1.0 / (h as f32).sqrt();
    for layer in &lstm.layers {
        for w in [&layer.forward, layer.reverse.as_ref().unwrap()] {
            for v in [
                w.weight_ih.val().into_data(),
                w.weight_hh.val().into_data(),
                w.bias_ih.as_ref().unwrap().val().into_data(),
            ] {
                let v = v.try_to_vec::<f32>().unwrap();
                assert!(
                    v.iter().all(|x| x.abs() <= bound),
                    "outside U(-1/sqrt(H), 1/sqrt(H))"
                );
                let spread = v.iter().cloned().fold(f32::MIN, f32::max)
                    - v.iter().cloned().fold(f32::MAX, f32::min);
                assert!(spread > bound, "not spread over the interval");
            }
        }
    }
    assert_eq!(
        lstm.layers[1].forward.weight_ih.dims(),
        [4 * h, 2 * h],
        "layer 2 reads both directions"
    );
}

#[test]
fn orthogonal_recurrent_weights() {
    let d = device();
    let h = 8;
    let gru = GruConfig::new(3, h)
        .with_recurrent_init(RecurrentInit::Orthogonal)
        .init(&d);
    let w = gru.layers[0].forward.weight_hh.val();
    for g in 0..3 {
        let block = w.clone().narrow(0, g * h, h);
        let wwt = block.clone().matmul(block.transpose());
        let err = (wwt - Tensor::<2>::eye(h, &d))
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(err < 1e-4, "block {g}: W W^T differs from I by {err}");
    }
}

#[test]
fn forget_gate_bias_and_chrono() {
    let d = device();
    let h = 10;
    let lstm = LstmConfig::new(3, h)
        .with_gate_bias(GateBias::Keep { value: 1.0 })
        .init(&d);
    let bih = lstm.layers[0]
        .forward
        .bias_ih
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let bhh = lstm.layers[0]
        .forward
        .bias_hh
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(bih[h..2 * h].iter().all(|&b| b == 1.0) && bhh[h..2 * h].iter().all(|&b| b == 0.0));

    let t_max = 100.0f32;
    let lstm = LstmConfig::new(3, h)
        .with_gate_bias(GateBias::Chrono {
            max_len: t_max as f64,
        })
        .init(&d);
    let bih = lstm.layers[0]
        .forward
        .bias_ih
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let (i, f) = (&bih[0..h], &bih[h..2 * h]);
    assert!(
        f.iter()
            .all(|&b| b >= 0.0 && b <= (t_max - 1.0).ln() + 1e-5),
        "{f:?}"
    );
    assert!(
        i.iter().zip(f).all(|(a, b)| (a + b).abs() < 1e-6),
        "chrono: b_i = -b_f"
    );
    assert!(bih[2 * h..].iter().all(|&b| b == 0.0));

    let gru = GruConfig::new(3, h)
        .with_gate_bias(GateBias::Keep { value: 2.0 })
        .init(&d);
    let bih = gru.layers[0]
        .forward
        .bias_ih
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        bih[h..2 * h].iter().all(|&b| b == 2.0),
        "GRU: the update gate z keeps the state"
    );
}

#[test]
fn configs_round_trip_through_json() {
    let cfg = GruConfig::new(3, 7)
        .with_num_layers(2)
        .with_reset_after(false)
        .with_gate_bias(GateBias::Chrono { max_len: 50.0 });
    let dir = common::scratch();
    let path = dir.path().join("gru.json");
    burn::config::Config::save(&cfg, &path).unwrap();
    let back = <GruConfig as burn::config::Config>::load(&path).unwrap();
    assert_eq!(back.num_layers, 2);
    assert!(!back.reset_after);
    assert_eq!(back.gate_bias, GateBias::Chrono { max_len: 50.0 });
}
