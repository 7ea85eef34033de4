//! The layer norms of a layer-normalised LSTM or GRU inside the sequence op
//! ([`CellNorm`](crate::recurrent::CellNorm)): of the input product `x W_ih^T` (all steps at once,
//! before the time loop, and its backward after BPTT), of each step's recurrent product
//! `h_{t-1} W_hh^T` and of the LSTM's cell state (inside the loops).
//!
//! A layer norm of a row `y` of width `W` is `gamma * y^ + beta` with the standardised row
//! `y^ = (y - mean(y)) * r`, `r = 1 / sqrt(var(y) + eps)` (the biased variance, as PyTorch and
//! Burn). The forward keeps `y^` and `r` ([`Standardised`]); the backward of an upstream gradient
//! `g` is `dy = r (gamma g - mean(gamma g) - y^ mean(gamma g y^))`, `dgamma = sum g y^`,
//! `dbeta = sum g`.

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
        let mut kept = Self::zeros(y.len() / width, width);
        y.par_chunks_mut(BLOCK_ROWS * width)
            .zip(kept.hat.par_chunks_mut(BLOCK_ROWS * width))
            .zip(kept.rstd.par_chunks_mut(BLOCK_ROWS))
            .for_each(|((y, hat), rstd)| {
                standardise(y, hat, rstd);
                shift(hat, norm, bias, y, false);
            });
        kept
    }

    /// The backward of [`Self::normalise_all`] from `g` `[rows, W]`, the gradient of its output:
    /// `y^` becomes `dL/dy`; returns `dgamma` (`dbeta` and the bias's gradient are the column
    /// sums of `g`). The rows' contributions to `dgamma` are summed in blocks of a fixed size
    /// and the blocks in order, the same whichever threads ran them.
    pub(super) fn backward_all(&mut self, g: &[f32], gamma: &[f32]) -> Vec<f32> {
        let width = gamma.len();
        let partial: Vec<Vec<f32>> = g
            .par_chunks(BLOCK_ROWS * width)
            .zip(self.hat.par_chunks_mut(BLOCK_ROWS * width))
            .zip(self.rstd.par_chunks(BLOCK_ROWS))
            .map(|((g, hat), rstd)| {
                let mut sums = vec![0f32; width];
                unstandardise(g, hat, rstd, gamma, &mut sums);
                sums
            })
            .collect();
        let mut sums = vec![0f32; width];
        for p in partial {
            sums.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
        sums
    }
}

/// Rows a thread takes at a time in [`Standardised::normalise_all`] and its backward.
const BLOCK_ROWS: usize = 64;

/// `sum_j a_j b_j c_j` in [`LANES`] partial sums (so that the loop vectorises), added up at the
/// end (`b` and `c` may be the ones of [`ONES`]).
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let (b, c) = (&b[..a.len()], &c[..a.len()]);
    let (a_blocks, a_rest) = a.as_chunks::<LANES>();
    let (b_blocks, b_rest) = b.as_chunks::<LANES>();
    let (c_blocks, c_rest) = c.as_chunks::<LANES>();
    let mut sums = [0f32; LANES];
    for ((a, b), c) in a_blocks.iter().zip(b_blocks).zip(c_blocks) {
        for l in 0..LANES {
            sums[l] += a[l] * b[l] * c[l];
        }
    }
    let rest: f32 = a_rest
        .iter()
        .zip(b_rest)
        .zip(c_rest)
        .map(|((a, b), c)| a * b * c)
        .sum();
    rest + sums.iter().sum::<f32>()
}

/// A row of ones for [`lane_dot`].
fn ones(width: usize) -> Vec<f32> {
    vec![1f32; width]
}

multiversion! {
    /// Standardises each `W`-wide row of `y` (`W = y.len() / rstd.len()`) into `hat`, its `r`
    /// into `rstd`.
    pub(super) fn standardise(y: &[f32], hat: &mut [f32], rstd: &mut [f32]) {
        let width = y.len() / rstd.len().max(1);
        let one = ones(width);
        for ((y, hat), r) in y.chunks_exact(width).zip(hat.chunks_exact_mut(width)).zip(rstd) {
            let mean = lane_dot(y, &one, &one) / width as f32;
            for (h, v) in hat.iter_mut().zip(y) {
                *h = v - mean;
            }
            let var = lane_dot(hat, hat, &one) / width as f32;
            *r = 1.0 / (var + LAYER_NORM_EPSILON as f32).sqrt();
            for h in hat.iter_mut() {
                *h *= *r;
            }
        }
    }
}

multiversion! {
    /// `out = gamma * hat + beta + bias`, or with `accumulate` `out += ..`, for each `W`-wide
    /// row of `hat`.
    pub(super) fn shift(
        hat: &[f32],
        norm: NormParams<'_>,
        bias: &[f32],
        out: &mut [f32],
        accumulate: bool,
    ) {
        let width = norm.gamma.len();
        let keep = if accumulate { 1.0 } else { 0.0 };
        for (hat, out) in hat.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let params = norm.gamma.iter().zip(norm.beta).zip(bias);
            for ((o, h), ((gamma, beta), bias)) in out.iter_mut().zip(hat).zip(params) {
                *o = keep * *o + gamma * h + beta + bias;
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
        let one = ones(width);
        let rows = g.chunks_exact(width).zip(hat.chunks_exact_mut(width));
        for (r, (&rs, (g, hat))) in rstd.iter().zip(rows).enumerate() {
            let sums = &mut gamma_sums[if per_row { r * width } else { 0 }..][..width];
            let mean_g = lane_dot(gamma, g, &one) / width as f32;
            let mean_gh = lane_dot(gamma, g, hat) / width as f32;
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

/// Each batch row's sums over time of the gradients of `gamma_hh`, `gamma_c` and `beta_c`
/// (`[B, G*H]`, `[B, H]`, `[B, H]`; the gradients of the other gains and biases are summed
/// apart, [`Standardised::backward_all`] and the bias sums).
#[derive(Debug, Default)]
pub(super) struct NormSums {
    pub hh_gamma: Vec<f32>,
    pub c_gamma: Vec<f32>,
    pub c_beta: Vec<f32>,
}

impl NormSums {
    /// Zeros for `norms` over `batch` rows.
    pub(super) fn zeros(norms: CellNorms<'_>, batch: usize) -> Self {
        let c = norms.c.map_or(0, |c| batch * c.gamma.len());
        Self {
            hh_gamma: vec![0f32; batch * norms.hh.gamma.len()],
            c_gamma: vec![0f32; c],
            c_beta: vec![0f32; c],
        }
    }
}

/// A row part's share of a direction's layer norms in its time loop: its rows of the kept
/// `(y^, r)` of every step, of the recurrent product and (LSTM) the cell state, and in BPTT its
/// batch rows of the [`NormSums`] `[gamma_hh, gamma_c, beta_c]`. Empty without layer norms.
#[derive(Default)]
pub(super) struct NormPart<'a> {
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
        for (part, (hh, c)) in out.iter_mut().zip(
            split(&mut kept.hh, gh)
                .zip(split(&mut kept.c, h).chain(std::iter::repeat_with(Vec::new))),
        ) {
            (part.hh, part.c) = (hh, c);
        }
    }
    if let Some(sums) = sums {
        let NormSums {
            hh_gamma,
            c_gamma,
            c_beta,
        } = sums;
        let one = |v: &'a mut Vec<f32>, width: usize| {
            let mut s = super::slabs(v, width, batch, parts);
            s.resize_with(parts.len(), Vec::new);
            s.into_iter().map(|mut s| s.pop().unwrap_or_default())
        };
        for (part, ((a, b), c)) in out
            .iter_mut()
            .zip(one(hh_gamma, gh).zip(one(c_gamma, h)).zip(one(c_beta, h)))
        {
            part.sums = vec![a, b, c];
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
