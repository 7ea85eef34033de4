//! `Recurrent::try_forward_embedded`, which folds an embedding into the first layer (the token
//! ops: `x_t W_ih^T = E[v] W_ih^T`, a column of `W_ih E^T`), against the stack over the embedded
//! sequence (`try_forward(embedding.forward(tokens))`): same outputs, final states and gradients
//! (embedding, every weight and bias, initial state), for the three cells, with and without
//! biases, on the CPU backends.

mod common;

use common::max_diff;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use sequent_models::SequentError;
use sequent_models::recurrent::{
    CellKind, GruConfig, LstmConfig, Recurrent, RecurrentState, RnnConfig, on_host,
};

/// The stack and its embedding as one module, for the gradients of both.
#[derive(Module, Debug)]
struct Model<C: CellKind> {
    embedding: Embedding,
    rnn: Recurrent<C>,
}

type Outcome = (Tensor<3>, RecurrentState, GradientsParams, Tensor<3>);

/// Runs `model` over `tokens` from `state`, folded or not; returns the outputs, the final state,
/// the parameters' gradients of a loss of both and `h0`'s gradient.
fn run<C: CellKind>(
    model: &Model<C>,
    tokens: Tensor<2, Int>,
    state: &RecurrentState,
    folded: bool,
) -> Outcome {
    let h0 = state.hidden.clone().require_grad();
    let state = RecurrentState {
        hidden: h0.clone(),
        cell: state.cell.clone(),
    };
    let (out, last) = if folded {
        model
            .rnn
            .try_forward_embedded(&model.embedding, tokens, Some(state))
    } else {
        let x = model.embedding.forward(tokens);
        model.rnn.try_forward(x, Some(state), None)
    }
    .expect("valid input");
    let mut loss = out.clone().powi_scalar(2).sum() + last.hidden.clone().sum();
    if let Some(c) = &last.cell {
        loss = loss + c.clone().powi_scalar(2).sum();
    }
    let grads = loss.backward();
    let gh = h0.grad(&grads).expect("h0 gradient");
    (out, last, GradientsParams::from_grads(grads, model), gh)
}

fn compare<C: CellKind>(name: &str, rnn: Recurrent<C>, device: &Device) {
    let (vocab, batch, steps) = (4, 3, 5);
    assert!(
        rnn.folds_embedding(vocab, steps, batch, device),
        "{name}: the fold applies"
    );
    let model = Model {
        embedding: EmbeddingConfig::new(vocab, rnn.input_size).init(device),
        rnn,
    };
    let tokens = Tensor::<2, Int>::random(
        [batch, steps],
        Distribution::Uniform(0.0, vocab as f64),
        device,
    );
    let n = model.rnn.num_layers();
    let zeros = Tensor::<3>::random(
        [n, batch, model.rnn.hidden_size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let state = RecurrentState {
        hidden: zeros.clone(),
        cell: C::HAS_CELL.then(|| zeros.clone() * 0.5),
    };
    let (o1, s1, g1, h1) = run(&model, tokens.clone(), &state, true);
    let (o2, s2, g2, h2) = run(&model, tokens, &state, false);
    assert!(max_diff(o1, o2) < 1e-5, "{name}: outputs differ");
    assert!(max_diff(s1.hidden, s2.hidden) < 1e-5, "{name}: h_n differs");
    if let (Some(a), Some(b)) = (s1.cell, s2.cell) {
        assert!(max_diff(a, b) < 1e-5, "{name}: c_n differs");
    }
    assert!(max_diff(h1, h2) < 1e-4, "{name}: h0 gradients differ");
    let e = model.embedding.weight.id;
    let (a, b) = (g1.get::<2>(e).unwrap(), g2.get::<2>(e).unwrap());
    assert!(max_diff(a, b) < 1e-4, "{name}: embedding gradients differ");
    for (l, layer) in model.rnn.layers.iter().enumerate() {
        let w = &layer.forward;
        for (which, m) in [("W_ih", &w.weight_ih), ("W_hh", &w.weight_hh)] {
            let (a, b) = (g1.get::<2>(m.id).unwrap(), g2.get::<2>(m.id).unwrap());
            assert!(
                max_diff(a, b) < 1e-4,
                "{name}: layer {l} {which} gradients differ"
            );
        }
        for (which, p) in [("b_ih", &w.bias_ih), ("b_hh", &w.bias_hh)] {
            if let Some(p) = p {
                let (a, b) = (g1.get::<1>(p.id).unwrap(), g2.get::<1>(p.id).unwrap());
                assert!(
                    max_diff(a, b) < 1e-4,
                    "{name}: layer {l} {which} gradients differ"
                );
            }
        }
    }
}

#[test]
fn the_folded_embedding_equals_the_embedded_sequence() {
    for (backend, device) in common::backends() {
        if !on_host(&device) {
            continue;
        }
        for bias in [true, false] {
            let name = |cell: &str| format!("{backend} {cell} bias={bias}");
            let (i, h) = (5, 6);
            let lstm = LstmConfig::new(i, h).with_num_layers(2).with_bias(bias);
            compare(&name("lstm"), lstm.init(&device), &device);
            let gru = GruConfig::new(i, h).with_num_layers(2).with_bias(bias);
            compare(&name("gru"), gru.init(&device), &device);
            let rnn = RnnConfig::new(i, h).with_bias(bias);
            compare(&name("rnn"), rnn.init(&device), &device);
        }
    }
}

#[test]
fn the_fold_applies_where_it_saves_work() {
    let device = common::backends()[0].1.clone();
    let lstm = LstmConfig::new(5, 6).init(&device);
    let fused = on_host(&device);
    assert_eq!(lstm.folds_embedding(64, 35, 32, &device), fused);
    // More rows in the embedding than half the tokens: the fold would cost more than it saves.
    assert!(!lstm.folds_embedding(600, 35, 32, &device));
    let bidirectional = LstmConfig::new(5, 6).with_bidirectional(true);
    assert!(
        !bidirectional
            .init(&device)
            .folds_embedding(4, 35, 32, &device)
    );
}

#[test]
fn bad_tokens_and_widths_are_errors() {
    let device = common::backends()[0].1.clone();
    let lstm = LstmConfig::new(5, 6).init(&device);
    let embedding = EmbeddingConfig::new(4, 5).init(&device);
    let tokens =
        |v: [i64; 4]| Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), [2, 2]), &device);
    let err = lstm
        .try_forward_embedded(&embedding, tokens([0, 1, 4, 2]), None)
        .unwrap_err();
    assert!(
        matches!(err, SequentError::UnknownToken { token: 4, .. }),
        "{err}"
    );
    let wide = EmbeddingConfig::new(4, 7).init(&device);
    let err = lstm
        .try_forward_embedded(&wide, tokens([0, 1, 3, 2]), None)
        .unwrap_err();
    assert!(
        matches!(err, SequentError::InputWidth { expected: 5, .. }),
        "{err}"
    );
}
