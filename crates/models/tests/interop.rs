//! PyTorch weight import (safetensors and `.pt`) and export, single-step cells.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use common::{Fixture, fixtures, max_abs_diff, scratch};
use sequent_models::recurrent::*;

fn device() -> Device {
    common::backends()[0].1.clone()
}

/// Loads PyTorch's weights and exports them again: the same names and values, for an LSTM with
/// and without a projection (`weight_hr_l{k}[_reverse]`) and a layer-normalised one
/// (`layer_norm_{ih,hh,c}_l{k}[_reverse].{weight,bias}`).
#[test]
fn export_writes_pytorch_names_and_values() {
    let d = device();
    let cases = [
        ("lstm_l2_bi_h0", 0, false),
        ("lstm_proj_l2_bi_h0", 3, false),
        ("lstm_ln_l2_bi_h0", 0, true),
    ];
    for (case, proj_size, layer_norm) in cases {
        let src = fixtures().join(format!("{case}.weights.safetensors"));
        let mut lstm = LstmConfig::new(4, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_proj_size(proj_size)
            .with_layer_norm(layer_norm)
            .init(&d);
        lstm.load_pytorch(&src).unwrap();
        let dir = scratch();
        let out = dir.path().join("lstm.safetensors");
        lstm.save_pytorch(&out).unwrap();

        let original = Fixture::read(&src).floats;
        let exported = Fixture::read(&out).floats;
        let mut a: Vec<_> = original.keys().collect();
        let mut b: Vec<_> = exported.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{case}: exported keys are PyTorch's state_dict keys");
        assert_eq!(
            a.iter().filter(|k| k.starts_with("weight_hr")).count(),
            if proj_size > 0 { 4 } else { 0 },
            "{case}: one projection a layer and direction"
        );
        assert_eq!(
            a.iter().filter(|k| k.starts_with("layer_norm_")).count(),
            if layer_norm { 4 * 6 } else { 0 },
            "{case}: three layer norms of two tensors a layer and direction"
        );
        for (k, v) in &original {
            assert_eq!(&exported[k], v, "{case}: {k} round-trips exactly");
        }
        assert!(
            !out.with_extension("safetensors.partial").exists(),
            "no temp file left behind"
        );
    }
}

/// The files `torch.save(state_dict, path)` writes with its default (zip, ZIP64) container, one
/// per cell kind, and one in the older pickle container: each loads and reproduces PyTorch's
/// output. `lstm_l2_bi_h0.weights.pt` is one that zip 9.8.2 misreads (see `torch_zip.rs`).
#[test]
fn pt_files_load_like_safetensors() {
    let d = device();
    let cases = [
        "lstm_l2_bi_h0.weights.pt",
        "lstm_l2_bi_h0.weights.legacy.pt",
        "gru_l1_uni.weights.pt",
        "rnn_tanh_l1_uni.weights.pt",
        "rnn_relu_l1_uni.weights.pt",
    ];
    for file in cases {
        let name = file.split('.').next().unwrap();
        let path = fixtures().join(file);
        let data = Fixture::read(&fixtures().join(format!("{name}.data.safetensors")));
        let x = data.tensor::<3>("x", &d);
        let out = if name.starts_with("lstm") {
            let mut m = LstmConfig::new(4, 6)
                .with_num_layers(2)
                .with_bidirectional(true)
                .init(&d);
            m.load_pytorch(&path).unwrap();
            let state = RecurrentState::lstm(data.tensor("h0", &d), data.tensor("c0", &d));
            m.forward(x, Some(state)).0
        } else if name.starts_with("gru") {
            let mut m = GruConfig::new(4, 6).init(&d);
            m.load_pytorch(&path).unwrap();
            m.forward(x, None).0
        } else {
            let nonlinearity = if name.starts_with("rnn_relu") {
                Nonlinearity::Relu
            } else {
                Nonlinearity::Tanh
            };
            let mut m = RnnConfig::new(4, 6)
                .with_nonlinearity(nonlinearity)
                .init(&d);
            m.load_pytorch(&path).unwrap();
            m.forward(x, None).0
        };
        assert!(max_abs_diff(&out, &data, "out") <= 1e-5, "{file}");
    }
}

/// Renames `*_l0` keys to a cell's `weight_ih`, ... and writes them as a PyTorch cell state_dict
/// in `dir`.
fn cell_weights(dir: &Path, case: &str) -> PathBuf {
    let layer = fixtures().join(format!("{case}.weights.safetensors"));
    let out = dir.join("cell.safetensors");
    let floats = Fixture::read(&layer).floats;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = floats
        .into_iter()
        .map(|(k, (s, v))| {
            (
                k.trim_end_matches("_l0").to_string(),
                s,
                v.iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &out).unwrap();
    out
}

/// Steps a single-step cell over the fixture input and compares with the layer's output.
fn check_cell<C: CellKind>(mut cell: RecurrentCell<C>, case: &str) {
    let d = device();
    let dir = scratch();
    cell.load_pytorch(cell_weights(dir.path(), case)).unwrap();
    let data = Fixture::read(&fixtures().join(format!("{case}.data.safetensors")));
    let x = data.tensor::<3>("x", &d);
    let [b, t, i] = x.dims();
    let mut state = None;
    let mut outs = Vec::new();
    for step in 0..t {
        let s = cell.step(x.clone().narrow(1, step, 1).reshape([b, i]), state);
        outs.push(s.hidden.clone());
        state = Some(s);
    }
    let out: Tensor<3> = Tensor::stack(outs, 1);
    let err = max_abs_diff(&out, &data, "out");
    assert!(
        err <= 1e-5,
        "{case}: cell steps differ from the layer by {err}"
    );
    let saved = dir.path().join("cell-export.safetensors");
    cell.save_pytorch(&saved).unwrap();
    let mut keys: Vec<String> = Fixture::read(&saved).floats.into_keys().collect();
    keys.sort();
    assert_eq!(keys, ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]);
}

#[test]
fn single_step_cells_match_the_layers() {
    let d = device();
    check_cell(RnnConfig::new(4, 6).init_cell(&d), "rnn_tanh_l1_uni");
    check_cell(
        RnnConfig::new(4, 6)
            .with_nonlinearity(Nonlinearity::Relu)
            .init_cell(&d),
        "rnn_relu_l1_uni",
    );
    check_cell(LstmConfig::new(4, 6).init_cell(&d), "lstm_l1_uni");
    check_cell(GruConfig::new(4, 6).init_cell(&d), "gru_l1_uni");
    check_cell(
        GruConfig::new(4, 6).with_reset_after(false).init_cell(&d),
        "gru_v3_l1_uni",
    );
}
