//! A small seedable random generator for host-side sampling (batches, generation), so that
//! sampling is reproducible across platforms and backends.

/// SplitMix64 (Steele, Lea & Flood 2014): `state += 0x9E3779B97F4A7C15`, then an avalanche of
/// xor-shifts and multiplies.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `n` draws of 1.0 with probability `keep`, else 0.0.
    pub fn bernoulli(&mut self, n: usize, keep: f64) -> Vec<f32> {
        (0..n)
            .map(|_| if self.unit() < keep { 1.0 } else { 0.0 })
            .collect()
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
