//! The fused cross-entropy against Burn's composed loss and the analytic gradient.

mod common;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use sequent_models::loss::{cross_entropy, sequence_cross_entropy};

/// Loss and `dL/dlogits` of `loss` at `logits` `[N, V]` (values) and `targets`.
fn value_and_grad(
    device: &Device,
    logits: &Tensor<2>,
    targets: &[i64],
    loss: impl Fn(Tensor<2>, Tensor<1, Int>) -> Tensor<1>,
) -> (f32, Vec<f32>) {
    let x = Tensor::<2>::from_data(logits.to_data(), device).require_grad();
    let t = Tensor::<1, Int>::from_data(TensorData::from(targets), device);
    let l = loss(x.clone(), t);
    let value: f32 = l.clone().into_scalar();
    let grads = l.backward();
    let g = x
        .grad(&grads)
        .expect("a gradient")
        .to_data()
        .try_into_vec::<f32>()
        .unwrap();
    (value, g)
}

#[test]
fn fused_cross_entropy_equals_burns_loss_and_the_analytic_gradient() {
    for (name, device) in common::backends() {
        let (n, v) = (37, 70);
        // Logits spread over +-30: the softmax must not overflow.
        let logits = Tensor::<2>::random([n, v], Distribution::Uniform(-30.0, 30.0), &device);
        let targets: Vec<i64> = (0..n as i64).map(|i| (i * 13) % v as i64).collect();
        let (fused, g_fused) = value_and_grad(&device, &logits, &targets, cross_entropy);
        let (burn, g_burn) = value_and_grad(&device, &logits, &targets, |x, t| {
            CrossEntropyLossConfig::new()
                .init(&x.device())
                .forward(x, t)
        });
        assert!(
            (fused - burn).abs() <= 1e-5 * burn.abs().max(1.0),
            "{name}: {fused} vs {burn}"
        );
        // dL/dx_nj = (softmax(x_n)_j - [j = t_n]) / N, from the logits in f64.
        let x: Vec<f32> = logits.to_data().try_into_vec::<f32>().unwrap();
        // Each row's maximum and sum of e^{x - max}.
        let rows: Vec<(f64, f64)> = x
            .chunks(v)
            .map(|row| {
                let m = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
                (m, row.iter().map(|&x| (x as f64 - m).exp()).sum())
            })
            .collect();
        let mean: f64 = rows
            .iter()
            .zip(x.chunks(v).zip(&targets))
            .map(|((m, sum), (row, &t))| (m + sum.ln() - row[t as usize] as f64) / n as f64)
            .sum();
        assert!(
            (fused as f64 - mean).abs() <= 1e-5 * mean.abs().max(1.0),
            "{name}"
        );
        for (i, (gf, gb)) in g_fused.iter().zip(&g_burn).enumerate() {
            let (r, j) = (i / v, i % v);
            let (m, sum) = rows[r];
            let p = (x[i] as f64 - m).exp() / sum;
            let want = (p - if j as i64 == targets[r] { 1.0 } else { 0.0 }) / n as f64;
            assert!(
                (*gf as f64 - want).abs() <= 1e-6,
                "{name} ({r}, {j}): {gf} vs {want}"
            );
            assert!(
                (gf - gb).abs() <= 1e-6,
                "{name} ({r}, {j}): fused {gf}, Burn {gb}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "cross-entropy target 5 is outside 0..5")]
fn a_target_outside_the_classes_is_named() {
    let device = common::backends()[0].1.clone();
    let logits = Tensor::<2>::zeros([2, 5], &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::from([1i64, 5]), &device);
    let _ = cross_entropy(logits, targets);
}

#[test]
#[should_panic(expected = "cross-entropy of 0 rows of 5 classes")]
fn no_rows_is_named() {
    let device = common::backends()[0].1.clone();
    let logits = Tensor::<2>::zeros([0, 5], &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::from([0i64; 0]), &device);
    let _ = cross_entropy(logits, targets);
}

/// The time-major sequence loss is the mean over the batch-first rows, with the same gradient, on
/// batch-first logits and on the time-major view the language heads return.
#[test]
fn sequence_cross_entropy_is_the_mean_over_every_step() {
    for (name, device) in common::backends() {
        let (b, t, v) = (3, 5, 7);
        let targets: Vec<i64> = (0..(b * t) as i64).map(|i| (i * 5) % v as i64).collect();
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
        let values = Tensor::<3>::random([b, t, v], Distribution::Uniform(-5.0, 5.0), &device);
        for time_major in [false, true] {
            let x = if time_major {
                values.clone().swap_dims(0, 1).require_grad()
            } else {
                values.clone().require_grad()
            };
            let logits = if time_major {
                x.clone().swap_dims(0, 1)
            } else {
                x.clone()
            };
            let l = sequence_cross_entropy(logits.clone(), targets.clone());
            let flat = cross_entropy(
                values.clone().reshape([b * t, v]),
                targets.clone().reshape([b * t]),
            );
            let (got, want): (f32, f32) = (l.clone().into_scalar(), flat.into_scalar());
            assert!((got - want).abs() <= 1e-6, "{name}: {got} vs {want}");
            let grads = l.backward();
            let g = x.grad(&grads).expect("a gradient");
            let g = if time_major { g.swap_dims(0, 1) } else { g };
            let reference = {
                let y = values.clone().reshape([b * t, v]).require_grad();
                let grads = cross_entropy(y.clone(), targets.clone().reshape([b * t])).backward();
                y.grad(&grads).unwrap().reshape([b, t, v])
            };
            let diff: f32 = (g - reference).abs().max().into_scalar();
            assert!(diff <= 1e-7, "{name} (time-major {time_major}): {diff}");
        }
    }
}
