//! The pointwise part of a time step, forward and backward, on host slices (row-major `[B, k H]`),
//! with the fast activations of [`crate::host::math`]. Each kernel is a [`multiversion`] function whose
//! maths runs on [`LANES`]-wide local arrays (`lanes!`), so it vectorises whatever the slices
//! alias (the in-place kernels read and write the same gate blocks).

use crate::host::math::{LANES, multiversion, sigmoid, tanh};

/// [`LANES`] consecutive values of one stream.
type Lanes = [f32; LANES];

/// The `N` consecutive length-`h` blocks of `row` (gate blocks of one batch row).
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

/// Values `j0 .. j0 + w` of `src` (`w <= LANES`), zero-padded.
#[inline(always)]
fn load(src: &[f32], j0: usize, w: usize) -> Lanes {
    if w == LANES {
        src[j0..j0 + LANES].try_into().expect("LANES values")
    } else {
        let mut v = [0f32; LANES];
        v[..w].copy_from_slice(&src[j0..j0 + w]);
        v
    }
}

/// Writes the first `w` values of `v` to `dst[j0 ..]`.
#[inline(always)]
fn store(dst: &mut [f32], j0: usize, w: usize, v: &Lanes) {
    dst[j0..j0 + w].copy_from_slice(&v[..w]);
}

/// Runs `body` over the `h` columns of equal-length slices, [`LANES`] at a time, with no closure
/// (a closure is compiled on its own, for the baseline CPU, instead of inside the
/// [`multiversion`] copy): inside `body` each named slice is shadowed by a [`Lanes`] array of its
/// values (the outputs' current ones too), indexed by the lane variable; the output arrays are
/// then stored back.
macro_rules! lanes {
    ($h:expr, [$($i:ident),*], [$($o:ident),*], |$l:ident| $body:block) => {
        for j0 in (0..$h).step_by(LANES) {
            let w = LANES.min($h - j0);
            let values = {
                $(let $i: Lanes = load($i, j0, w);)*
                $(let mut $o: Lanes = load($o, j0, w);)*
                for $l in 0..LANES $body
                [$($o),*]
            };
            let mut k = 0;
            $(
                store($o, j0, w, &values[k]);
                k += 1;
            )*
            let _ = k;
        }
    };
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
            lanes!(h, [gi, gf, gg, go, cp], [ho, co], |l| {
                let c = sigmoid(gf[l]) * cp[l] + sigmoid(gi[l]) * tanh(gg[l]);
                co[l] = c;
                ho[l] = sigmoid(go[l]) * tanh(c);
            });
        }
    }
}

multiversion! {
    /// [`lstm_forward`] for training: also overwrites `gates` with the activated gates
    /// `s(i), s(f), tanh(g), s(o)`, which [`lstm_backward_in_place`] reads instead of computing
    /// the four activations again.
    pub fn lstm_forward_keep(
        gates: &mut [f32],
        c_prev: &[f32],
        h: usize,
        h_out: &mut [f32],
        c_out: &mut [f32],
    ) {
        for r in 0..c_prev.len() / h {
            let [gi, gf, gg, go] = blocks_mut(&mut gates[r * 4 * h..], h);
            let [cp] = blocks(&c_prev[r * h..], h);
            let [ho] = blocks_mut(&mut h_out[r * h..], h);
            let [co] = blocks_mut(&mut c_out[r * h..], h);
            lanes!(h, [cp], [gi, gf, gg, go, ho, co], |l| {
                let (i, f) = (sigmoid(gi[l]), sigmoid(gf[l]));
                let (g, o) = (tanh(gg[l]), sigmoid(go[l]));
                let c = f * cp[l] + i * g;
                (gi[l], gf[l], gg[l], go[l]) = (i, f, g, o);
                co[l] = c;
                ho[l] = o * tanh(c);
            });
        }
    }
}

multiversion! {
    /// LSTM backward from the activated gates that [`lstm_forward_keep`] left in `gates`, which
    /// it overwrites with `dL/dgates` (pre-activations), from `dh` = `dL/dh` and `dc` = `dL/dc`
    /// (`[B, H]`); writes `dL/dc_prev` to `dc_prev`. `c` is the step's new cell state (only
    /// `tanh(c)` is computed again).
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_backward_in_place(
        gates: &mut [f32],
        c_prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc: &[f32],
        h: usize,
        dc_prev: &mut [f32],
    ) {
        for r in 0..c_prev.len() / h {
            let [gi, gf, gg, go] = blocks_mut(&mut gates[r * 4 * h..], h);
            let [cp, c, dh, dc_out] = [c_prev, c, dh, dc].map(|s| &s[r * h..][..h]);
            let [dcp] = blocks_mut(&mut dc_prev[r * h..], h);
            lanes!(h, [cp, c, dh, dc_out], [gi, gf, gg, go, dcp], |l| {
                let (i, f, g, o) = (gi[l], gf[l], gg[l], go[l]);
                let tc = tanh(c[l]);
                let dc = dc_out[l] + dh[l] * o * (1.0 - tc * tc);
                gi[l] = dc * g * i * (1.0 - i);
                gf[l] = dc * cp[l] * f * (1.0 - f);
                gg[l] = dc * i * (1.0 - g * g);
                go[l] = dh[l] * tc * o * (1.0 - o);
                dcp[l] = dc * f;
            });
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
            lanes!(h, [xr, xz, xn, hr, hz, hn, prev], [o], |l| {
                let r = sigmoid(xr[l] + hr[l]);
                let z = sigmoid(xz[l] + hz[l]);
                let n = tanh(xn[l] + r * hn[l]);
                o[l] = (1.0 - z) * n + z * prev[l];
            });
        }
    }
}

multiversion! {
    /// [`gru_forward`] for training: also writes the activations `r, z, n` to `acts` `[B, 3H]`,
    /// which [`gru_backward_in_place`] reads instead of computing them again.
    pub fn gru_forward_keep(
        x_proj: &[f32],
        h_proj: &[f32],
        h_prev: &[f32],
        h: usize,
        out: &mut [f32],
        acts: &mut [f32],
    ) {
        for row in 0..h_prev.len() / h {
            let [xr, xz, xn] = blocks(&x_proj[row * 3 * h..], h);
            let [hr, hz, hn] = blocks(&h_proj[row * 3 * h..], h);
            let [prev] = blocks(&h_prev[row * h..], h);
            let [o] = blocks_mut(&mut out[row * h..], h);
            let [ar, az, an] = blocks_mut(&mut acts[row * 3 * h..], h);
            lanes!(h, [xr, xz, xn, hr, hz, hn, prev], [o, ar, az, an], |l| {
                let r = sigmoid(xr[l] + hr[l]);
                let z = sigmoid(xz[l] + hz[l]);
                let n = tanh(xn[l] + r * hn[l]);
                (ar[l], az[l], an[l]) = (r, z, n);
                o[l] = (1.0 - z) * n + z * prev[l];
            });
        }
    }
}

multiversion! {
    /// GRU backward from the activations [`gru_forward_keep`] wrote, in place: `acts` becomes
    /// `dL/dx_proj` and `h_proj` becomes `dL/dh_proj` (its `n` block is read first); writes
    /// `dL/dh_prev` through the direct path `z h_prev` to `direct`; `grad` is `dL/dh'` `[B, H]`.
    pub fn gru_backward_in_place(
        acts: &mut [f32],
        h_proj: &mut [f32],
        h_prev: &[f32],
        grad: &[f32],
        h: usize,
        direct: &mut [f32],
    ) {
        for row in 0..h_prev.len() / h {
            let [ar, az, an] = blocks_mut(&mut acts[row * 3 * h..], h);
            let [hr, hz, hn] = blocks_mut(&mut h_proj[row * 3 * h..], h);
            let [prev, g] = [h_prev, grad].map(|s| &s[row * h..][..h]);
            let [dp] = blocks_mut(&mut direct[row * h..], h);
            lanes!(h, [prev, g], [ar, az, an, hr, hz, hn, dp], |l| {
                let (r, z, n) = (ar[l], az[l], an[l]);
                let dn = g[l] * (1.0 - z) * (1.0 - n * n);
                let dr = dn * hn[l] * r * (1.0 - r);
                let dz = g[l] * (prev[l] - n) * z * (1.0 - z);
                (ar[l], az[l], an[l]) = (dr, dz, dn);
                (hr[l], hz[l], hn[l]) = (dr, dz, dn * r);
                dp[l] = g[l] * z;
            });
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

multiversion! {
    /// `max(x, 0)` of every element of `x`, written to `out`.
    pub fn relu_forward(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v.max(0.0);
        }
    }
}

multiversion! {
    /// ReLU backward from the forward output `y`: `dL/dx = dL/dy` where `y > 0`, else 0.
    pub fn relu_backward(y: &[f32], grad: &[f32], out: &mut [f32]) {
        for ((o, &y), &g) in out.iter_mut().zip(y).zip(grad) {
            *o = if y > 0.0 { g } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::gradcheck::check_gradients;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
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
        // The training pair: activations kept (same outputs), backward in place.
        let mut dg = gates.clone();
        let mut out2 = vec![0f32; 4 * h];
        let (ho, co) = out2.split_at_mut(2 * h);
        lstm_forward_keep(&mut dg, &c_prev, h, ho, co);
        close(&out2, &out);
        // Loss = sum(w * out) with fixed weights w.
        let w: Vec<f32> = (0..4 * h).map(|k| ((k % 5) as f32 - 2.0) / 2.0).collect();
        let mut dc = vec![0f32; 2 * h];
        let (dh, dc_out) = w.split_at(2 * h);
        lstm_backward_in_place(&mut dg, &c_prev, &out2[2 * h..], dh, dc_out, h, &mut dc);
        let loss = |gates: &[f32], c: &[f32]| -> f64 {
            forward(gates, c)
                .iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        let args = [gates.clone(), c_prev.clone()];
        check_gradients(&args, &[&dg, &dc], |a| loss(&a[0], &a[1]), 2e-3);
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-6, "element {k}: {x} vs {y}");
        }
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
        // The training pair: activations kept (same output), backward in place.
        let (mut out2, mut dx) = (vec![0f32; 2 * h], vec![0f32; 6 * h]);
        gru_forward_keep(&x, &hp, &prev, h, &mut out2, &mut dx);
        close(&out2, &out);
        let w: Vec<f32> = (0..2 * h).map(|k| (k as f32 - 1.0) / 2.0).collect();
        let (mut dh, mut dp) = (hp.clone(), vec![0f32; 2 * h]);
        gru_backward_in_place(&mut dx, &mut dh, &prev, &w, h, &mut dp);
        let loss = |x: &[f32], hp: &[f32], p: &[f32]| -> f64 {
            forward(x, hp, p)
                .iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        let args = [x.clone(), hp.clone(), prev.clone()];
        check_gradients(&args, &[&dx, &dh, &dp], |a| loss(&a[0], &a[1], &a[2]), 2e-3);
    }
}
