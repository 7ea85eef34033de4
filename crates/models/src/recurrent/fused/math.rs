//! Vectorisable `exp`, `sigmoid` and `tanh` for f32 slices, compiled for AVX-512 and AVX2 and
//! chosen at run time (the scalar libm calls Burn's CPU backends make cost 5-14 ns an element;
//! these cost well under 1 ns).
//!
//! `exp(x)`: `k = round(x log2 e)` (by adding and subtracting `1.5 * 2^23`, which vectorises where
//! `f32::round` does not), `r = x - k ln 2` with `ln 2` split in a high and a low part, `exp(r)` by
//! its degree-6 Taylor polynomial (`|r| <= ln2 / 2`, truncation below `1.2e-7` relative), and `2^k`
//! from the exponent bits; `x` is clamped to `[-87, 88]`. `sigmoid(x) = 1 / (1 + exp(-x))`,
//! `tanh(x) = 1 - 2 / (exp(2x) + 1)`. Measured against f64 over `[-20, 20]` (see the tests):
//! sigmoid within `3e-7` relative, tanh within `3e-7` absolute.

#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` stops the loop from vectorising; NaN is handled below.
fn exp_approx(input: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Cephes' split of ln 2: LN2_HI has few enough bits that k * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = input.max(-87.0).min(88.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // k is an integer in [-126, 127] after the clamp; build 2^k from the exponent bits.
    let bits = ((k as i32 + 127) as u32) << 23;
    let y = p * f32::from_bits(bits);
    // NaN in, NaN out (the clamp would turn it into a number and hide a diverging run).
    if input.is_nan() { input } else { y }
}

/// `sigmoid(x) = 1 / (1 + e^{-x})`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-x))
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp_approx(2.0 * x) + 1.0)
}

/// Runs `body` compiled for the widest vector unit this CPU has (AVX-512, AVX2 + FMA, or the
/// baseline), so that the loops inside it vectorise for it.
#[inline(always)]
pub fn dispatch<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
        unsafe fn wide<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has every feature `wide` is compiled for.
            return unsafe { wide(body) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has every feature `avx2` is compiled for.
            return unsafe { avx2(body) };
        }
    }
    body()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_f64_references() {
        let (mut sig_rel, mut tanh_abs) = (0f64, 0f64);
        for i in 0..=400_000 {
            // The f32 input, exactly as f64 (the reference must not see the rounding of x).
            let x = (-20.0 + 40.0 * i as f64 / 400_000.0) as f32 as f64;
            let s = 1.0 / (1.0 + (-x).exp());
            sig_rel = sig_rel.max(((sigmoid(x as f32) as f64) - s).abs() / s);
            tanh_abs = tanh_abs.max(((tanh(x as f32) as f64) - x.tanh()).abs());
        }
        assert!(sig_rel < 3e-7, "sigmoid relative error {sig_rel}");
        assert!(tanh_abs < 3e-7, "tanh absolute error {tanh_abs}");
        // Saturation far outside the clamp stays finite and exact.
        assert_eq!(tanh(1e4), 1.0);
        assert_eq!(tanh(-1e4), -1.0);
        assert!(sigmoid(1e4) == 1.0 && sigmoid(-1e4) < 1e-37);
        assert!(sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
    }

    #[test]
    fn dispatch_runs_the_body() {
        let v: Vec<f32> = dispatch(|| (0..64).map(|i| tanh(i as f32 / 10.0)).collect());
        assert!((v[10] - 1f32.tanh()).abs() < 1e-6);
    }
}
