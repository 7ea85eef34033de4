//! Bad input gets a typed error that names the problem, never a panic inside Burn.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Distribution, Tensor};
use common::{Fixture, fixtures, scratch};
use safetensors::tensor::TensorView;
use sequent_models::SequentError;
use sequent_models::recurrent::*;

fn device() -> Device {
    common::backends()[0].1.clone()
}

fn randn(shape: [usize; 3], d: &Device) -> Tensor<3> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), d)
}

#[test]
fn wrong_input_width() {
    let d = device();
    let lstm = LstmConfig::new(4, 6).init(&d);
    let err = lstm
        .try_forward(randn([2, 3, 5], &d), None, None)
        .unwrap_err();
    assert_eq!(
        err,
        SequentError::InputWidth {
            expected: 4,
            got: vec![2, 3, 5]
        }
    );
    assert!(err.to_string().contains("input_size = 4"), "{err}");
}

#[test]
fn empty_input() {
    let d = device();
    let gru = GruConfig::new(4, 6).init(&d);
    let err = gru
        .try_forward(Tensor::zeros([2, 0, 4], &d), None, None)
        .unwrap_err();
    assert_eq!(err, SequentError::EmptyInput(vec![2, 0, 4]));
}

#[test]
fn state_of_wrong_shape() {
    let d = device();
    let gru = GruConfig::new(4, 6).with_num_layers(2).init(&d);
    let bad = RecurrentState::new(Tensor::zeros([1, 2, 6], &d));
    let err = gru
        .try_forward(randn([2, 3, 4], &d), Some(bad), None)
        .unwrap_err();
    assert_eq!(
        err,
        SequentError::StateShape {
            which: "hidden",
            expected: vec![2, 2, 6],
            got: vec![1, 2, 6]
        }
    );

    let lstm = LstmConfig::new(4, 6).init(&d);
    let bad_cell = RecurrentState::lstm(Tensor::zeros([1, 2, 6], &d), Tensor::zeros([1, 3, 6], &d));
    let err = lstm
        .try_forward(randn([2, 3, 4], &d), Some(bad_cell), None)
        .unwrap_err();
    assert!(
        matches!(err, SequentError::StateShape { which: "cell", .. }),
        "{err}"
    );

    // With a projection h is P wide and c stays H wide: an H-wide h is refused.
    let projected = LstmConfig::new(4, 6).with_proj_size(2).init(&d);
    let wide = RecurrentState::lstm(Tensor::zeros([1, 2, 6], &d), Tensor::zeros([1, 2, 6], &d));
    let err = projected
        .try_forward(randn([2, 3, 4], &d), Some(wide), None)
        .unwrap_err();
    assert_eq!(
        err,
        SequentError::StateShape {
            which: "hidden",
            expected: vec![1, 2, 2],
            got: vec![1, 2, 6]
        }
    );
    let fits = RecurrentState::lstm(Tensor::zeros([1, 2, 2], &d), Tensor::zeros([1, 2, 6], &d));
    let (out, _) = projected
        .try_forward(randn([2, 3, 4], &d), Some(fits), None)
        .unwrap();
    assert_eq!(out.dims(), [2, 3, 2]);
}

#[test]
fn state_of_wrong_kind() {
    let d = device();
    let lstm = LstmConfig::new(4, 6).init(&d);
    let err = lstm
        .try_forward(
            randn([2, 3, 4], &d),
            Some(RecurrentState::new(Tensor::zeros([1, 2, 6], &d))),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SequentError::StateKind {
                cell: "LSTM",
                needs_cell: true
            }
        ),
        "{err}"
    );
    let rnn = RnnConfig::new(4, 6).init(&d);
    let with_cell =
        RecurrentState::lstm(Tensor::zeros([1, 2, 6], &d), Tensor::zeros([1, 2, 6], &d));
    let err = rnn
        .try_forward(randn([2, 3, 4], &d), Some(with_cell), None)
        .unwrap_err();
    assert!(matches!(err, SequentError::StateKind { .. }), "{err}");
}

#[test]
fn bad_lengths() {
    let d = device();
    let rnn = RnnConfig::new(4, 6).with_bidirectional(true).init(&d);
    let x = randn([3, 5, 4], &d);
    assert_eq!(
        rnn.try_forward(x.clone(), None, Some(&[5, 2])).unwrap_err(),
        SequentError::LengthsCount { batch: 3, got: 2 }
    );
    assert_eq!(
        rnn.try_forward(x.clone(), None, Some(&[5, 0, 2]))
            .unwrap_err(),
        SequentError::Length {
            index: 1,
            length: 0,
            steps: 5
        }
    );
    assert_eq!(
        rnn.try_forward(x, None, Some(&[5, 2, 6])).unwrap_err(),
        SequentError::Length {
            index: 2,
            length: 6,
            steps: 5
        }
    );
}

#[test]
fn cell_step_errors() {
    let d = device();
    let cell = LstmConfig::new(4, 6).init_cell(&d);
    let x = Tensor::<2>::zeros([2, 3], &d);
    assert!(matches!(
        cell.try_step(x, None).unwrap_err(),
        SequentError::InputWidth { expected: 4, .. }
    ));
    let state = CellState {
        hidden: Tensor::zeros([2, 6], &d),
        cell: None,
    };
    let err = cell
        .try_step(Tensor::zeros([2, 4], &d), Some(state))
        .unwrap_err();
    assert!(matches!(err, SequentError::StateKind { .. }), "{err}");
}

/// Writes `tensors` (name -> (shape, values)) as a safetensors file in `dir`.
fn write_weights(dir: &Path, tensors: &HashMap<String, (Vec<usize>, Vec<f32>)>) -> PathBuf {
    let path = dir.join("w.safetensors");
    let bytes: HashMap<&String, (Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (s, v))| {
            (
                k,
                (s.clone(), v.iter().flat_map(|f| f.to_le_bytes()).collect()),
            )
        })
        .collect();
    let views: Vec<(&String, TensorView)> = bytes
        .iter()
        .map(|(k, (s, b))| {
            (
                *k,
                TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

fn lstm_weights() -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    Fixture::read(&fixtures().join("lstm_l2_bi_h0.weights.safetensors")).floats
}

fn lstm(d: &Device) -> Lstm {
    LstmConfig::new(4, 6)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(d)
}

fn mismatch(path: &Path) -> Vec<String> {
    let d = device();
    let mut layer = lstm(&d);
    let before = layer.layers[0].forward.weight_ih.val().to_data();
    match layer.load_pytorch(path).unwrap_err() {
        SequentError::WeightMismatch { problems, .. } => {
            // A failed load leaves the layer as it was.
            assert_eq!(layer.layers[0].forward.weight_ih.val().to_data(), before);
            problems
        }
        other => panic!("expected WeightMismatch, got {other}"),
    }
}

#[test]
fn weight_file_with_missing_key() {
    let mut w = lstm_weights();
    w.remove("bias_hh_l1_reverse");
    let dir = scratch();
    let problems = mismatch(&write_weights(dir.path(), &w));
    assert_eq!(
        problems,
        vec!["missing tensor `bias_hh_l1_reverse`".to_string()]
    );
}

#[test]
fn weight_file_with_extra_key() {
    let mut w = lstm_weights();
    w.insert("weight_ih_l2".into(), (vec![24, 12], vec![0.0; 288]));
    let dir = scratch();
    let problems = mismatch(&write_weights(dir.path(), &w));
    assert_eq!(
        problems,
        vec!["unexpected tensor `weight_ih_l2`".to_string()]
    );
}

#[test]
fn weight_file_with_misshaped_key() {
    let mut w = lstm_weights();
    w.insert("weight_hh_l0".into(), (vec![24, 5], vec![0.0; 120]));
    let dir = scratch();
    let problems = mismatch(&write_weights(dir.path(), &w));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("weight_hh_l0")
            && problems[0].contains("[24, 5]")
            && problems[0].contains("[24, 6]"),
        "{problems:?}"
    );
}

#[test]
fn weight_file_missing_or_corrupt() {
    let d = device();
    let mut layer = lstm(&d);
    let err = layer
        .load_pytorch("/nonexistent/weights.safetensors")
        .unwrap_err();
    // The file system's error is kept as the source.
    match &err {
        SequentError::WeightIo { source, .. } => {
            let io = source.get().downcast_ref::<std::io::Error>();
            assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        }
        other => panic!("expected WeightIo, got {other}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    let dir = scratch();
    let path = dir.path().join("bad.safetensors");
    std::fs::write(&path, b"this is not a safetensors file").unwrap();
    let err = layer.load_pytorch(&path).unwrap_err();
    assert!(matches!(err, SequentError::WeightIo { .. }), "{err}");
}

#[test]
fn configs_out_of_range_are_typed_errors_from_try_init() {
    use sequent_models::classical::{AutoregressiveMlpConfig, MarkovLmConfig};
    let d = device();
    let invalid = |r: Result<(), SequentError>, needle: &str| match r {
        Err(SequentError::InvalidConfig(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected InvalidConfig naming {needle}, got {other:?}"),
    };
    invalid(LstmConfig::new(0, 4).try_init(&d).map(drop), "input_size");
    invalid(GruConfig::new(4, 0).try_init(&d).map(drop), "hidden_size");
    let layers = RnnConfig::new(4, 4).with_num_layers(0);
    invalid(layers.try_init(&d).map(drop), "num_layers");
    let dropout = LstmConfig::new(4, 4).with_dropout(1.0);
    invalid(dropout.try_init(&d).map(drop), "dropout");
    let proj = LstmConfig::new(4, 4).with_proj_size(4);
    invalid(proj.try_init(&d).map(drop), "proj_size");
    invalid(
        GruConfig::new(4, 4)
            .with_recurrent_dropout(1.0)
            .try_init(&d)
            .map(drop),
        "recurrent_dropout must be in [0, 1), got 1",
    );
    invalid(
        RnnConfig::new(4, 4)
            .with_input_dropout(-0.1)
            .try_init(&d)
            .map(drop),
        "input_dropout",
    );
    invalid(
        LstmConfig::new(4, 4)
            .with_weight_drop(1.5)
            .try_init(&d)
            .map(drop),
        "weight_drop",
    );
    invalid(
        LstmConfig::new(4, 4)
            .with_zoneout(f64::NAN)
            .try_init(&d)
            .map(drop),
        "zoneout",
    );
    let before = GruConfig::new(4, 4).with_reset_after(false);
    invalid(
        before.with_layer_norm(true).try_init(&d).map(drop),
        "layer_norm needs the reset gate after",
    );
    invalid(MarkovLmConfig::new(0).try_init(&d).map(drop), "vocab_size");
    let ar = AutoregressiveMlpConfig::new(4).with_hidden(vec![8, 0]);
    invalid(ar.try_init(&d).map(drop), "hidden widths");
    // Valid configs build through both.
    assert!(LstmConfig::new(4, 4).try_init(&d).is_ok());
}

#[test]
#[should_panic(expected = "dropout must be in [0, 1), got 1.5")]
fn init_panics_with_the_message_of_try_init() {
    let _ = GruConfig::new(4, 4).with_dropout(1.5).init(&device());
}
