//! The count-based n-gram model against hand-computed counts and probabilities.

mod common;

use sequent_models::SequentError;
use sequent_models::classical::NgramConfig;
use sequent_models::generate::Sampling;

/// "abracadabra" over the vocabulary a=0, b=1, c=2, d=3, r=4.
fn abracadabra() -> Vec<u32> {
    "abracadabra"
        .chars()
        .map(|c| "abcdr".find(c).unwrap() as u32)
        .collect()
}

#[test]
fn bigram_counts_and_probabilities_by_hand() {
    let mut m = NgramConfig::new(2, 5).init();
    m.fit(&abracadabra()).unwrap();
    // Bigrams of a-b-r-a-c-a-d-a-b-r-a: ab x2, br x2, ra x2, ac, ca, ad, da.
    assert_eq!(m.count(&[0], 1), 2);
    assert_eq!(m.count(&[1], 4), 2);
    assert_eq!(m.count(&[0], 2), 1);
    assert_eq!(m.count(&[0], 0), 0);
    // 'a' is followed 4 times (b, c, d, b): P(b | a) = (2 + 1) / (4 + 5) with Laplace smoothing.
    assert!((m.prob(&[0], 1) - 3.0 / 9.0).abs() < 1e-12);
    assert!((m.prob(&[0], 0) - 1.0 / 9.0).abs() < 1e-12);
    // The first token has the empty context: seen once (a).
    assert!((m.prob(&[], 0) - 2.0 / 6.0).abs() < 1e-12);
    // Add-epsilon: P(r | b) = (2 + 0.5) / (2 + 2.5).
    let mut e = NgramConfig::new(2, 5).with_smoothing(0.5).init();
    e.fit(&abracadabra()).unwrap();
    assert!((e.prob(&[1], 4) - 2.5 / 4.5).abs() < 1e-12);
}

#[test]
fn smoothing_gives_every_token_positive_probability_summing_to_one() {
    let mut m = NgramConfig::new(3, 5).with_smoothing(0.01).init();
    m.fit(&abracadabra()).unwrap();
    for ctx in [vec![], vec![0], vec![0, 1], vec![3, 3]] {
        let d = m.distribution(&ctx);
        assert!(d.iter().all(|&p| p > 0.0), "{ctx:?}: {d:?}");
        assert!((d.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}

#[test]
fn exact_log_likelihood_and_perplexity() {
    let mut m = NgramConfig::new(2, 5).init();
    let train = abracadabra();
    m.fit(&train).unwrap();
    // "abr": P(a | ) * P(b | a) * P(r | b) = 2/6 * 3/9 * 3/7.
    let ll = m.log_likelihood(&[0, 1, 4]).unwrap();
    assert!((ll - (2.0f64 / 6.0 * 3.0 / 9.0 * 3.0 / 7.0).ln()).abs() < 1e-12);
    // Held-out text from the same "language" is below the uniform baseline V = 5.
    let ppl = m.perplexity(&[0, 1, 4, 0, 2, 0, 1, 4, 0]).unwrap();
    assert!(ppl.is_finite() && ppl < 5.0, "{ppl}");
    // The uniform model (unigram with huge smoothing) has perplexity ~V.
    let mut u = NgramConfig::new(1, 5).with_smoothing(1e9).init();
    u.fit(&train).unwrap();
    assert!((u.perplexity(&train).unwrap() - 5.0).abs() < 1e-6);
}

#[test]
fn generation_is_seeded_and_temperature_zero_is_greedy() {
    let mut m = NgramConfig::new(3, 5).with_smoothing(0.1).init();
    m.fit(&abracadabra()).unwrap();
    let a = m
        .generate(&[0, 1], 30, &Sampling::temperature(1.0, 7))
        .unwrap();
    assert_eq!(
        a,
        m.generate(&[0, 1], 30, &Sampling::temperature(1.0, 7))
            .unwrap()
    );
    assert_ne!(
        a,
        m.generate(&[0, 1], 30, &Sampling::temperature(1.0, 8))
            .unwrap()
    );
    // Greedy continues "ab" with the most frequent continuations: r, a, c (ties broken by id).
    let greedy = m.generate(&[0, 1], 3, &Sampling::greedy()).unwrap();
    assert_eq!(greedy, vec![0, 1, 4, 0, 2]);
    assert_eq!(
        m.generate(&[0, 1], 3, &Sampling::temperature(1e-9, 99))
            .unwrap(),
        greedy,
        "temperature -> 0 equals greedy"
    );
}

#[test]
fn bad_input_gives_typed_errors() {
    assert!(matches!(
        NgramConfig::new(0, 5).try_init(),
        Err(SequentError::InvalidConfig(_))
    ));
    assert!(matches!(
        NgramConfig::new(2, 5).with_smoothing(0.0).try_init(),
        Err(SequentError::InvalidConfig(_))
    ));
    let mut m = NgramConfig::new(2, 5).init();
    assert_eq!(
        m.fit(&[0, 7]).unwrap_err(),
        SequentError::UnknownToken {
            token: 7,
            position: 1,
            vocab_size: 5
        }
    );
    assert!(matches!(m.fit(&[]), Err(SequentError::EmptySequence(_))));
    m.fit(&abracadabra()).unwrap();
    assert!(matches!(
        m.generate(&[], 5, &Sampling::temperature(1.0, 0)),
        Err(SequentError::EmptySequence(_))
    ));
    assert!(matches!(
        m.generate(&[9], 5, &Sampling::temperature(1.0, 0)),
        Err(SequentError::UnknownToken { .. })
    ));
}

#[test]
fn neural_markov_model_learns_transitions() {
    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Int, Tensor, TensorData};
    use sequent_models::classical::MarkovLmConfig;

    let device = common::backends()[0].1.clone();
    device.seed(1);
    // A deterministic cycle 0 -> 3 -> 1 -> 4 -> 2 -> 0 over 5 tokens.
    let cycle = [0i64, 3, 1, 4, 2];
    let seq: Vec<i64> = (0..41).map(|i| cycle[i % 5]).collect();
    let mut model = MarkovLmConfig::new(5).with_embedding_size(8).init(&device);
    let mut optim = AdamConfig::new().init();
    let inputs = Tensor::<2, Int>::from_data(TensorData::new(seq[..40].to_vec(), [1, 40]), &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(seq[1..].to_vec(), [40]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    for _ in 0..150 {
        let loss = loss_fn.forward(
            model.forward(inputs.clone()).reshape([40, 5]),
            targets.clone(),
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    let model = model.valid();
    let greedy = model.generate(&[0], 9, &Sampling::greedy()).unwrap();
    assert_eq!(greedy, vec![0, 3, 1, 4, 2, 0, 3, 1, 4, 2]);
    assert!(matches!(
        model.generate(&[], 3, &Sampling::greedy()),
        Err(SequentError::EmptySequence(_))
    ));
    assert!(matches!(
        model.generate(&[5], 3, &Sampling::greedy()),
        Err(SequentError::UnknownToken { .. })
    ));
}
