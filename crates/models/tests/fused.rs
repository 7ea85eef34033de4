//! The fused paths (Flex, NdArray; wgpu) against the composed tensor ops: same outputs, final
//! states and gradients (input, initial state, weights), for every cell, stacked and
//! bidirectional, with variable lengths (on the host the fused pointwise steps, on wgpu the
//! whole-sequence kernels) and without (the whole-sequence ops). PyTorch parity of the default (fused) path is
//! `parity.rs`; this test pins the switch itself.

mod common;

use common::{grad_diff, max_diff};

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use sequent_models::recurrent::{
    CellKind, GruConfig, Kernels, Lstm, LstmConfig, Nonlinearity, Recurrent, RecurrentState,
    RnnConfig, on_host,
};

/// Runs `layer` on `x` from `h0` (and `c0`), with `lengths` if given; returns the loss's
/// gradients too.
fn run<C: CellKind>(
    layer: &Recurrent<C>,
    x: Tensor<3>,
    state: RecurrentState,
    lengths: Option<&[usize]>,
) -> (
    Tensor<3>,
    RecurrentState,
    GradientsParams,
    Tensor<3>,
    Tensor<3>,
) {
    let x = x.require_grad();
    let h0 = state.hidden.clone().require_grad();
    let state = RecurrentState {
        hidden: h0.clone(),
        cell: state.cell,
    };
    let (out, last) = layer.try_forward(x.clone(), Some(state), lengths).unwrap();
    let mut loss = out.clone().powi_scalar(2).sum() + last.hidden.clone().sum();
    if let Some(c) = &last.cell {
        loss = loss + c.clone().powi_scalar(2).sum();
    }
    let grads = loss.backward();
    let gx = x.grad(&grads).expect("input gradient");
    let gh = h0.grad(&grads).expect("h0 gradient");
    (out, last, GradientsParams::from_grads(grads, layer), gx, gh)
}

fn compare<C: CellKind>(name: &str, fused: Recurrent<C>, device: &Device) {
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    let d = fused.num_directions() * fused.layers.len();
    // Batches of 1 and 2 run the sequence ops with the weights read in place (also for a single
    // step); larger ones pack them.
    for (batch, steps) in [(3, 5), (2, 5), (1, 1)] {
        let x = Tensor::<3>::random(
            [batch, steps, fused.input_size],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let h0 = Tensor::<3>::random(
            [d, batch, fused.state_width()],
            Distribution::Normal(0.0, 0.5),
            device,
        );
        let c0 = C::HAS_CELL.then(|| {
            let c0 = [d, batch, fused.hidden_size];
            Tensor::<3>::random(c0, Distribution::Normal(0.0, 0.35), device)
        });
        let state = RecurrentState {
            hidden: h0,
            cell: c0,
        };
        // With lengths the engine steps (fused pointwise ops); without, each cell runs its
        // fused whole-sequence op (input projection included).
        let lengths = [Some(&[5, 3, 5][..]), None];
        for lengths in lengths.into_iter().filter(|l| batch == 3 || l.is_none()) {
            let name = format!("{name} (batch {batch}, {steps} steps, lengths {lengths:?})");
            compare_run(&name, &fused, &composed, x.clone(), state.clone(), lengths);
        }
    }
}

fn compare_run<C: CellKind>(
    name: &str,
    fused: &Recurrent<C>,
    composed: &Recurrent<C>,
    x: Tensor<3>,
    state: RecurrentState,
    lengths: Option<&[usize]>,
) {
    let (o1, s1, g1, x1, h1) = run(fused, x.clone(), state.clone(), lengths);
    let (o2, s2, g2, x2, h2) = run(composed, x, state, lengths);
    assert!(max_diff(o1, o2) < 1e-5, "{name}: outputs differ");
    assert!(max_diff(s1.hidden, s2.hidden) < 1e-5, "{name}: h_n differs");
    if let (Some(a), Some(b)) = (s1.cell, s2.cell) {
        assert!(max_diff(a, b) < 1e-5, "{name}: c_n differs");
    }
    assert!(grad_diff(x1, x2) < 1e-4, "{name}: input gradients differ");
    assert!(grad_diff(h1, h2) < 1e-4, "{name}: h0 gradients differ");
    for l in &fused.layers {
        for w in std::iter::once(&l.forward).chain(l.reverse.as_ref()) {
            let projection = w.weight_hr.iter().map(|m| ("W_hr", m));
            for (which, m) in [("W_ih", &w.weight_ih), ("W_hh", &w.weight_hh)]
                .into_iter()
                .chain(projection)
            {
                let (a, c) = (g1.get::<2>(m.id).unwrap(), g2.get::<2>(m.id).unwrap());
                assert!(grad_diff(a, c) < 1e-4, "{name}: {which} gradients differ");
            }
            let norms = w.layer_norm.iter().flat_map(|n| {
                let norms = [Some(&n.ih), Some(&n.hh), n.c.as_ref()];
                norms
                    .into_iter()
                    .flatten()
                    .flat_map(|n| [Some(&n.gamma), n.beta.as_ref()])
            });
            let biases = [Some(&w.bias_ih), Some(&w.bias_hh)].map(|b| b.and_then(Option::as_ref));
            for (i, b) in biases.into_iter().chain(norms).enumerate() {
                if let Some(b) = b {
                    let (a, c) = (g1.get::<1>(b.id).unwrap(), g2.get::<1>(b.id).unwrap());
                    let d = grad_diff(a, c);
                    assert!(d < 1e-4, "{name}: gradients of bias {i} differ by {d}");
                }
            }
        }
    }
}

/// Held by each test of this file that draws on the host devices, whose generator the process
/// shares: a test's draws from its seed are then the same whichever tests run beside it.
static HOST_DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fused_equals_composed_on_the_cpu_backends() {
    let _alone = HOST_DRAWS.lock().unwrap_or_else(|e| e.into_inner());
    for (backend, device) in common::backends() {
        assert!(on_host(&device), "{backend} runs the host kernels");
        device.seed(7);
        compare(
            &format!("{backend} lstm"),
            LstmConfig::new(4, 6)
                .with_num_layers(2)
                .with_bidirectional(true)
                .init(&device),
            &device,
        );
        compare(
            &format!("{backend} gru"),
            GruConfig::new(4, 6).with_num_layers(2).init(&device),
            &device,
        );
        compare(
            &format!("{backend} bidirectional gru"),
            GruConfig::new(4, 6)
                .with_num_layers(2)
                .with_bidirectional(true)
                .init(&device),
            &device,
        );
        compare(
            &format!("{backend} rnn"),
            RnnConfig::new(4, 6).with_bidirectional(true).init(&device),
            &device,
        );
        compare(
            &format!("{backend} relu rnn"),
            RnnConfig::new(4, 6)
                .with_nonlinearity(Nonlinearity::Relu)
                .with_num_layers(2)
                .init(&device),
            &device,
        );
        // Without biases the sequence ops get zeros for `b_ih` and `b_hh`.
        compare(
            &format!("{backend} lstm without biases"),
            LstmConfig::new(4, 6).with_bias(false).init(&device),
            &device,
        );
        compare(
            &format!("{backend} gru without biases"),
            GruConfig::new(4, 6).with_bias(false).init(&device),
            &device,
        );
        compare(
            &format!("{backend} rnn without biases"),
            RnnConfig::new(4, 6).with_bias(false).init(&device),
            &device,
        );
        // The LSTM's projection (`h` 3 wide, `c` 6), alone and with layer norms.
        let projected = LstmConfig::new(4, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_proj_size(3);
        compare(
            &format!("{backend} lstm with a projection"),
            projected.clone().init(&device),
            &device,
        );
        compare(
            &format!("{backend} layer-normalised lstm with a projection"),
            with_random_norms(projected.with_layer_norm(true).init(&device)),
            &device,
        );
        // Layer-normalised cells, their gains and biases away from 1 and 0.
        compare(
            &format!("{backend} layer-normalised lstm"),
            normalised_lstm(&device),
            &device,
        );
        compare(
            &format!("{backend} layer-normalised gru"),
            with_random_norms(
                GruConfig::new(4, 6)
                    .with_num_layers(2)
                    .with_bidirectional(true)
                    .with_layer_norm(true)
                    .init(&device),
            ),
            &device,
        );
        // Inference (no autodiff) takes the fused paths too: the sequence ops over several
        // steps (and over one for a batch of 1 or 2), the step ops for one.
        let plain = device.clone().without_autodiff();
        assert!(on_host(&plain));
        inference_matches(backend, "lstm", LstmConfig::new(4, 6).init(&plain), &plain);
        inference_matches(backend, "gru", GruConfig::new(4, 6).init(&plain), &plain);
        inference_matches(backend, "rnn", RnnConfig::new(4, 6).init(&plain), &plain);
        let projected = LstmConfig::new(4, 6)
            .with_proj_size(2)
            .with_bidirectional(true);
        inference_matches(
            backend,
            "lstm with a projection",
            projected.init(&plain),
            &plain,
        );
        let norms = LstmConfig::new(4, 6).with_layer_norm(true);
        inference_matches(
            backend,
            "layer-normalised lstm",
            with_random_norms(norms.init(&plain)),
            &plain,
        );
        // The bidirectional ops: both directions at once.
        inference_matches(
            backend,
            "bidirectional lstm",
            LstmConfig::new(4, 6)
                .with_num_layers(2)
                .with_bidirectional(true)
                .init(&plain),
            &plain,
        );
        inference_matches(
            backend,
            "bidirectional gru",
            GruConfig::new(4, 6).with_bidirectional(true).init(&plain),
            &plain,
        );
        inference_matches(
            backend,
            "bidirectional rnn",
            RnnConfig::new(4, 6)
                .with_num_layers(2)
                .with_bidirectional(true)
                .init(&plain),
            &plain,
        );
    }
}

/// A stacked bidirectional layer-normalised LSTM ([`with_random_norms`]).
fn normalised_lstm(device: &Device) -> Lstm {
    let lstm = LstmConfig::new(4, 6)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_layer_norm(true);
    with_random_norms(lstm.init(device))
}

/// `layer` with every layer norm's gain and bias drawn from `N(1, 0.5)` and `N(0, 0.5)`.
fn with_random_norms<C: CellKind>(mut layer: Recurrent<C>) -> Recurrent<C> {
    for l in &mut layer.layers {
        for w in std::iter::once(&mut l.forward).chain(l.reverse.as_mut()) {
            let n = w.layer_norm.as_mut().expect("a layer-normalised cell");
            for norm in [Some(&mut n.ih), Some(&mut n.hh), n.c.as_mut()]
                .into_iter()
                .flatten()
            {
                let device = norm.gamma.device();
                let width = norm.gamma.dims();
                let random =
                    |mean| Tensor::<1>::random(width, Distribution::Normal(mean, 0.5), &device);
                norm.gamma = Param::from_tensor(random(1.0));
                norm.beta = Some(Param::from_tensor(random(0.0)));
            }
        }
    }
    layer
}

/// Outputs and final state of `fused` against its composed twin, for 7 steps and for 1, in
/// batches of 3 (packed weights, or the step ops for one step) and 1 (weights read in place).
fn inference_matches<C: CellKind>(backend: &str, name: &str, fused: Recurrent<C>, device: &Device) {
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    for (batch, steps) in [(3, 7), (3, 1), (1, 7), (1, 1)] {
        let x = Tensor::<3>::random([batch, steps, 4], Distribution::Normal(0.0, 1.0), device);
        let (y1, s1) = fused.forward(x.clone(), None);
        let (y2, s2) = composed.forward(x, None);
        let mut diff = max_diff(y1, y2).max(max_diff(s1.hidden, s2.hidden));
        if let (Some(c1), Some(c2)) = (s1.cell, s2.cell) {
            diff = diff.max(max_diff(c1, c2));
        }
        assert!(
            diff < 1e-5,
            "{backend} {name}: inference over {steps} steps, batch {batch}, differs by {diff}"
        );
    }
}

/// `fused`'s [`sequent_models::recurrent::Stepper`] against its composed twin over the same 3
/// steps from a random state, in a batch of `batch`: every step's output and the final state.
fn stepper_matches<C: CellKind>(name: &str, fused: Recurrent<C>, batch: usize, device: &Device) {
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    let (steps, width, out_width) = (3, fused.input_size, fused.output_size());
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<3>::random([batch, steps, width], normal, device);
    let n = fused.num_layers() * fused.num_directions();
    let random = |w| Tensor::<3>::random([n, batch, w], normal, device);
    let start = RecurrentState {
        hidden: random(fused.state_width()),
        cell: C::HAS_CELL.then(|| random(fused.hidden_size)),
    };
    let (expected, last) = composed.forward(x.clone(), Some(start.clone()));
    let stepper = fused.stepper();
    let mut state = start;
    let mut diff = 0.0f32;
    for t in 0..steps {
        let x_t = x.clone().narrow(1, t, 1).reshape([batch, width]);
        let (out, next) = stepper.step(x_t, Some(state));
        let want = expected.clone().narrow(1, t, 1).reshape([batch, out_width]);
        diff = diff.max(max_diff(out, want));
        state = next;
    }
    diff = diff.max(max_diff(state.hidden, last.hidden));
    if let (Some(c1), Some(c2)) = (state.cell, last.cell) {
        diff = diff.max(max_diff(c1, c2));
    }
    assert!(diff < 1e-5, "{name}: the stepper differs by {diff}");
}

/// The stepper gives the stack's forward pass one step at a time on the CPU backends (where it
/// runs that pass over each step), whatever the options.
fn stepper_equals_forward_on_the_cpu_backends() {
    let _alone = HOST_DRAWS.lock().unwrap_or_else(|e| e.into_inner());
    for (backend, device) in common::backends() {
        let name = |what: &str| format!("{backend} {what}");
        let lstm = LstmConfig::new(4, 6).with_num_layers(2).with_proj_size(3);
        stepper_matches(&name("projected lstm"), lstm.init(&device), 2, &device);
        let gru = GruConfig::new(4, 5).with_num_layers(3);
        stepper_matches(&name("gru"), gru.init(&device), 3, &device);
    }
}

/// Held by each wgpu test of this file: the launch count sees every launch of the process.
#[cfg(feature = "wgpu")]
static ONE_WGPU_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// wgpu (and cuda) run every cell's layers (the GRU in both placements of its reset gate) as the
/// whole-sequence CubeCL kernels, padded or not, forward and backward: the same outputs, final
/// states and gradients as the composed ops. The hidden sizes put 42 rows of 6 units in a cube
/// (batch 3 in one), 2 rows of 100 (batch 3 in two cubes, the second half full), and one row of
/// 300 units (more than a cube's 256 units: each unit takes two) or of 37.
#[cfg(feature = "wgpu")]
fn kernels_equal_composed_on_wgpu(device: Device) {
    use sequent_models::recurrent::Engine;
    let _alone = ONE_WGPU_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let device = device.autodiff();
    assert_eq!(Kernels::Fused.engine(&device), Engine::Cube);
    assert_eq!(Kernels::Composed.engine(&device), Engine::Composed);
    device.seed(7);
    compare(
        "wgpu lstm",
        LstmConfig::new(4, 6)
            .with_num_layers(2)
            .with_bidirectional(true)
            .init(&device),
        &device,
    );
    compare(
        "wgpu gru",
        GruConfig::new(4, 100).with_num_layers(2).init(&device),
        &device,
    );
    compare(
        "wgpu bidirectional gru",
        GruConfig::new(4, 37).with_bidirectional(true).init(&device),
        &device,
    );
    compare(
        "wgpu reset-before gru",
        GruConfig::new(4, 100)
            .with_reset_after(false)
            .with_num_layers(2)
            .init(&device),
        &device,
    );
    compare(
        "wgpu bidirectional rnn",
        RnnConfig::new(4, 300)
            .with_bidirectional(true)
            .init(&device),
        &device,
    );
    compare(
        "wgpu relu rnn without biases",
        RnnConfig::new(4, 37)
            .with_nonlinearity(Nonlinearity::Relu)
            .with_bias(false)
            .init(&device),
        &device,
    );
    // Recurrent dropout in training runs inside the kernels, its masks drawn as the composed
    // path draws them: each way the kernels apply the mask (the product's input and its part of
    // `dh`, which the RNN shares with the LSTM; the GRU's recurrent gradients; the reset-before
    // GRU's `r h`), bidirectional, with lengths and without.
    let dropout = |cell: &str, lengths: Option<&[usize]>| {
        format!("wgpu {cell} with recurrent dropout, lengths {lengths:?}")
    };
    let lstm = LstmConfig::new(5, 6)
        .with_bidirectional(true)
        .with_recurrent_dropout(0.25);
    common::assert_seeded_fused_equals_composed(
        lstm.init(&device),
        &dropout("lstm", None),
        &device,
        None,
    );
    let lengths = Some(&[7, 4, 6][..]);
    let gru = GruConfig::new(5, 37)
        .with_bidirectional(true)
        .with_recurrent_dropout(0.25);
    common::assert_seeded_fused_equals_composed(
        gru.clone().init(&device),
        &dropout("gru", lengths),
        &device,
        lengths,
    );
    common::assert_seeded_fused_equals_composed(
        gru.with_reset_after(false).init(&device),
        &dropout("reset-before gru", None),
        &device,
        None,
    );
    // Zoneout in training runs inside the kernels too, its masks of `h` (and the LSTM's `c`) a
    // step drawn as the composed path draws them: each cell's split of `dh_t` between its new
    // state and `h_{t-1}` (the LSTM's of `dc_t` too), bidirectional, with lengths and without.
    let zoneout = |cell: &str| format!("wgpu {cell} with zoneout");
    let lstm = LstmConfig::new(5, 6).with_bidirectional(true);
    common::assert_seeded_fused_equals_composed(
        lstm.with_zoneout(0.3).init(&device),
        &zoneout("bidirectional lstm, lengths"),
        &device,
        lengths,
    );
    let gru = GruConfig::new(5, 37).with_zoneout(0.3);
    let zoned = [
        ("gru", gru.clone().init(&device)),
        (
            "reset-before gru",
            gru.with_reset_after(false).init(&device),
        ),
    ];
    for (name, layer) in zoned {
        common::assert_seeded_fused_equals_composed(layer, &zoneout(name), &device, None);
    }
    let rnn = RnnConfig::new(5, 37).with_zoneout(0.3).init(&device);
    common::assert_seeded_fused_equals_composed(rnn, &zoneout("rnn"), &device, None);
    // The LSTM's projection runs inside the kernels: `h_t = W_hr m_t` after every unit's `m_t`,
    // `dW_hr` from each step's `dh_t`; `P` much narrower than `H` (the final cells take 15 slabs
    // of the output), stacked and bidirectional, with lengths and without, and with recurrent
    // dropout on the `P` wide `h_{t-1}`.
    compare(
        "wgpu projected lstm",
        LstmConfig::new(4, 37)
            .with_proj_size(5)
            .with_num_layers(2)
            .with_bidirectional(true)
            .init(&device),
        &device,
    );
    let lstm = LstmConfig::new(5, 6).with_proj_size(4);
    common::assert_seeded_fused_equals_composed(
        lstm.clone().with_recurrent_dropout(0.25).init(&device),
        &dropout("projected lstm", lengths),
        &device,
        lengths,
    );
    // Zoneout with the projection: `h`'s masks `P` wide, `c`'s `H` wide.
    common::assert_seeded_fused_equals_composed(
        lstm.with_bidirectional(true)
            .with_zoneout(0.3)
            .init(&device),
        &zoneout("projected bidirectional lstm, lengths"),
        &device,
        lengths,
    );
    // Layer-normalised cells run inside the kernels: each step's norms of the recurrent product
    // and the LSTM's cell reduced over a row's units (several rows a cube at H = 6 and 37, a
    // row of 300 units over 256 units, each unit then two items), their gains and biases away
    // from 1 and 0; with the projection, zoneout and recurrent dropout.
    compare(
        "wgpu layer-normalised lstm",
        normalised_lstm(&device),
        &device,
    );
    compare(
        "wgpu layer-normalised gru",
        with_random_norms(GruConfig::new(4, 300).with_layer_norm(true).init(&device)),
        &device,
    );
    compare(
        "wgpu layer-normalised projected lstm",
        with_random_norms(
            LstmConfig::new(4, 37)
                .with_proj_size(5)
                .with_bidirectional(true)
                .with_layer_norm(true)
                .init(&device),
        ),
        &device,
    );
    let normalised = LstmConfig::new(5, 6)
        .with_layer_norm(true)
        .with_zoneout(0.3);
    common::assert_seeded_fused_equals_composed(
        with_random_norms(normalised.init(&device)),
        &zoneout("layer-normalised lstm, lengths"),
        &device,
        lengths,
    );
    common::assert_seeded_fused_equals_composed(
        with_random_norms(
            GruConfig::new(5, 37)
                .with_layer_norm(true)
                .with_recurrent_dropout(0.25)
                .init(&device),
        ),
        &dropout("layer-normalised gru", lengths),
        &device,
        lengths,
    );
    folded_embedding_matches(&device);
    bad_shapes_are_typed_errors(&device);
    let plain = device.clone().without_autodiff();
    inference_matches("wgpu", "lstm", LstmConfig::new(4, 100).init(&plain), &plain);
    inference_matches(
        "wgpu",
        "bidirectional gru",
        GruConfig::new(4, 6).with_bidirectional(true).init(&plain),
        &plain,
    );
    inference_matches("wgpu", "rnn", RnnConfig::new(4, 37).init(&plain), &plain);
    // Zoneout's expectation in evaluation, of `h` and `c`, with a projection and without.
    let lstm = LstmConfig::new(4, 100).with_zoneout(0.3);
    inference_matches(
        "wgpu",
        "lstm with zoneout",
        lstm.clone().init(&plain),
        &plain,
    );
    let projected = lstm.with_proj_size(30).init(&plain);
    inference_matches("wgpu", "projected lstm with zoneout", projected, &plain);
    let normalised = LstmConfig::new(4, 300).with_layer_norm(true).init(&plain);
    inference_matches(
        "wgpu",
        "layer-normalised lstm",
        with_random_norms(normalised),
        &plain,
    );
}

/// The folded embedding on wgpu (token ids into the first layer's sequence op: a gather of
/// `W_ih E^T`'s columns) against the stack over the embedded sequence: outputs, final states and
/// the embedding's gradient.
#[cfg(feature = "wgpu")]
fn folded_embedding_matches(device: &Device) {
    use burn::module::Module;
    use burn::nn::{Embedding, EmbeddingConfig};
    use burn::tensor::Int;

    #[derive(Module, Debug)]
    struct Model {
        embedding: Embedding,
        lstm: Recurrent<sequent_models::recurrent::LstmKind>,
    }
    let model = Model {
        embedding: EmbeddingConfig::new(7, 5).init(device),
        lstm: LstmConfig::new(5, 6).with_num_layers(2).init(device),
    };
    assert!(model.lstm.folds_embedding(7, 5, 3, device));
    let tokens = Tensor::<2, Int>::random([3, 5], Distribution::Uniform(0.0, 7.0), device);
    let run = |folded: bool| {
        let (out, state) = if folded {
            model
                .lstm
                .try_forward_embedded(&model.embedding, tokens.clone(), None)
        } else {
            let x = model.embedding.forward(tokens.clone());
            model.lstm.try_forward(x, None, None)
        }
        .unwrap();
        let loss = out.clone().powi_scalar(2).sum() + state.hidden.clone().sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let d_embedding = grads.get::<2>(model.embedding.weight.id).unwrap();
        (out, state.hidden, d_embedding)
    };
    let (o1, h1, e1) = run(true);
    let (o2, h2, e2) = run(false);
    assert!(
        max_diff(o1, o2) < 1e-5,
        "wgpu folded embedding: outputs differ"
    );
    assert!(
        max_diff(h1, h2) < 1e-5,
        "wgpu folded embedding: h_n differs"
    );
    assert!(
        max_diff(e1, e2) < 1e-4,
        "wgpu folded embedding: embedding gradients differ"
    );
}

/// Bad shapes on the GPU path are the CPU's typed errors.
#[cfg(feature = "wgpu")]
fn bad_shapes_are_typed_errors(device: &Device) {
    use sequent_models::SequentError;
    let gru = GruConfig::new(4, 6).init(device);
    let x = |width| Tensor::<3>::zeros([2, 3, width], device);
    let err = gru.try_forward(x(5), None, None).unwrap_err();
    assert!(
        matches!(err, SequentError::InputWidth { expected: 4, .. }),
        "{err}"
    );
    let err = gru.try_forward(x(4), None, Some(&[3])).unwrap_err();
    assert!(
        matches!(err, SequentError::LengthsCount { batch: 2, got: 1 }),
        "{err}"
    );
    let err = gru.try_forward(x(4), None, Some(&[3, 4])).unwrap_err();
    assert!(
        matches!(
            err,
            SequentError::Length {
                index: 1,
                length: 4,
                steps: 3
            }
        ),
        "{err}"
    );
    let state = RecurrentState {
        hidden: Tensor::zeros([2, 2, 6], device),
        cell: None,
    };
    let err = gru.try_forward(x(4), Some(state), None).unwrap_err();
    assert!(matches!(err, SequentError::StateShape { .. }), "{err}");
}

/// On wgpu (without autodiff) the stepper runs every layer's step in one kernel: the same
/// results as the composed stack for every cell (hidden sizes 37: one cube for the batch of 3;
/// 300: a cube a row, each unit taking two items), the CPU's typed errors, and as many launches a
/// step for 3 layers as for 1.
#[cfg(feature = "wgpu")]
fn stepper_is_one_launch_a_step_on_wgpu(device: Device) {
    use sequent_models::SequentError;
    use sequent_models::device::count_launches;
    let _alone = ONE_WGPU_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let device = device.without_autodiff();
    let lstm = |layers| LstmConfig::new(5, 37).with_num_layers(layers);
    stepper_matches("wgpu lstm", lstm(3).init(&device), 3, &device);
    let gru = GruConfig::new(5, 37).with_num_layers(2);
    stepper_matches("wgpu gru", gru.clone().init(&device), 3, &device);
    let before = gru.with_reset_after(false).init(&device);
    stepper_matches("wgpu reset-before gru", before, 3, &device);
    let rnn = RnnConfig::new(5, 300).with_num_layers(2).init(&device);
    stepper_matches("wgpu rnn", rnn, 2, &device);
    let relu = RnnConfig::new(5, 37)
        .with_nonlinearity(Nonlinearity::Relu)
        .with_bias(false)
        .init(&device);
    stepper_matches("wgpu relu rnn without biases", relu, 1, &device);
    language_stepper_matches(&device);

    let lstm3 = lstm(3).init(&device);
    let stepper = lstm3.stepper();
    let err = stepper
        .try_step(Tensor::zeros([3, 4], &device), None)
        .unwrap_err();
    assert!(
        matches!(err, SequentError::InputWidth { expected: 5, .. }),
        "{err}"
    );
    let x = Tensor::<2>::random([3, 5], Distribution::Normal(0.0, 1.0), &device);
    let bad = RecurrentState::lstm(
        Tensor::zeros([3, 2, 37], &device),
        Tensor::zeros([3, 2, 37], &device),
    );
    let err = stepper.try_step(x.clone(), Some(bad)).unwrap_err();
    assert!(matches!(err, SequentError::StateShape { .. }), "{err}");

    let launches = |layers| {
        let stack = lstm(layers).init(&device);
        let stepper = stack.stepper();
        let (_, state) = stepper.step(x.clone(), None);
        let _ = (
            x.to_data(),
            state.hidden.to_data(),
            state.cell.as_ref().map(Tensor::to_data),
        );
        count_launches(|| {
            let (out, state) = stepper.step(x.clone(), Some(state));
            let _ = (
                out.into_data(),
                state.hidden.into_data(),
                state.cell.map(Tensor::into_data),
            );
        })
    };
    let (one, three) = (launches(1), launches(3));
    // Nothing left queued: lavapipe compiles a queued kernel on its own thread, which crashes
    // if the process exits meanwhile.
    device.sync().unwrap();
    assert!(
        one == three && one <= 2,
        "stepper launches a step: {one} for 1 layer, {three} for 3"
    );
}

/// A language model's stepper on wgpu (embedding, the stack's one-launch step, head) against the
/// composed model over the whole sequence: the logits after every token.
#[cfg(feature = "wgpu")]
fn language_stepper_matches(device: &Device) {
    use burn::tensor::Int;
    use sequent_models::heads::LanguageModelConfig;
    let lstm = LstmConfig::new(6, 10).with_num_layers(2);
    let fused = LanguageModelConfig::new(7).init(lstm.init(device), device);
    let mut composed = fused.clone();
    composed.rnn.kernels = Kernels::Composed;
    let tokens = Tensor::<2, Int>::random([2, 4], Distribution::Uniform(0.0, 7.0), device);
    let (expected, _) = composed.forward(tokens.clone(), None);
    let stepper = fused.stepper();
    let mut state = None;
    for t in 0..4 {
        let (logits, next) = stepper
            .try_step(tokens.clone().narrow(1, t, 1).reshape([2]), state)
            .unwrap();
        let want = expected.clone().narrow(1, t, 1).reshape([2, 7]);
        let diff = max_diff(logits, want);
        assert!(
            diff < 1e-5,
            "wgpu language stepper, token {t}: differs by {diff}"
        );
        state = Some(next);
    }
}

/// On wgpu a layer's whole sequence is a fixed number of kernel launches, forward and backward:
/// a training step over 5, 20 or 60 steps launches about as many kernels (counted by CubeCL's
/// launch observer), where the composed per-step path launches more than 3 more a step.
#[cfg(feature = "wgpu")]
fn launches_do_not_grow_with_the_sequence_on_wgpu(device: Device) {
    let _alone = ONE_WGPU_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let device = device.autodiff();
    let fused = GruConfig::new(4, 6)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device);
    let mut composed = fused.clone();
    composed.kernels = Kernels::Composed;
    // The GEMMs' strategies (and so their launches) may differ between shapes, by a few.
    let fused: Vec<usize> = [5, 20, 60].map(|t| training_launches(&fused, t)).into();
    let composed: Vec<usize> = [5, 20].map(|t| training_launches(&composed, t)).into();
    let spread = fused.iter().max().unwrap() - fused.iter().min().unwrap();
    assert!(
        spread <= 16,
        "fused launches at 5, 20 and 60 steps: {fused:?}"
    );
    assert!(
        composed[1] > composed[0] + 15 * 3 && composed[0] > fused[0],
        "composed launches at 5 and 20 steps: {composed:?}; fused: {fused:?}"
    );
    // So does the projected LSTM's (its `h_t = W_hr m_t` inside the kernels).
    let projected = LstmConfig::new(4, 6)
        .with_proj_size(3)
        .with_bidirectional(true)
        .init(&device);
    let launches = [5, 20].map(|t| training_launches(&projected, t));
    assert!(
        launches[1] <= launches[0] + 16,
        "projected lstm's launches at 5 and 20 steps: {launches:?}"
    );
    // And the layer-normalised LSTM's (its norms' row sums inside the kernels).
    let normalised = LstmConfig::new(4, 6)
        .with_layer_norm(true)
        .with_bidirectional(true)
        .init(&device);
    let launches = [5, 20].map(|t| training_launches(&normalised, t));
    assert!(
        launches[1] <= launches[0] + 16,
        "layer-normalised lstm's launches at 5 and 20 steps: {launches:?}"
    );
}

/// The kernel launches of a training step of `layer` over `steps` steps of a batch of 3 (after
/// one step that compiles and tunes the kernels of these shapes).
#[cfg(feature = "wgpu")]
fn training_launches<C: CellKind>(layer: &Recurrent<C>, steps: usize) -> usize {
    let device = layer.layers[0].forward.weight_hh.device();
    let step = || {
        let x = Tensor::<3>::random([3, steps, 4], Distribution::Normal(0.0, 1.0), &device);
        let (y, _) = layer.forward(x.require_grad(), None);
        let grads = y.clone().powi_scalar(2).sum().backward();
        let d_w = layer.layers[0].forward.weight_hh.grad(&grads).unwrap();
        let _: f32 = (y.sum().inner() + d_w.sum()).into_scalar();
    };
    step();
    sequent_models::device::count_launches(step)
}

fn the_config_switch_selects_the_composed_path() {
    let _alone = HOST_DRAWS.lock().unwrap_or_else(|e| e.into_inner());
    let device = common::backends()[0].1.clone();
    let layer = LstmConfig::new(2, 3)
        .with_kernels(Kernels::Composed)
        .init(&device);
    assert_eq!(layer.kernels, Kernels::Composed);
    assert_eq!(LstmConfig::new(2, 3).init(&device).kernels, Kernels::Fused);
    let cell = GruConfig::new(2, 3)
        .with_kernels(Kernels::Composed)
        .init_cell(&device);
    assert_eq!(cell.kernels, Kernels::Composed);
}

/// The wgpu gate of `common::trials`, run on this binary's wgpu test with no adapter to be found (the
/// Vulkan drivers hidden, and the default device set to one that no machine has): without
/// `SEQUENT_REQUIRE_WGPU` the test is ignored with its reason, with it the test fails.
#[cfg(feature = "wgpu")]
fn the_wgpu_gate_skips_or_fails_without_an_adapter() {
    let run = |require: bool| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "kernels_equal_composed_on_wgpu",
                "--test-threads",
                "1",
            ])
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
            .env("CUBECL_WGPU_DEFAULT_DEVICE", "VirtualGpu(99)")
            .env_remove(common::trials::REQUIRE_WGPU);
        if require {
            command.env(common::trials::REQUIRE_WGPU, "1");
        }
        let out = command.output().expect("runs this test binary");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    };
    let (passed, text) = run(false);
    assert!(passed, "{text}");
    assert!(text.contains("0 passed; 0 failed; 1 ignored"), "{text}");
    assert!(
        text.lines().any(|l| l.contains(
            "kernels_equal_composed_on_wgpu ... ignored (device `wgpu`: no adapter answered"
        ) && l.contains("mesa-vulkan-drivers")),
        "{text}"
    );
    let (passed, text) = run(true);
    assert!(!passed, "{text}");
    assert!(text.contains("0 passed; 1 failed"), "{text}");
    assert!(
        text.contains("SEQUENT_REQUIRE_WGPU is set and device `wgpu`: no adapter answered"),
        "{text}"
    );
}

fn main() {
    #[allow(unused_mut)] // pushed to behind the wgpu feature
    let mut trials = vec![
        common::trials::test(
            "fused_equals_composed_on_the_cpu_backends",
            fused_equals_composed_on_the_cpu_backends,
        ),
        common::trials::test(
            "the_config_switch_selects_the_composed_path",
            the_config_switch_selects_the_composed_path,
        ),
        common::trials::test(
            "stepper_equals_forward_on_the_cpu_backends",
            stepper_equals_forward_on_the_cpu_backends,
        ),
    ];
    #[cfg(feature = "wgpu")]
    trials.extend([
        common::trials::wgpu_test(
            "kernels_equal_composed_on_wgpu",
            kernels_equal_composed_on_wgpu,
        ),
        common::trials::wgpu_test(
            "stepper_is_one_launch_a_step_on_wgpu",
            stepper_is_one_launch_a_step_on_wgpu,
        ),
        common::trials::wgpu_test(
            "launches_do_not_grow_with_the_sequence_on_wgpu",
            launches_do_not_grow_with_the_sequence_on_wgpu,
        ),
        common::trials::test(
            "the_wgpu_gate_skips_or_fails_without_an_adapter",
            the_wgpu_gate_skips_or_fails_without_an_adapter,
        ),
    ]);
    common::trials::run(trials);
}
