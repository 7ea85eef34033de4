//! Task heads: shapes, state handling and variable lengths, on every compiled backend.

mod common;

use common::max_diff;

use burn::nn::{EmbeddingConfig, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use sequent_models::SequentError;
use sequent_models::generate::Sampling;
use sequent_models::heads::{LanguageModelConfig, Readout, SequenceModel, SequenceModelConfig};
use sequent_models::recurrent::{GruConfig, LstmConfig};
use sequent_models::time_major::{embed_steps, every_step};

fn language_model(device: &Device) {
    let tokens = Tensor::<2, Int>::from_data(
        TensorData::new(vec![1i64, 4, 2, 0, 3, 3, 1, 2, 4, 0], [2, 5]),
        device,
    );
    let lm = LanguageModelConfig::new(5).init(
        LstmConfig::new(8, 6).with_num_layers(2).init(device),
        device,
    );
    let (logits, state) = lm.forward(tokens.clone(), None);
    assert_eq!(logits.dims(), [2, 5, 5]);
    assert_eq!(state.hidden.dims(), [2, 2, 6]);
    // Carrying the state across two calls equals one call.
    let (a, s) = lm.forward(tokens.clone().narrow(1, 0, 3), None);
    let (b, _) = lm.forward(tokens.clone().narrow(1, 3, 2), Some(s));
    assert!(max_diff(logits, Tensor::cat(vec![a, b], 1)) < 1e-5);
    // Untied: the output layer applied to every step.
    let (h, _) = lm.rnn.forward(lm.embedding.forward(tokens.clone()), None);
    let (logits, _) = lm.forward(tokens.clone(), None);
    let output = lm.output.as_ref().expect("an output layer");
    assert!(max_diff(logits, output.forward(h)) < 1e-5);
    // Tied weights: logits = h E^T + b.
    let tied = LanguageModelConfig::new(5)
        .with_tie_weights(true)
        .init(GruConfig::new(6, 6).init(device), device);
    let (logits, _) = tied.forward(tokens.clone(), None);
    let (h, _) = tied
        .rnn
        .forward(tied.embedding.forward(tokens.clone()), None);
    let manual = h
        .reshape([10, 6])
        .matmul(tied.embedding.weight.val().transpose())
        .reshape([2, 5, 5]);
    assert!(max_diff(logits, manual) < 1e-5);
    assert!(tied.output.is_none());
    // Typed errors.
    let err = LanguageModelConfig::new(5)
        .with_tie_weights(true)
        .try_init(GruConfig::new(6, 4).init(device), device)
        .unwrap_err();
    assert!(matches!(err, SequentError::InvalidConfig(_)), "{err}");
    let bad = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 7], [1, 2]), device);
    assert_eq!(
        lm.try_forward(bad, None).unwrap_err(),
        SequentError::UnknownToken {
            token: 7,
            position: 1,
            vocab_size: 5
        }
    );
    // The stepper: one token a call gives the logits of the whole sequence, step by step.
    let stepper = lm.stepper();
    let mut state = None;
    for t in 0..5 {
        let (step, next) = stepper
            .try_step(tokens.clone().narrow(1, t, 1).reshape([2]), state)
            .unwrap();
        let (all, _) = lm.forward(tokens.clone(), None);
        assert!(max_diff(step, all.narrow(1, t, 1).reshape([2, 5])) < 1e-5);
        state = Some(next);
    }
    let bad = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 5], [2]), device);
    let err = stepper.try_step(bad, None).unwrap_err();
    assert!(
        matches!(err, SequentError::UnknownToken { token: 5, .. }),
        "{err}"
    );
    let empty = Tensor::<1, Int>::from_data(TensorData::new(Vec::<i64>::new(), [0]), device);
    let err = stepper.try_step(empty, None).unwrap_err();
    assert!(matches!(err, SequentError::EmptyInput(_)), "{err}");
    // Generation: warm-up over the prefix, then tokens fed back; seeded; T -> 0 equals greedy.
    let greedy = lm.generate(&[1, 2, 3], 8, &Sampling::greedy()).unwrap();
    assert_eq!(greedy.len(), 11);
    assert_eq!(&greedy[..3], &[1, 2, 3]);
    assert_eq!(
        lm.generate(&[1, 2, 3], 8, &Sampling::temperature(1e-6, 9))
            .unwrap(),
        greedy
    );
    let a = lm
        .generate(&[1, 2, 3], 20, &Sampling::temperature(2.0, 4).with_top_k(3))
        .unwrap();
    assert_eq!(
        a,
        lm.generate(&[1, 2, 3], 20, &Sampling::temperature(2.0, 4).with_top_k(3))
            .unwrap()
    );
    // Greedy by hand: the argmax of the logits after the prefix is the first generated token.
    let (logits, _) = lm.forward(
        Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3], [1, 3]), device),
        None,
    );
    let first: i64 = logits.narrow(1, 2, 1).reshape([5]).argmax(0).into_scalar();
    assert_eq!(greedy[3] as i64, first);
    assert!(matches!(
        lm.generate(&[], 3, &Sampling::greedy()),
        Err(SequentError::EmptySequence(_))
    ));
    assert!(matches!(
        lm.generate(&[6], 3, &Sampling::greedy()),
        Err(SequentError::UnknownToken { .. })
    ));
}

/// Runs sequence `i` of `x` alone, unpadded, through `model`.
fn alone(
    model: &SequenceModel<sequent_models::recurrent::GruKind>,
    x: &Tensor<3>,
    i: usize,
    len: usize,
) -> Tensor<2> {
    model.forward(x.clone().narrow(0, i, 1).narrow(1, 0, len), None)
}

fn sequence_heads(device: &Device) {
    let x = Tensor::<3>::random([3, 6, 4], Distribution::Normal(0.0, 1.0), device);
    let lengths = [6, 2, 4];
    for readout in [Readout::Last, Readout::Mean, Readout::Max] {
        let rnn = GruConfig::new(4, 5)
            .with_num_layers(2)
            .with_bidirectional(true)
            .init(device);
        let model = SequenceModelConfig::new(3)
            .with_readout(readout)
            .init(rnn, device);
        let batched = model.forward(x.clone(), Some(&lengths));
        assert_eq!(batched.dims(), [3, 3]);
        for (i, &len) in lengths.iter().enumerate() {
            let diff = max_diff(batched.clone().narrow(0, i, 1), alone(&model, &x, i, len));
            assert!(
                diff < 1e-5,
                "{readout:?}: padded sequence {i} differs from running it alone by {diff}"
            );
        }
    }
    let every = SequenceModelConfig::new(2)
        .with_readout(Readout::EveryStep)
        .init(LstmConfig::new(4, 5).init(device), device);
    assert_eq!(every.forward(x.clone(), None).dims(), [18, 2]);
    let err = every.try_forward(x, Some(&[6, 0, 1])).unwrap_err();
    assert!(
        matches!(err, SequentError::Length { index: 1, .. }),
        "{err}"
    );
}

fn language_and_sequence_heads(_backend: &str, device: Device) {
    let device = device.without_autodiff();
    language_model(&device);
    sequence_heads(&device);
}

/// `every_step` is Burn's `Linear` over a 3-D input, in value and in the gradients of the input
/// (batch-first, and the time-major layout the recurrent layers return) and of the weights.
fn every_step_is_the_linear_map_of_each_step(name: &str, device: Device) {
    let (b, t, d, v) = (3, 4, 5, 6);
    let linear = LinearConfig::new(d, v).init(&device);
    let values = Tensor::<3>::random([t, b, d], Distribution::Normal(0.0, 1.0), &device);
    for time_major in [false, true] {
        let x = if time_major {
            values.clone().require_grad()
        } else {
            values.clone().swap_dims(0, 1).require_grad()
        };
        let w = Tensor::<3>::random([b, t, v], Distribution::Normal(0.0, 1.0), &device);
        let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let h = if time_major {
                x.clone().swap_dims(0, 1)
            } else {
                x.clone()
            };
            let y = f(h);
            let grads = (y.clone() * w.clone()).sum().backward();
            let gx = x.grad(&grads).unwrap();
            let gw = linear.weight.val().grad(&grads).unwrap();
            (y, gx, gw)
        };
        let (y, gx, gw) = run(&|h| every_step(h, |h| linear.forward(h)));
        let (y_ref, gx_ref, gw_ref) = run(&|h| linear.forward(h));
        let what = format!("{name} (time-major {time_major})");
        assert!(max_diff(y, y_ref) < 1e-5, "{what}: values");
        assert!(max_diff(gx.inner(), gx_ref.inner()) < 1e-5, "{what}: dx");
        assert!(max_diff(gw.inner(), gw_ref.inner()) < 1e-5, "{what}: dW");
    }
}

/// `embed_steps` is Burn's embedding, in value and in the gradient of the embedding table.
fn embed_steps_is_the_embedding(name: &str, device: Device) {
    let embedding = EmbeddingConfig::new(7, 4).init(&device);
    let ids: Vec<i64> = (0..15).map(|i| (i * 3) % 7).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [3, 5]), &device);
    let w = Tensor::<3>::random([3, 5, 4], Distribution::Normal(0.0, 1.0), &device);
    let run = |x: Tensor<3>| {
        let grads = (x.clone() * w.clone()).sum().backward();
        (x, embedding.weight.val().grad(&grads).unwrap())
    };
    let (x, g) = run(embed_steps(&embedding, tokens.clone()));
    let (x_ref, g_ref) = run(embedding.forward(tokens));
    assert!(max_diff(x, x_ref) < 1e-6, "{name}: values");
    assert!(
        max_diff(g.inner(), g_ref.inner()) < 1e-6,
        "{name}: gradient"
    );
}

fn main() {
    let trials = [
        common::per_backend("language_and_sequence_heads", language_and_sequence_heads),
        common::per_backend(
            "every_step_is_the_linear_map_of_each_step",
            every_step_is_the_linear_map_of_each_step,
        ),
        common::per_backend("embed_steps_is_the_embedding", embed_steps_is_the_embedding),
    ];
    common::trials::run(trials.into_iter().flatten().collect());
}
