//! A small seedable random generator for host-side sampling (batches, generation), so that
//! sampling is reproducible across platforms and backends.

use rayon::prelude::*;

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea & Flood 2014): `state += 0x9E3779B97F4A7C15`, then an avalanche of
/// xor-shifts and multiplies. The `k`-th draw depends on the seed and `k` alone, so long runs of
/// draws ([`Self::bernoulli`]) are computed apart, in parallel.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

/// The avalanche of SplitMix64's output from its state `z`.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// [`SplitMix64::unit`] of the output bits `z`.
#[inline(always)]
fn unit_of(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        unit_of(self.next_u64())
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` draws of 1.0 with probability `keep`, else 0.0 (`unit() < keep`, draw by draw), in
    /// blocks on the pool's threads.
    pub fn bernoulli(&mut self, n: usize, keep: f64) -> Vec<f32> {
        const BLOCK: usize = 1 << 14;
        let start = self.0;
        let mut out = vec![0f32; n];
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(block, out)| {
                let first = (block * BLOCK) as u64;
                for (k, o) in (first..).zip(out.iter_mut()) {
                    let z = mix(start.wrapping_add(GAMMA.wrapping_mul(k + 1)));
                    *o = if unit_of(z) < keep { 1.0 } else { 0.0 };
                }
            });
        self.0 = start.wrapping_add(GAMMA.wrapping_mul(n as u64));
        out
    }

    /// A standard normal draw (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An index drawn from the unnormalised non-negative `weights`.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let mut u = self.unit() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            u -= w;
            if u <= 0.0 {
                return i;
            }
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    /// The draws of `bernoulli`, computed apart in blocks, are those of `unit` one after the
    /// other, and the generator goes on where they end.
    #[test]
    fn bernoulli_is_unit_draw_by_draw() {
        let n = 3 * (1 << 14) + 17;
        let (mut blocks, mut serial) = (SplitMix64::new(42), SplitMix64::new(42));
        let got = blocks.bernoulli(n, 0.3);
        let want: Vec<f32> = (0..n)
            .map(|_| if serial.unit() < 0.3 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(got, want);
        assert_eq!(blocks.next_u64(), serial.next_u64());
    }
}
