//! Test support: analytic gradients against central differences.

/// Checks `grads[k]`, the gradient of `loss` with respect to argument `k`, against central
/// differences (step `1e-2`) within `tolerance`, element by element.
pub fn check_gradients(
    args: &[Vec<f32>],
    grads: &[&Vec<f32>],
    loss: impl Fn(&[Vec<f32>]) -> f64,
    tolerance: f64,
) {
    assert_eq!(args.len(), grads.len());
    for (which, grad) in grads.iter().enumerate() {
        assert_eq!(grad.len(), args[which].len(), "argument {which}");
        for k in 0..grad.len() {
            let mut a = args.to_vec();
            a[which][k] += 1e-2;
            let up = loss(&a);
            a[which][k] -= 2e-2;
            let numeric = (up - loss(&a)) / 2e-2;
            assert!(
                (numeric - grad[k] as f64).abs() < tolerance,
                "argument {which} element {k}: numeric {numeric} analytic {}",
                grad[k]
            );
        }
    }
}
