//! The layer norms of a layer-normalised LSTM or GRU inside the sequence op
//! ([`CellNorm`](crate::recurrent::CellNorm)): of the input product `x W_ih^T` (all steps at once,
//! before the time loop; its backward step by step in BPTT, while each step's gradient is in
//! cache), of each step's recurrent product `h_{t-1} W_hh^T` and of the LSTM's cell state (inside
//! the loops).
//!
//! A layer norm of a row `y` of width `W` is `gamma * y^ + beta` with the standardised row
//! `y^ = (y - mean(y)) * r`, `r = 1 / sqrt(var(y) + eps)` (the biased variance, as PyTorch and
//! Burn). The forward keeps `y^` and `r` ([`Standardised`]); the backward of an upstream gradient
//! `g` is `dy = r (gamma g - mean(gamma g) - y^ mean(gamma g y^))`, `dgamma = sum g y^`,
//! `dbeta = sum g`.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::host::math::{LANES, multiversion, tanh};
use crate::recurrent::weights::LAYER_NORM_EPSILON;

/// A layer norm's gain `gamma` and bias `beta` `[W]` on the host.
#[derive(Clone, Copy, Debug)]
pub struct NormParams<'a> {
    /// `gamma`, `[W]`.
    pub gamma: &'a [f32],
    /// `beta`, `[W]`.
    pub beta: &'a [f32],
}

/// The layer norms of a layer-normalised direction on the host: of the input and of the
/// recurrent product (`[G*H]` each) and (LSTM) of the cell state (`[H]`).
#[derive(Clone, Copy, Debug)]
pub struct CellNorms<'a> {
    /// Of `x W_ih^T`.
    pub ih: NormParams<'a>,
    /// Of `h_{t-1} W_hh^T`.
    pub hh: NormParams<'a>,
    /// Of the LSTM's `c_t` before its output `tanh`.
    pub c: Option<NormParams<'a>>,
}

/// The standardised rows `y^` of a layer norm's inputs and each row's `r`, kept for the
/// backward; the backward overwrites `y^` with the gradient of the inputs.
#[derive(Clone, Debug)]
pub struct Standardised {
    /// `y^`, `[rows, W]` (after the backward, `dL/dy`).
    pub hat: Vec<f32>,
    /// `r`, `[rows]`.
    pub rstd: Vec<f32>,
}

impl Standardised {
    /// Room for `rows` rows of width `width`.
    pub(super) fn zeros(rows: usize, width: usize) -> Self {
        Self {
            hat: vec![0f32; rows * width],
            rstd: vec![0f32; rows],
        }
    }

    /// The layer norm of every row of `y` `[rows, W]` in place, `bias` `[W]` added: keeps `y^`
    /// and `r` of each row; the pool's threads take blocks of rows.
    pub(super) fn normalise_all(y: &mut [f32], norm: NormParams<'_>, bias: &[f32]) -> Self {
        let width = norm.gamma.len();
        let mut rstd = vec![0f32; y.len() / width];
        // `y^` is written block by block by the threads that normalise `y` (a zeroed buffer of
        // this size cost a `memset` of megabytes each training step).
        let mut hat = Vec::with_capacity(y.len());
        hat.spare_capacity_mut()[..y.len()]
            .par_chunks_mut(BLOCK_ROWS * width)
            .zip(y.par_chunks_mut(BLOCK_ROWS * width))
            .zip(rstd.par_chunks_mut(BLOCK_ROWS))
            .for_each(|((hat, y), rstd)| normalise_into(y, hat, rstd, norm, bias));
        // SAFETY: the blocks cover `y.len()` values, each written above.
        unsafe { hat.set_len(y.len()) };
        Self { hat, rstd }
    }
}

/// Rows a thread takes at a time in [`Standardised::normalise_all`].
const BLOCK_ROWS: usize = 64;

/// Partial sums [`lane_sums`] keeps: four registers' worth, so that four chains of additions
/// run at once (one chain waited on each addition: two thirds of the layer-norm backward's time).
const SUM_LANES: usize = 4 * LANES;

/// The sums over `j` of each of the `K` values `f(a_j, b_j, c_j)` (`b` and `c` at least as long
/// as `a`), in [`SUM_LANES`] partial sums each (so that the loop vectorises), added up at the end.
#[inline(always)]
fn lane_sums<const K: usize>(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    f: impl Fn(f32, f32, f32) -> [f32; K],
) -> [f32; K] {
    let (b, c) = (&b[..a.len()], &c[..a.len()]);
    let (a_blocks, a_rest) = a.as_chunks::<SUM_LANES>();
    let (b_blocks, b_rest) = b.as_chunks::<SUM_LANES>();
    let (c_blocks, c_rest) = c.as_chunks::<SUM_LANES>();
    let mut sums = [[0f32; SUM_LANES]; K];
    for ((a, b), c) in a_blocks.iter().zip(b_blocks).zip(c_blocks) {
        for l in 0..SUM_LANES {
            let v = f(a[l], b[l], c[l]);
            for k in 0..K {
                sums[k][l] += v[k];
            }
        }
    }
    let mut out = [0f32; K];
    for ((a, b), c) in a_rest.iter().zip(b_rest).zip(c_rest) {
        let v = f(*a, *b, *c);
        for k in 0..K {
            out[k] += v[k];
        }
    }
    for k in 0..K {
        out[k] += sums[k].iter().sum::<f32>();
    }
    out
}

/// The mean of a row `y` and its `r = 1 / sqrt(var(y) + eps)`.
#[inline(always)]
fn moments(y: &[f32]) -> (f32, f32) {
    let width = y.len() as f32;
    let [sum] = lane_sums(y, y, y, |v, _, _| [v]);
    let mean = sum / width;
    let [squares] = lane_sums(y, y, y, |v, _, _| [(v - mean) * (v - mean)]);
    (
        mean,
        1.0 / (squares / width + LAYER_NORM_EPSILON as f32).sqrt(),
    )
}

multiversion! {
    /// Standardises each `W`-wide row `y` of `y` (`W = y.len() / rstd.len()`) into `y^` in
    /// `hat`, its `r` into `rstd`.
    pub(super) fn standardise(y: &[f32], hat: &mut [f32], rstd: &mut [f32]) {
        let width = y.len() / rstd.len().max(1);
        for ((y, hat), r) in y.chunks_exact(width).zip(hat.chunks_exact_mut(width)).zip(rstd) {
            let mean;
            (mean, *r) = moments(y);
            for (h, v) in hat.iter_mut().zip(y) {
                *h = (v - mean) * *r;
            }
        }
    }
}

multiversion! {
    /// The layer norm of each `W`-wide row `y` of `y` in place, `y = gamma * y^ + beta + bias`,
    /// writing `y^` to `hat` and its `r` to `rstd`. ([`normalise`] over a copy of each row in
    /// `hat` instead measured 1.26-1.28x of the plain LSTM's training step, against 1.22-1.24x.)
    fn normalise_into(
        y: &mut [f32],
        hat: &mut [MaybeUninit<f32>],
        rstd: &mut [f32],
        norm: NormParams<'_>,
        bias: &[f32],
    ) {
        let width = norm.gamma.len();
        let rows = y.chunks_exact_mut(width).zip(hat.chunks_exact_mut(width));
        for ((y, hat), r) in rows.zip(rstd) {
            let mean;
            (mean, *r) = moments(y);
            let params = norm.gamma.iter().zip(norm.beta).zip(bias);
            for ((v, h), ((gamma, beta), bias)) in y.iter_mut().zip(hat).zip(params) {
                let h = *h.write((*v - mean) * *r);
                *v = gamma * h + beta + bias;
            }
        }
    }
}

multiversion! {
    /// The layer norm of each `W`-wide row `y` of `hat`: standardises it in place into `y^`
    /// (its `r` into `rstd`) and writes `out = gamma * y^ + beta + bias`, or with `accumulate`
    /// adds it to `out`.
    pub(super) fn normalise(
        hat: &mut [f32],
        rstd: &mut [f32],
        norm: NormParams<'_>,
        bias: &[f32],
        out: &mut [f32],
        accumulate: bool,
    ) {
        let width = norm.gamma.len();
        let rows = hat.chunks_exact_mut(width).zip(out.chunks_exact_mut(width));
        for ((hat, out), r) in rows.zip(rstd) {
            let mean;
            (mean, *r) = moments(hat);
            let params = norm.gamma.iter().zip(norm.beta).zip(bias);
            let values = hat.iter_mut().zip(params).map(|(h, ((gamma, beta), bias))| {
                *h = (*h - mean) * *r;
                gamma * *h + beta + bias
            });
            if accumulate {
                out.iter_mut().zip(values).for_each(|(o, v)| *o += v);
            } else {
                out.iter_mut().zip(values).for_each(|(o, v)| *o = v);
            }
        }
    }
}

multiversion! {
    /// The backward of rows of a layer norm ([`standardise`] then [`shift`]): from `g`, the
    /// gradient of each row's `gamma * hat + beta`, overwrites `hat` with the gradient of the
    /// row the layer norm read (`rstd` the rows' `r`) and adds `g * hat` to `gamma_sums`: to its
    /// row of `gamma_sums` `[rows, W]` (a step's rows: per batch row, summed over time), or to
    /// `gamma_sums` itself where that is one row `[W]`.
    pub(super) fn unstandardise(
        g: &[f32],
        hat: &mut [f32],
        rstd: &[f32],
        gamma: &[f32],
        gamma_sums: &mut [f32],
    ) {
        let width = gamma.len();
        let per_row = gamma_sums.len() > width;
        let rows = g.chunks_exact(width).zip(hat.chunks_exact_mut(width));
        for (r, (&rs, (g, hat))) in rstd.iter().zip(rows).enumerate() {
            let sums = &mut gamma_sums[if per_row { r * width } else { 0 }..][..width];
            let [mean_g, mean_gh] = lane_sums(gamma, g, hat, |gamma, g, h| [gamma * g, gamma * g * h])
                .map(|s| s / width as f32);
            for (((s, h), g), gamma) in sums.iter_mut().zip(hat.iter_mut()).zip(g).zip(gamma) {
                *s += g * *h;
                *h = rs * (gamma * g - mean_g - *h * mean_gh);
            }
        }
    }
}

/// What a layer-normalised direction's forward keeps of its layer norms: [`Standardised`] of
/// the input products `[T, B, G*H]`, of the recurrent products `[T, B, G*H]` and (LSTM; empty
/// for the GRU) of the cell states `[T, B, H]`.
#[derive(Clone, Debug)]
pub struct KeptNorms {
    /// Of `x W_ih^T`.
    pub ih: Standardised,
    /// Of `h_{t-1} W_hh^T`.
    pub hh: Standardised,
    /// Of the LSTM's `c_t`.
    pub c: Standardised,
}

impl KeptNorms {
    /// For `norms` over `steps` steps of `batch` rows (`G*H` = `gh`, `H` = `h`): the input
    /// products `x_proj` `[T*B, G*H]` normalised in place (`bias` `[G*H]` added), room for the
    /// rest.
    pub(super) fn new(
        norms: CellNorms<'_>,
        x_proj: &mut [f32],
        bias: &[f32],
        (steps, batch, h): (usize, usize, usize),
    ) -> Self {
        let rows = steps * batch;
        let gh = norms.hh.gamma.len();
        Self {
            ih: Standardised::normalise_all(x_proj, norms.ih, bias),
            hh: Standardised::zeros(rows, gh),
            c: Standardised::zeros(if norms.c.is_some() { rows } else { 0 }, h),
        }
    }
}

/// Each batch row's sums over time of the gradients of `gamma_ih`, `gamma_hh`, `gamma_c` and
/// `beta_c` (`[B, G*H]`, `[B, G*H]`, `[B, H]`, `[B, H]`; the gradients of the other biases are
/// the bias sums).
#[derive(Debug, Default)]
pub(super) struct NormSums {
    pub ih_gamma: Vec<f32>,
    pub hh_gamma: Vec<f32>,
    pub c_gamma: Vec<f32>,
    pub c_beta: Vec<f32>,
}

impl NormSums {
    /// Zeros for `norms` over `batch` rows.
    pub(super) fn zeros(norms: CellNorms<'_>, batch: usize) -> Self {
        let c = norms.c.map_or(0, |c| batch * c.gamma.len());
        let gh = batch * norms.hh.gamma.len();
        Self {
            ih_gamma: vec![0f32; gh],
            hh_gamma: vec![0f32; gh],
            c_gamma: vec![0f32; c],
            c_beta: vec![0f32; c],
        }
    }
}

/// A row part's share of a direction's layer norms in its time loop: its rows of the kept
/// `(y^, r)` of every step, of the input and the recurrent product and (LSTM) the cell state,
/// and in BPTT its batch rows of the [`NormSums`] `[gamma_ih, gamma_hh, gamma_c, beta_c]`. Empty
/// without layer norms.
#[derive(Default)]
pub(super) struct NormPart<'a> {
    pub ih: Vec<(&'a mut [f32], &'a mut [f32])>,
    pub hh: Vec<(&'a mut [f32], &'a mut [f32])>,
    pub c: Vec<(&'a mut [f32], &'a mut [f32])>,
    pub sums: Vec<&'a mut [f32]>,
}

/// Splits `kept` and `sums` between the row `parts` of a `batch` (`(G*H, H)` = `widths`): one
/// [`NormPart`] a part, empty ones without layer norms.
pub(super) fn norm_parts<'a>(
    kept: Option<&'a mut KeptNorms>,
    sums: Option<&'a mut NormSums>,
    (gh, h): (usize, usize),
    batch: usize,
    parts: &[std::ops::Range<usize>],
) -> Vec<NormPart<'a>> {
    let mut out: Vec<NormPart<'a>> = parts.iter().map(|_| NormPart::default()).collect();
    let split = |kept: &'a mut Standardised, width: usize| {
        super::slabs(&mut kept.hat, width, batch, parts)
            .into_iter()
            .zip(super::slabs(&mut kept.rstd, 1, batch, parts))
            .map(|(hats, rstds)| hats.into_iter().zip(rstds).collect::<Vec<_>>())
    };
    if let Some(kept) = kept {
        let cells = split(&mut kept.c, h).chain(std::iter::repeat_with(Vec::new));
        let products = split(&mut kept.ih, gh).zip(split(&mut kept.hh, gh));
        for (part, ((ih, hh), c)) in out.iter_mut().zip(products.zip(cells)) {
            (part.ih, part.hh, part.c) = (ih, hh, c);
        }
    }
    if let Some(sums) = sums {
        let NormSums {
            ih_gamma,
            hh_gamma,
            c_gamma,
            c_beta,
        } = sums;
        let one = |v: &'a mut Vec<f32>, width: usize| {
            let mut s = super::slabs(v, width, batch, parts);
            s.resize_with(parts.len(), Vec::new);
            s.into_iter().map(|mut s| s.pop().unwrap_or_default())
        };
        let products = one(ih_gamma, gh).zip(one(hh_gamma, gh));
        let cells = one(c_gamma, h).zip(one(c_beta, h));
        for (part, ((a, b), (c, d))) in out.iter_mut().zip(products.zip(cells)) {
            part.sums = vec![a, b, c, d];
        }
    }
    out
}

multiversion! {
    /// The LSTM's output through its cell's layer norm, `h = s(o) tanh(gamma_c c^ + beta_c)`,
    /// from the activated `gates` `[B, 4H]` and the standardised cell `hat` `[B, H]`, into
    /// `h_out`.
    pub(super) fn lstm_output(gates: &[f32], hat: &[f32], norm: NormParams<'_>, h_out: &mut [f32]) {
        let h = norm.gamma.len();
        for ((gates, hat), out) in gates.chunks(4 * h).zip(hat.chunks(h)).zip(h_out.chunks_mut(h)) {
            let o = &gates[3 * h..];
            for j in 0..h {
                out[j] = o[j] * tanh(norm.gamma[j] * hat[j] + norm.beta[j]);
            }
        }
    }
}

multiversion! {
    /// The backward of [`lstm_output`] from `dh` `[B, H]`: writes the output gate's
    /// pre-activation gradient to `d_out_gate` `[B, H]`, overwrites `hat` with the gradient of
    /// the cell state that reaches it through the layer norm, and adds each row's gradients of
    /// `gamma_c` and `beta_c` to `gamma_sums` and `beta_sums` `[B, H]`; `d_shown` `[B, H]`
    /// takes the gradient of the normalised cell `gamma_c c^ + beta_c`.
    pub(super) fn lstm_output_backward(
        gates: &[f32],
        kept: (&mut [f32], &[f32]),
        norm: NormParams<'_>,
        dh: &[f32],
        outs: (&mut [f32], &mut [f32]),
        sums: (&mut [f32], &mut [f32]),
    ) {
        let ((hat, rstd), (d_out_gate, d_shown), (gamma_sums, beta_sums)) = (kept, outs, sums);
        let h = norm.gamma.len();
        for (r, gates) in gates.chunks(4 * h).enumerate() {
            let o = &gates[3 * h..];
            let row = r * h..(r + 1) * h;
            let (hat, dh, d_o) = (&hat[row.clone()], &dh[row.clone()], &mut d_out_gate[row.clone()]);
            let (d_s, beta_sums) = (&mut d_shown[row.clone()], &mut beta_sums[row]);
            for j in 0..h {
                let tc = tanh(norm.gamma[j] * hat[j] + norm.beta[j]);
                d_o[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
                d_s[j] = dh[j] * o[j] * (1.0 - tc * tc);
                beta_sums[j] += d_s[j];
            }
        }
        unstandardise(d_shown, hat, rstd, norm.gamma, gamma_sums);
    }
}
