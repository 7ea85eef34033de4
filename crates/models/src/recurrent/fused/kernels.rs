//! The pointwise part of a time step, forward and backward, on host slices (row-major `[B, k H]`),
//! with the fast activations of [`super::math`]. Each kernel is a [`multiversion`] function,
//! so its loop vectorises for the CPU at hand.

use super::math::{multiversion, sigmoid, tanh};

/// The `N` consecutive length-`h` blocks of `row` (gate blocks of one batch row). Each block has
/// length exactly `h`, so loops over `0..h` index them without bounds checks and vectorise.
#[inline(always)]
fn blocks<const N: usize>(row: &[f32], h: usize) -> [&[f32]; N] {
    std::array::from_fn(|k| &row[k * h..][..h])
}

/// [`blocks`] for writing.
#[inline(always)]
fn blocks_mut<const N: usize>(row: &mut [f32], h: usize) -> [&mut [f32]; N] {
    let mut rest = &mut row[..N * h];
    std::array::from_fn(|_| {
        let (block, tail) = std::mem::take(&mut rest).split_at_mut(h);
        rest = tail;
        block
    })
}

multiversion! {
    /// LSTM forward. `gates` `[B, 4H]` (pre-activations `i, f, g, o`), `c_prev` `[B, H]`; writes
    /// `c = s(f) c_prev + s(i) tanh(g)` to `c_out` and `h = s(o) tanh(c)` to `h_out` (`[B, H]` each).
    pub fn lstm_forward(
        gates: &[f32],
        c_prev: &[f32],
        h: usize,
        h_out: &mut [f32],
        c_out: &mut [f32],
    ) {
        for r in 0..c_prev.len() / h {
            let [gi, gf, gg, go] = blocks(&gates[r * 4 * h..], h);
            let [cp] = blocks(&c_prev[r * h..], h);
            let [ho] = blocks_mut(&mut h_out[r * h..], h);
            let [co] = blocks_mut(&mut c_out[r * h..], h);
            for j in 0..h {
                let c = sigmoid(gf[j]) * cp[j] + sigmoid(gi[j]) * tanh(gg[j]);
                co[j] = c;
                ho[j] = sigmoid(go[j]) * tanh(c);
            }
        }
    }
}

multiversion! {
    /// LSTM backward: from `dh` = `dL/dh` and `dc` = `dL/dc` (`[B, H]`) writes `dL/dgates` `[B, 4H]`
    /// to `d_gates` and `dL/dc_prev` `[B, H]` to `dc_prev`, recomputing the activations.
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_backward(
        gates: &[f32],
        c_prev: &[f32],
        dh: &[f32],
        dc: &[f32],
        h: usize,
        d_gates: &mut [f32],
        dc_prev: &mut [f32],
    ) {
        for r in 0..c_prev.len() / h {
            let [gi, gf, gg, go] = blocks(&gates[r * 4 * h..], h);
            let [cp, dh, dc_out] = [&c_prev[r * h..], &dh[r * h..], &dc[r * h..]].map(|s| &s[..h]);
            let [di, df, dgg, d_o] = blocks_mut(&mut d_gates[r * 4 * h..], h);
            let [dcp] = blocks_mut(&mut dc_prev[r * h..], h);
            for j in 0..h {
                let (i, f) = (sigmoid(gi[j]), sigmoid(gf[j]));
                let (g, o) = (tanh(gg[j]), sigmoid(go[j]));
                let tc = tanh(f * cp[j] + i * g);
                let dc = dc_out[j] + dh[j] * o * (1.0 - tc * tc);
                di[j] = dc * g * i * (1.0 - i);
                df[j] = dc * cp[j] * f * (1.0 - f);
                dgg[j] = dc * i * (1.0 - g * g);
                d_o[j] = dh[j] * tc * o * (1.0 - o);
                dcp[j] = dc * f;
            }
        }
    }
}

multiversion! {
    /// GRU forward (PyTorch's reset-after form). `x_proj`, `h_proj` `[B, 3H]` (`r, z, n` blocks of
    /// `x W_ih^T + b_ih` and `h W_hh^T + b_hh`), `h_prev` `[B, H]`; writes
    /// `h' = (1 - z) n + z h_prev` to `out` with `r = s(x_r + h_r)`, `z = s(x_z + h_z)`,
    /// `n = tanh(x_n + r h_n)`.
    pub fn gru_forward(x_proj: &[f32], h_proj: &[f32], h_prev: &[f32], h: usize, out: &mut [f32]) {
        for row in 0..h_prev.len() / h {
            let [xr, xz, xn] = blocks(&x_proj[row * 3 * h..], h);
            let [hr, hz, hn] = blocks(&h_proj[row * 3 * h..], h);
            let [prev] = blocks(&h_prev[row * h..], h);
            let [o] = blocks_mut(&mut out[row * h..], h);
            for j in 0..h {
                let r = sigmoid(xr[j] + hr[j]);
                let z = sigmoid(xz[j] + hz[j]);
                let n = tanh(xn[j] + r * hn[j]);
                o[j] = (1.0 - z) * n + z * prev[j];
            }
        }
    }
}

/// Where [`gru_backward`] writes: `dL/dx_proj`, `dL/dh_proj` (`[B, 3H]` each), `dL/dh_prev`
/// (`[B, H]`).
pub struct GruGrads<'a> {
    /// `dL/dx_proj`.
    pub x_proj: &'a mut [f32],
    /// `dL/dh_proj`.
    pub h_proj: &'a mut [f32],
    /// `dL/dh_prev`.
    pub h_prev: &'a mut [f32],
}

multiversion! {
    /// GRU backward from `grad` = `dL/dh'` `[B, H]`.
    pub fn gru_backward(
        x_proj: &[f32],
        h_proj: &[f32],
        h_prev: &[f32],
        grad: &[f32],
        h: usize,
        out: GruGrads<'_>,
    ) {
        for row in 0..h_prev.len() / h {
            let [xr, xz, xn] = blocks(&x_proj[row * 3 * h..], h);
            let [hr, hz, hn] = blocks(&h_proj[row * 3 * h..], h);
            let [prev, g] = [&h_prev[row * h..], &grad[row * h..]].map(|s| &s[..h]);
            let [dxr, dxz, dxn] = blocks_mut(&mut out.x_proj[row * 3 * h..], h);
            let [dhr, dhz, dhn] = blocks_mut(&mut out.h_proj[row * 3 * h..], h);
            let [dp] = blocks_mut(&mut out.h_prev[row * h..], h);
            for j in 0..h {
                let r = sigmoid(xr[j] + hr[j]);
                let z = sigmoid(xz[j] + hz[j]);
                let n = tanh(xn[j] + r * hn[j]);
                let dn = g[j] * (1.0 - z) * (1.0 - n * n);
                let dr = dn * hn[j] * r * (1.0 - r);
                let dz = g[j] * (prev[j] - n) * z * (1.0 - z);
                dxr[j] = dr;
                dxz[j] = dz;
                dxn[j] = dn;
                dhr[j] = dr;
                dhz[j] = dz;
                dhn[j] = dn * r;
                dp[j] = g[j] * z;
            }
        }
    }
}

multiversion! {
    /// `tanh` of every element of `x`, written to `out`.
    pub fn tanh_forward(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = tanh(v);
        }
    }
}

multiversion! {
    /// `tanh` backward from the forward output `y`: `dL/dx = dL/dy (1 - y^2)`, written to `out`.
    pub fn tanh_backward(y: &[f32], grad: &[f32], out: &mut [f32]) {
        for ((o, &y), &g) in out.iter_mut().zip(y).zip(grad) {
            *o = g * (1.0 - y * y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Central differences of `f` (a scalar loss of the inputs) against an analytic gradient.
    fn check(analytic: &[f32], inputs: &mut [f32], f: &dyn Fn(&[f32]) -> f64) {
        for k in 0..inputs.len() {
            let x0 = inputs[k];
            inputs[k] = x0 + 1e-2;
            let up = f(inputs);
            inputs[k] = x0 - 1e-2;
            let down = f(inputs);
            inputs[k] = x0;
            let numeric = (up - down) / 2e-2;
            assert!(
                (numeric - analytic[k] as f64).abs() < 2e-3,
                "input {k}: numeric {numeric} analytic {}",
                analytic[k]
            );
        }
    }

    #[test]
    fn lstm_matches_the_equations_and_its_gradient() {
        let h = 3;
        let gates: Vec<f32> = (0..8 * h)
            .map(|k| ((k * 37 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let c_prev: Vec<f32> = (0..2 * h).map(|k| (k as f32 - 2.5) / 3.0).collect();
        // `[h | c]`, each `[B, H]`.
        let forward = |gates: &[f32], c: &[f32]| {
            let mut out = vec![0f32; 4 * h];
            let (ho, co) = out.split_at_mut(2 * h);
            lstm_forward(gates, c, h, ho, co);
            out
        };
        let out = forward(&gates, &c_prev);
        for r in 0..2 {
            for j in 0..h {
                let g = |b: usize| gates[r * 4 * h + b * h + j] as f64;
                let c = sig(g(1)) * c_prev[r * h + j] as f64 + sig(g(0)) * g(2).tanh();
                let hh = sig(g(3)) * c.tanh();
                assert!((out[r * h + j] as f64 - hh).abs() < 1e-6);
                assert!((out[2 * h + r * h + j] as f64 - c).abs() < 1e-6);
            }
        }
        // Loss = sum(w * out) with fixed weights w.
        let w: Vec<f32> = (0..4 * h).map(|k| ((k % 5) as f32 - 2.0) / 2.0).collect();
        let (mut dg, mut dc) = (vec![0f32; 8 * h], vec![0f32; 2 * h]);
        lstm_backward(
            &gates,
            &c_prev,
            &w[..2 * h],
            &w[2 * h..],
            h,
            &mut dg,
            &mut dc,
        );
        let loss = |gates: &[f32], c: &[f32]| -> f64 {
            forward(gates, c)
                .iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        check(&dg, &mut gates.clone(), &|g| loss(g, &c_prev));
        check(&dc, &mut c_prev.clone(), &|c| loss(&gates, c));
    }

    #[test]
    fn gru_matches_the_equations_and_its_gradient() {
        let h = 2;
        let x: Vec<f32> = (0..6 * h)
            .map(|k| ((k * 13 % 11) as f32 - 5.0) / 4.0)
            .collect();
        let hp: Vec<f32> = (0..6 * h)
            .map(|k| ((k * 7 % 9) as f32 - 4.0) / 3.0)
            .collect();
        let prev: Vec<f32> = (0..2 * h).map(|k| (k as f32 - 1.5) / 2.0).collect();
        let forward = |x: &[f32], hp: &[f32], p: &[f32]| {
            let mut out = vec![0f32; 2 * h];
            gru_forward(x, hp, p, h, &mut out);
            out
        };
        let out = forward(&x, &hp, &prev);
        let (r0, z0) = (sig((x[0] + hp[0]) as f64), sig((x[h] + hp[h]) as f64));
        let n0 = (x[2 * h] as f64 + r0 * hp[2 * h] as f64).tanh();
        assert!((out[0] as f64 - ((1.0 - z0) * n0 + z0 * prev[0] as f64)).abs() < 1e-6);
        let w: Vec<f32> = (0..2 * h).map(|k| (k as f32 - 1.0) / 2.0).collect();
        let (mut dx, mut dh, mut dp) = (vec![0f32; 6 * h], vec![0f32; 6 * h], vec![0f32; 2 * h]);
        let grads = GruGrads {
            x_proj: &mut dx,
            h_proj: &mut dh,
            h_prev: &mut dp,
        };
        gru_backward(&x, &hp, &prev, &w, h, grads);
        let loss = |x: &[f32], hp: &[f32], p: &[f32]| -> f64 {
            forward(x, hp, p)
                .iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        check(&dx, &mut x.clone(), &|v| loss(v, &hp, &prev));
        check(&dh, &mut hp.clone(), &|v| loss(&x, v, &prev));
        check(&dp, &mut prev.clone(), &|v| loss(&x, &hp, v));
    }
}
