//! PyTorch parity of `Rnn`, `Lstm` and `Gru`: outputs, final states and gradients against the
//! fixtures written by `scripts/gen_parity_fixtures.py` (PyTorch, float64 references).

mod common;

use burn::tensor::{Device, Tensor};
use common::{Fixture, fixtures, max_abs_diff};
use sequent_models::recurrent::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    mode: String,
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    bidirectional: bool,
    bias: bool,
    proj_size: usize,
    layer_norm: bool,
    zoneout: f64,
}

/// The three layer types behind one interface, so that one test body serves every case.
enum AnyLayer {
    Rnn(Rnn),
    Lstm(Lstm),
    Gru(Gru),
}

impl AnyLayer {
    fn new(case: &Case, device: &Device) -> Self {
        let (i, h, l, bi, b) = (
            case.input_size,
            case.hidden_size,
            case.num_layers,
            case.bidirectional,
            case.bias,
        );
        match case.mode.as_str() {
            "rnn_tanh" | "rnn_relu" => {
                let nl = if case.mode == "rnn_tanh" {
                    Nonlinearity::Tanh
                } else {
                    Nonlinearity::Relu
                };
                Self::Rnn(
                    RnnConfig::new(i, h)
                        .with_num_layers(l)
                        .with_bidirectional(bi)
                        .with_bias(b)
                        .with_nonlinearity(nl)
                        .init(device),
                )
            }
            "lstm" | "lstm_proj" | "lstm_ln" | "lstm_zoneout" => Self::Lstm(evaluated(
                LstmConfig::new(i, h)
                    .with_num_layers(l)
                    .with_bidirectional(bi)
                    .with_bias(b)
                    .with_proj_size(case.proj_size)
                    .with_layer_norm(case.layer_norm)
                    .with_zoneout(case.zoneout)
                    .init(device),
            )),
            "gru" | "gru_v3" | "gru_ln" => Self::Gru(
                GruConfig::new(i, h)
                    .with_num_layers(l)
                    .with_bidirectional(bi)
                    .with_bias(b)
                    .with_reset_after(case.mode != "gru_v3")
                    .with_layer_norm(case.layer_norm)
                    .init(device),
            ),
            other => panic!("unknown mode {other}"),
        }
    }

    fn load(&mut self, path: &std::path::Path) {
        match self {
            Self::Rnn(m) => m.load_pytorch(path),
            Self::Lstm(m) => m.load_pytorch(path),
            Self::Gru(m) => m.load_pytorch(path),
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn forward(
        &self,
        x: Tensor<3>,
        state: Option<RecurrentState>,
        lengths: Option<&[usize]>,
    ) -> (Tensor<3>, RecurrentState) {
        match self {
            Self::Rnn(m) => m.try_forward(x, state, lengths),
            Self::Lstm(m) => m.try_forward(x, state, lengths),
            Self::Gru(m) => m.try_forward(x, state, lengths),
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn layers(&self) -> &[LayerWeights] {
        match self {
            Self::Rnn(m) => &m.layers,
            Self::Lstm(m) => &m.layers,
            Self::Gru(m) => &m.layers,
        }
    }

    /// The gradient of the parameter PyTorch calls `name` (`weight_ih_l1_reverse`, ...; a layer
    /// norm's `layer_norm_hh_l0.weight`), flattened.
    fn param_grad(&self, name: &str, grads: &burn::tensor::Gradients) -> Vec<f32> {
        let (name, norm_part) = match name.strip_prefix("layer_norm_") {
            Some(rest) => {
                let (norm, part) = rest.split_once('.').unwrap();
                (norm, Some(part))
            }
            None => (name, None),
        };
        let (base, rest) = name.split_once("_l").unwrap();
        let (layer, reverse) = match rest.strip_suffix("_reverse") {
            Some(l) => (l, true),
            None => (rest, false),
        };
        let lw = &self.layers()[layer.parse::<usize>().unwrap()];
        let w = if reverse {
            lw.reverse.as_ref().unwrap()
        } else {
            &lw.forward
        };
        if let Some(part) = norm_part {
            let norms = w.layer_norm.as_ref().unwrap();
            let norm = match base {
                "ih" => &norms.ih,
                "hh" => &norms.hh,
                _ => norms.c.as_ref().unwrap(),
            };
            let value = match part {
                "weight" => norm.gamma.val(),
                _ => norm.beta.as_ref().unwrap().val(),
            };
            return value
                .grad(grads)
                .unwrap_or_else(|| panic!("no gradient for {name}.{part}"))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
        }
        let data = match base {
            "weight_ih" => w.weight_ih.val().grad(grads).map(Tensor::into_data),
            "weight_hh" => w.weight_hh.val().grad(grads).map(Tensor::into_data),
            "weight_hr" => w
                .weight_hr
                .as_ref()
                .unwrap()
                .val()
                .grad(grads)
                .map(Tensor::into_data),
            "bias_ih" => w
                .bias_ih
                .as_ref()
                .unwrap()
                .val()
                .grad(grads)
                .map(Tensor::into_data),
            "bias_hh" => w
                .bias_hh
                .as_ref()
                .unwrap()
                .val()
                .grad(grads)
                .map(Tensor::into_data),
            other => panic!("unknown parameter {other}"),
        };
        data.unwrap_or_else(|| panic!("no gradient for {name}"))
            .try_to_vec::<f32>()
            .unwrap()
    }
}

/// `layer` in evaluation with gradients: zoneout takes its expectation (the fixtures' reference),
/// the other layers are unchanged.
fn evaluated(mut layer: Lstm) -> Lstm {
    layer.dropout.training = layer.dropout.training.clone().with_value(false);
    layer
}

const OUT_TOL: f32 = 1e-5;
const GRAD_TOL: f32 = 1e-4;

fn run_all(device: &Device, label: &str) {
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    assert!(manifest.cases.len() >= 39, "at least 39 configurations");
    let count = |f: fn(&Case) -> bool| manifest.cases.iter().filter(|c| f(c)).count();
    assert!(
        count(|c| c.proj_size > 0) >= 4,
        "LSTM cases with a projection"
    );
    assert!(count(|c| c.layer_norm) >= 8, "layer-normalised cases");
    assert!(count(|c| c.zoneout > 0.0) >= 2, "zoneout cases");
    let mut failures = Vec::new();
    for case in &manifest.cases {
        for problem in check_case(case, device) {
            failures.push(format!("[{label}] {}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "parity failures:\n{}",
        failures.join("\n")
    );
}

fn check_case(case: &Case, device: &Device) -> Vec<String> {
    let data = Fixture::read(&fixtures().join(format!("{}.data.safetensors", case.name)));
    let weights = Fixture::read(&fixtures().join(format!("{}.weights.safetensors", case.name)));
    let mut layer = AnyLayer::new(case, device);
    layer.load(&fixtures().join(format!("{}.weights.safetensors", case.name)));

    let x: Tensor<3> = data.tensor::<3>("x", device).require_grad();
    let h0 = data
        .has("h0")
        .then(|| data.tensor::<3>("h0", device).require_grad());
    let c0 = data
        .has("c0")
        .then(|| data.tensor::<3>("c0", device).require_grad());
    let state = h0.clone().map(|h| RecurrentState {
        hidden: h,
        cell: c0.clone(),
    });
    let lengths: Option<Vec<usize>> = data
        .ints
        .get("lengths")
        .map(|l| l.iter().map(|&v| v as usize).collect());

    let (out, st) = layer.forward(x.clone(), state, lengths.as_deref());
    let mut problems = Vec::new();
    // Gradients are compared within GRAD_TOL of the case's largest one where that exceeds 1: a
    // float32 gradient of 70 (a layer norm's of a low-variance product) resolves to about 1e-5.
    let grad_scale = data
        .floats
        .iter()
        .filter(|(name, _)| name.starts_with("grad."))
        .flat_map(|(_, (_, v))| v.iter().map(|g| g.abs()))
        .fold(1.0f32, f32::max);
    let grad_tol = GRAD_TOL * grad_scale;
    let mut check = |what: &str, err: f32, tol: f32| {
        if err.is_nan() || err > tol {
            problems.push(format!("{what}: max abs error {err:e} > {tol:e}"));
        }
    };
    check("output", max_abs_diff(&out, &data, "out"), OUT_TOL);
    check("h_n", max_abs_diff(&st.hidden, &data, "h_n"), OUT_TOL);
    let mut loss = (out * data.tensor::<3>("R", device)).sum()
        + (st.hidden * data.tensor::<3>("S", device)).sum();
    if let Some(c) = st.cell {
        check("c_n", max_abs_diff(&c, &data, "c_n"), OUT_TOL);
        loss = loss + (c * data.tensor::<3>("U", device)).sum();
    }

    let grads = loss.backward();
    check(
        "grad x",
        max_abs_diff(&x.grad(&grads).unwrap(), &data, "grad.x"),
        grad_tol,
    );
    if let Some(h0) = h0 {
        check(
            "grad h0",
            max_abs_diff(&h0.grad(&grads).unwrap(), &data, "grad.h0"),
            grad_tol,
        );
    }
    if let Some(c0) = c0 {
        check(
            "grad c0",
            max_abs_diff(&c0.grad(&grads).unwrap(), &data, "grad.c0"),
            grad_tol,
        );
    }
    let mut names: Vec<&String> = weights.floats.keys().collect();
    names.sort();
    for name in names {
        let got = layer.param_grad(name, &grads);
        let (_, expected) = &data.floats[&format!("grad.{name}")];
        assert_eq!(got.len(), expected.len(), "gradient size of {name}");
        let err = got
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        check(&format!("grad {name}"), err, grad_tol);
    }
    problems
}

fn main() {
    common::trials::run(common::per_backend("parity", |backend, device| {
        run_all(&device, backend)
    }));
}
