//! Seeded synthetic data with known answers: d2l's noisy sine, the adding problem and the
//! copy-memory task (Arjovsky, Shah & Bengio 2016 definitions).

use sequent_models::rng::SplitMix64;

/// d2l's series `x_t = sin(0.01 t) + N(0, 0.2^2)` for `t = 1..=steps`.
pub fn noisy_sine(steps: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (1..=steps)
        .map(|t| ((0.01 * t as f64).sin() + 0.2 * rng.normal()) as f32)
        .collect()
}

/// One adding-problem example: `inputs[t] = [value_t, marker_t]`, `target` the sum of the two marked
/// values.
#[derive(Clone, Debug, PartialEq)]
pub struct AddingExample {
    /// `[T][2]`: values `~ U[0, 1]` and a 0/1 marker.
    pub inputs: Vec<[f32; 2]>,
    /// Sum of the two marked values.
    pub target: f32,
}

/// The adding problem of Arjovsky et al. 2016: two channels of length `steps` (`>= 2`); values
/// `~ U[0, 1]`; exactly two markers, one uniform in the first half `[0, T/2)` and one uniform in the
/// second half `[T/2, T)`; the target is the sum of the two marked values. Always predicting 1 gives
/// MSE `Var(U + U) = 1/6` ([`ADDING_BASELINE_MSE`]).
pub fn adding(examples: usize, steps: usize, seed: u64) -> Vec<AddingExample> {
    assert!(steps >= 2, "the adding problem needs T >= 2");
    let mut rng = SplitMix64::new(seed);
    let half = steps / 2;
    (0..examples)
        .map(|_| {
            let mut inputs: Vec<[f32; 2]> = (0..steps).map(|_| [rng.unit() as f32, 0.0]).collect();
            let first = rng.below(half);
            let second = half + rng.below(steps - half);
            inputs[first][1] = 1.0;
            inputs[second][1] = 1.0;
            let target = inputs[first][0] + inputs[second][0];
            AddingExample { inputs, target }
        })
        .collect()
}

/// MSE of always predicting 1 on the adding problem: `Var(U[0,1] + U[0,1]) = 1/6`.
pub const ADDING_BASELINE_MSE: f64 = 1.0 / 6.0;

/// Blank symbol of the copy task.
pub const COPY_BLANK: u32 = 0;
/// Delimiter symbol of the copy task.
pub const COPY_DELIMITER: u32 = 9;
/// Number of symbols of the copy task's alphabet (`0..=9`).
pub const COPY_VOCAB: usize = 10;

/// One copy-memory example: `inputs` and `targets`, each of length `T + 20`.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyExample {
    /// 10 symbols from `1..=8`, `T - 1` blanks, the delimiter, 10 blanks.
    pub inputs: Vec<u32>,
    /// `T + 10` blanks, then the 10 symbols.
    pub targets: Vec<u32>,
}

/// The copy-memory task of Arjovsky et al. 2016 with delay `steps` (`T >= 1`).
pub fn copy_memory(examples: usize, steps: usize, seed: u64) -> Vec<CopyExample> {
    assert!(steps >= 1, "the copy task needs T >= 1");
    let mut rng = SplitMix64::new(seed);
    (0..examples)
        .map(|_| {
            let symbols: Vec<u32> = (0..10).map(|_| 1 + rng.below(8) as u32).collect();
            let mut inputs = symbols.clone();
            inputs.extend(std::iter::repeat_n(COPY_BLANK, steps - 1));
            inputs.push(COPY_DELIMITER);
            inputs.extend(std::iter::repeat_n(COPY_BLANK, 10));
            let mut targets = vec![COPY_BLANK; steps + 10];
            targets.extend(&symbols);
            CopyExample { inputs, targets }
        })
        .collect()
}

/// Cross-entropy of the memoryless strategy on the copy task (blank everywhere, uniform over the 8
/// symbols in the last 10 steps): `10 ln 8 / (T + 20)`.
pub fn copy_baseline_cross_entropy(steps: usize) -> f64 {
    10.0 * 8f64.ln() / (steps + 20) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_has_the_right_signal_and_noise() {
        let x = noisy_sine(1000, 1);
        assert_eq!(x.len(), 1000);
        let resid: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v as f64 - (0.01 * (i + 1) as f64).sin())
            .collect();
        let var = resid.iter().map(|r| r * r).sum::<f64>() / 1000.0;
        assert!((var - 0.04).abs() < 0.008, "noise variance {var}");
        assert_eq!(x, noisy_sine(1000, 1), "seeded");
    }

    #[test]
    fn adding_examples_follow_the_definition_and_the_baseline_is_one_sixth() {
        let data = adding(20_000, 50, 7);
        for ex in &data {
            let marks: Vec<usize> = (0..50).filter(|&t| ex.inputs[t][1] == 1.0).collect();
            assert_eq!(marks.len(), 2);
            assert!(marks[0] < 25 && marks[1] >= 25);
            assert!(ex.inputs.iter().all(|v| (0.0..1.0).contains(&v[0])));
            assert_eq!(ex.target, ex.inputs[marks[0]][0] + ex.inputs[marks[1]][0]);
        }
        let mse = data
            .iter()
            .map(|e| (e.target as f64 - 1.0).powi(2))
            .sum::<f64>()
            / data.len() as f64;
        assert!(
            (mse - ADDING_BASELINE_MSE).abs() < 0.005,
            "predict-1 MSE {mse}"
        );
    }

    #[test]
    fn copy_examples_follow_the_definition() {
        let t = 30;
        for ex in copy_memory(100, t, 3) {
            assert_eq!(ex.inputs.len(), t + 20);
            assert_eq!(ex.targets.len(), t + 20);
            assert!(ex.inputs[..10].iter().all(|s| (1..=8).contains(s)));
            assert!(ex.inputs[10..t + 9].iter().all(|&s| s == COPY_BLANK));
            assert_eq!(ex.inputs[t + 9], COPY_DELIMITER);
            assert!(ex.inputs[t + 10..].iter().all(|&s| s == COPY_BLANK));
            assert!(ex.targets[..t + 10].iter().all(|&s| s == COPY_BLANK));
            assert_eq!(&ex.targets[t + 10..], &ex.inputs[..10]);
        }
        assert!((copy_baseline_cross_entropy(100) - 10.0 * 8f64.ln() / 120.0).abs() < 1e-15);
    }
}
