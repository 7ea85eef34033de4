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
//!
//! The rounding, the reduction and the polynomial (Horner's scheme) are written as fused
//! multiply-adds (`f32::mul_add`), which the AVX-512 and AVX2 copies of a `multiversion!` body
//! compile to `vfmadd` (Rust does not contract `a * b + c` by itself): measured, `tanh` 0.36
//! against 0.54-0.68 ns an element and the LSTM's training step kernel 2.8 against 3.8-4.2 ns a
//! unit. A CPU without FMA runs the baseline copy, where `mul_add` is libm's (exact, slower).

/// Columns a host kernel handles together: one AVX-512 register of f32, two AVX2 ones.
pub(crate) const LANES: usize = 16;

/// `e^x` by the range reduction and polynomial of the module docs.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` stops the loop from vectorising; NaN is handled below.
pub fn exp(input: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Cephes' split of ln 2: LN2_HI has few enough bits that k * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = input.max(-87.0).min(88.0);
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits: `t` has the bits of
    // `ROUND + k`, so `k` comes from integer arithmetic on them (no float-to-int conversion,
    // which stops the loop vectorising).
    let t = x.mul_add(LOG2E, ROUND);
    let k = t - ROUND;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    let p = [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]
        .into_iter()
        .fold(1.0f32 / 720.0, |p, c| p.mul_add(r, c));
    // k is an integer in [-126, 127] after the clamp; 2^k has the exponent bits k + 127.
    let bits = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    let y = p * f32::from_bits(bits);
    if input.is_nan() { input } else { y }
}

/// `sigmoid(x) = 1 / (1 + e^{-x})`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 1 - 2 / (e^{2x} + 1)`.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2 + FMA and for the
/// baseline, and which runs the widest one this CPU has (checked at run time), so that the loops
/// in the body vectorise for the machine at hand. The body is an `#[inline(always)]` function
/// called from inside each `#[target_feature]` copy: a closure passed to a generic dispatcher is
/// compiled on its own for the baseline and is not vectorised (measured: 4-wide SSE code).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                match $crate::host::math::Simd::detect() {
                    // SAFETY: the CPU has every feature `wide` is compiled for.
                    $crate::host::math::Simd::Avx512 => return unsafe { wide($($arg),*) },
                    // SAFETY: the CPU has every feature `avx2` is compiled for.
                    $crate::host::math::Simd::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::host::math::Simd::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// The widest vector unit the `multiversion!` functions can use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// AVX-512 F, BW, DQ and VL (16 lanes of f32).
    Avx512,
    /// AVX2 with FMA (8 lanes).
    Avx2,
    /// Whatever the compilation target guarantees.
    Baseline,
}

impl Simd {
    /// Detects the widest unit (cached by the standard library after the first call).
    #[inline]
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            // Every feature the AVX-512 paths are compiled with (`avx512f,avx512bw,avx512dq,
            // avx512vl,avx2,fma` here, `avx512f,fma` in the packed product).
            if has!("avx512f")
                && has!("avx512bw")
                && has!("avx512dq")
                && has!("avx512vl")
                && has!("avx2")
                && has!("fma")
            {
                return Simd::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }
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

    multiversion! {
        fn tanh_all(x: &[f32], out: &mut [f32]) {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = tanh(v);
            }
        }
    }

    #[test]
    fn multiversioned_body_matches_the_scalar_one() {
        let x: Vec<f32> = (0..67).map(|i| (i as f32 - 33.0) / 7.0).collect();
        let mut out = vec![0f32; x.len()];
        tanh_all(&x, &mut out);
        for (o, &v) in out.iter().zip(&x) {
            assert_eq!(*o, tanh(v), "at {v}");
        }
    }
}
