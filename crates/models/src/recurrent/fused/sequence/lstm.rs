//! An LSTM layer direction as one op: the time loop (`W_hh` packed once) and BPTT.

use super::buffers::{accumulate, add, total};
use super::direction::{Direction, rows_of, step_states};
use super::grads::LayerGrads;
use super::inputs::{LayerInputs, ZoneoutRates, mask_in_place, unzone, zone};
use super::norm::{
    KeptNorms, NormParams, NormSums, lstm_output, lstm_output_backward, norm_parts, normalise,
    standardise, unstandardise,
};
use super::parts::{in_parallel, row_parts, slabs};
use super::products::{Weights, weight_grad};
use crate::recurrent::fused::kernels::{lstm_backward_in_place, lstm_forward_keep};
use crate::recurrent::fused::packed::PackedMatrix;

/// What the forward pass keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct LstmTrace {
    /// Activated gates `s(i), s(f), tanh(g), s(o)` of every step, `[T, B, 4H]`.
    pub gates: Vec<f32>,
    /// `h_0 .. h_T`, `[T + 1, B, R]`.
    pub hidden: Vec<f32>,
    /// `c_0 .. c_T`, `[T + 1, B, H]`.
    pub cell: Vec<f32>,
    /// With zoneout, each step's cell update before zoneout `c~_t` (what `h_t` reads),
    /// `[T, B, H]` in time order; empty without.
    pub updates: Vec<f32>,
    /// With a projection, each step's `m_t = o_t * tanh(c_t)` before it, `[T, B, H]` in time
    /// order; empty without.
    pub shown: Vec<f32>,
    /// A layer-normalised cell's layer norms.
    pub norms: Option<KeptNorms>,
    /// The order the states were computed in (and in which [`Self::hidden`] keeps them).
    pub direction: Direction,
}

impl LstmTrace {
    /// The op's outputs `h_t` in time order `[T, B, R]`, and the final cell state `[B, H]`.
    pub fn output(&self, steps: usize) -> [&[f32]; 2] {
        let bc = self.cell.len() / (steps + 1);
        let outputs = self
            .direction
            .outputs(&self.hidden, self.hidden.len() / (steps + 1));
        let last = self.direction.last_slot(steps);
        [outputs, &self.cell[last * bc..][..bc]]
    }
}

/// One step of the cell: from the gates' pre-activations `g` (activated in place) and `c_prev`,
/// writes `c_t` to `c_next` and `o * tanh(c_t)` (`o * tanh(LN_c(c_t))` with the cell's layer
/// norm, whose standardised `c_t` and `r` it keeps) to `out`, each `[rows, H]`.
fn cell_step(
    g: &mut [f32],
    (c_prev, c_next): (&[f32], &mut [f32]),
    out: &mut [f32],
    h: usize,
    norm: Option<(NormParams<'_>, &mut [f32], &mut [f32])>,
) {
    lstm_forward_keep(g, c_prev, h, out, c_next);
    if let Some((n, hat, rstd)) = norm {
        standardise(c_next, hat, rstd);
        lstm_output(g, hat, n, out);
    }
}

/// Runs an LSTM layer direction on `inputs` from `h0` `[B, R]` and `c0` `[B, H]` (`R = H`, or
/// `P` with a projection).
pub fn lstm_sequence_forward(
    inputs: &LayerInputs<'_>,
    h0: &[f32],
    c0: &[f32],
    (steps, batch, r): (usize, usize, usize),
    direction: Direction,
) -> LstmTrace {
    let h = inputs.b_hh.len() / 4;
    let (g4, br, bc) = (4 * h, batch * r, batch * h);
    // gates += h_t W_hh^T: W_hh^T [R, 4H] packed once (or read in place for a tiny batch).
    let w = Weights::new(inputs.w_hh, (g4, r), batch);
    // h_t = m_t W_hr^T with a projection.
    let projection = inputs.w_hr.map(|w_hr| Weights::new(w_hr, (r, h), batch));
    let no_bias = vec![0f32; r];
    // The gates start as x W_ih^T; each step adds both biases and the recurrent product. With
    // layer norms the gates start as LN_ih(x W_ih^T) and both biases, and each step adds
    // LN_hh(h W_hh^T).
    let mut gates = inputs.project();
    let mut bias = inputs.summed_bias();
    let mut norms = inputs
        .norms
        .map(|n| KeptNorms::new(n, &mut gates, &bias, (steps, batch, h)));
    if norms.is_some() {
        bias.fill(0.0);
    }
    let mut hidden = vec![0f32; (steps + 1) * br];
    let mut cell = vec![0f32; (steps + 1) * bc];
    hidden[direction.first_slot(steps) * br..][..br].copy_from_slice(h0);
    cell[direction.first_slot(steps) * bc..][..bc].copy_from_slice(c0);
    let mut updates = vec![0f32; inputs.zoneout.map_or(0, |_| steps * bc)];
    let mut shown = vec![0f32; inputs.w_hr.map_or(0, |_| steps * bc)];
    let parts = row_parts(batch, steps * br * g4);
    let mut update_parts = slabs(&mut updates, h, batch, &parts);
    update_parts.resize_with(parts.len(), Vec::new);
    let mut shown_parts = slabs(&mut shown, h, batch, &parts);
    shown_parts.resize_with(parts.len(), Vec::new);
    let norm_parts = norm_parts(norms.as_mut(), None, (g4, h), batch, &parts);
    let work: Vec<_> = slabs(&mut gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, r, batch, &parts))
        .zip(slabs(&mut cell, h, batch, &parts).into_iter().zip(&parts))
        .zip(update_parts.into_iter().zip(shown_parts).zip(norm_parts))
        .collect();
    in_parallel(
        work,
        |(((mut gs, mut hs), (mut cs, rows)), ((mut us, mut ms), mut ns))| {
            let mut operand = inputs.operand(rows, r);
            for t in direction.times(steps) {
                let g = &mut *gs[t];
                let (h_prev, h_next) = step_states(&mut hs, direction.slots(t));
                match (inputs.norms, ns.hh.get_mut(t)) {
                    (Some(n), Some((hat, rstd))) => {
                        w.multiply_bias(operand.of(h_prev), hat, false, &bias);
                        normalise(hat, rstd, n.hh, &bias, g, true);
                    }
                    _ => w.multiply_bias(operand.of(h_prev), g, true, &bias),
                }
                let (c_prev, c_next) = step_states(&mut cs, direction.slots(t));
                let norm = match (inputs.norms.and_then(|n| n.c), ns.c.get_mut(t)) {
                    (Some(n), Some((hat, rstd))) => Some((n, &mut **hat, &mut **rstd)),
                    _ => None,
                };
                match (&projection, ms.get_mut(t)) {
                    (Some(p), Some(m)) => {
                        cell_step(g, (c_prev, c_next), m, h, norm);
                        p.multiply_bias(m, h_next, false, &no_bias);
                    }
                    _ => cell_step(g, (c_prev, c_next), h_next, h, norm),
                }
                if let Some(z) = inputs.zoneout {
                    us[t].copy_from_slice(c_next);
                    zone(
                        h_next,
                        h_prev,
                        ZoneoutRates::at(z.hidden, t, rows, r, batch),
                    );
                    zone(c_next, c_prev, ZoneoutRates::at(z.cell, t, rows, h, batch));
                }
            }
        },
    );
    LstmTrace {
        gates,
        hidden,
        cell,
        updates,
        shown,
        norms,
        direction,
    }
}

/// BPTT through the trace, which it consumes (the gradients of the gates overwrite the gates).
/// `d_hidden` `[T, B, R]` is `dL/dh_1..h_T` from the outputs, `d_cell` `[B, H]` is `dL/dc_T`.
pub fn lstm_sequence_backward(
    trace: LstmTrace,
    inputs: &LayerInputs<'_>,
    d_hidden: &[f32],
    d_cell: &[f32],
    (steps, batch, r): (usize, usize, usize),
) -> LayerGrads {
    let h = inputs.b_hh.len() / 4;
    let (g4, br) = (4 * h, batch * r);
    // dh_{t-1} = dG_t W_hh: W_hh [4H, R] packed once; with a projection dm_t = dh_t W_hr.
    let w = PackedMatrix::pack(inputs.w_hh, (g4, r), false);
    let projection = inputs
        .w_hr
        .map(|w_hr| PackedMatrix::pack(w_hr, (r, h), false));
    let LstmTrace {
        gates: mut d_gates,
        hidden,
        cell,
        updates,
        shown,
        mut norms,
        direction,
    } = trace;
    let mut dh_next = vec![0f32; br];
    let mut dc_next = d_cell.to_vec();
    // With a projection, each step's dL/dh_t (for dW_hr).
    let mut d_shown = vec![0f32; if projection.is_some() { steps * br } else { 0 }];
    let parts = row_parts(batch, steps * br * g4);
    let mut d_shown_parts = slabs(&mut d_shown, r, batch, &parts);
    d_shown_parts.resize_with(parts.len(), Vec::new);
    // Each batch row's sum over time of its gate gradients (for the bias gradient), and of the
    // layer norms' gain and bias gradients.
    let mut sums = vec![0f32; batch * g4];
    let mut norm_sums = inputs.norms.map(|n| NormSums::zeros(n, batch));
    let norm_parts = norm_parts(norms.as_mut(), norm_sums.as_mut(), (g4, h), batch, &parts);
    let work: Vec<_> = slabs(&mut d_gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut dh_next, r, batch, &parts))
        .zip(slabs(&mut dc_next, h, batch, &parts))
        .zip(
            parts
                .iter()
                .cloned()
                .zip(slabs(&mut sums, g4, batch, &parts))
                .zip(norm_parts.into_iter().zip(d_shown_parts)),
        )
        .collect();
    in_parallel(
        work,
        |(((mut dgs, mut dh_next), mut dc_next), ((rows, mut sums), (mut ns, mut dss)))| {
            let (dh_next, dc_next) = (&mut *dh_next[0], &mut *dc_next[0]);
            let mask = inputs.mask_rows(&rows, r);
            let mut dh = vec![0f32; dh_next.len()];
            let mut dc_prev = vec![0f32; dc_next.len()];
            // With a projection, dL/dm_t.
            let mut dm = vec![
                0f32;
                if projection.is_some() {
                    dc_next.len()
                } else {
                    0
                }
            ];
            // With zoneout, the parts of dL/dh_t and dL/dc_t that reach h_{t-1} and c_{t-1}
            // past the cell.
            let mut direct = inputs.zoneout.map(|_| [dh.clone(), dc_prev.clone()]);
            // With the cell's layer norm, the output gate's gradient (which the plain kernel,
            // given no dL/dh, leaves at zero), the normalised cell's, and a zero dL/dh.
            let c_norm = inputs.norms.and_then(|n| n.c);
            let mut shown_grads = c_norm.map(|_| [(); 3].map(|_| dc_prev.clone()));
            for t in direction.times(steps).rev() {
                add(&mut dh, rows_of(d_hidden, t, &rows, r, batch), dh_next);
                let dg = &mut *dgs[t];
                let (from, to) = direction.slots(t);
                let c_prev = rows_of(&cell, from, &rows, h, batch);
                let mut c = rows_of(&cell, to, &rows, h, batch);
                if let (Some(z), Some([dh_direct, dc_direct])) = (inputs.zoneout, &mut direct) {
                    unzone(
                        &mut dh,
                        ZoneoutRates::at(z.hidden, t, &rows, r, batch),
                        dh_direct,
                    );
                    unzone(
                        dc_next,
                        ZoneoutRates::at(z.cell, t, &rows, h, batch),
                        dc_direct,
                    );
                    c = rows_of(&updates, t, &rows, h, batch);
                }
                // dL/dm_t: through the projection, or dL/dh_t itself.
                let d_out = match (&projection, dss.get_mut(t)) {
                    (Some(p), Some(ds)) => {
                        ds.copy_from_slice(&dh);
                        p.multiply(&dh, &mut dm, false);
                        &dm
                    }
                    _ => &dh,
                };
                match (c_norm, &mut shown_grads, ns.c.get_mut(t)) {
                    (Some(n), Some([d_out_gate, d_shown, no_dh]), Some((hat, rstd))) => {
                        let [gamma_sums, beta_sums] = &mut ns.sums[2..] else {
                            unreachable!("four sums")
                        };
                        lstm_output_backward(
                            dg,
                            (hat, rstd),
                            n,
                            d_out,
                            (d_out_gate, d_shown),
                            (gamma_sums, beta_sums),
                        );
                        accumulate(dc_next, hat);
                        lstm_backward_in_place(dg, c_prev, c, no_dh, dc_next, h, &mut dc_prev);
                        for (dg, d) in dg.chunks_mut(g4).zip(d_out_gate.chunks(h)) {
                            dg[3 * h..].copy_from_slice(d);
                        }
                    }
                    _ => lstm_backward_in_place(dg, c_prev, c, d_out, dc_next, h, &mut dc_prev),
                }
                accumulate(sums[0], dg);
                match (inputs.norms, ns.hh.get_mut(t)) {
                    (Some(n), Some((hat, rstd))) => {
                        unstandardise(dg, hat, rstd, n.hh.gamma, ns.sums[1]);
                        w.multiply(hat, dh_next, false);
                        // The input product's layer norm, while this step's gradient is at hand.
                        let (hat, rstd) = &mut ns.ih[t];
                        unstandardise(dg, hat, rstd, n.ih.gamma, ns.sums[0]);
                    }
                    _ => w.multiply(dg, dh_next, false),
                }
                if let Some(m) = mask {
                    mask_in_place(dh_next, m);
                }
                dc_next.copy_from_slice(&dc_prev);
                if let Some([dh_direct, dc_direct]) = &direct {
                    accumulate(dh_next, dh_direct);
                    accumulate(dc_next, dc_direct);
                }
            }
        },
    );
    let h_prev = inputs.recurrent_operand(direction.entering(&hidden, br));
    let bias = total(&sums, g4);
    // dW_hr = sum_t dh_t^T m_t, one GEMM over all steps.
    let w_hr = match projection {
        Some(_) => weight_grad(&d_shown, &shown, r),
        None => Vec::new(),
    };
    let grads = match (norms, inputs.norms, norm_sums) {
        (Some(kept), Some(n), Some(sums)) => {
            // The gates are LN_ih(x W_ih^T) + b_ih + LN_hh(h W_hh^T) + b_hh: the products'
            // gradients through their layer norms (from the loop), and
            // every bias (and beta) the gates' column sums.
            let grads = LayerGrads::new(
                inputs,
                (&kept.ih.hat, bias.clone()),
                (&kept.hh.hat, bias.clone()),
                &h_prev,
                (dh_next, dc_next),
            );
            let gamma_ih = total(&sums.ih_gamma, g4);
            let mut norm_grads = vec![gamma_ih, bias.clone(), total(&sums.hh_gamma, g4), bias];
            if n.c.is_some() {
                norm_grads.extend([total(&sums.c_gamma, h), total(&sums.c_beta, h)]);
            }
            grads.with_norms(norm_grads)
        }
        // The gates are x W_ih^T + b_ih + h W_hh^T + b_hh: one gradient for both products.
        _ => LayerGrads::shared(inputs, (&d_gates, bias), &h_prev, (dh_next, dc_next)),
    };
    grads.with_projection(w_hr)
}
