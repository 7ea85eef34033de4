//! An LSTM layer direction as one op: the time loop (`W_hh` packed once) and BPTT.

use super::buffers::{accumulate, add, concat_padded, total};
use super::direction::{Direction, rows_of, step_states};
use super::grads::LayerGrads;
use super::inputs::{LayerInputs, ZoneoutRates, mask_in_place, unzone, zone};
use super::norm::{
    KeptNorms, NormSums, lstm_output, lstm_output_backward, norm_parts, shift, standardise,
    step_backward,
};
use super::parts::{in_parallel, row_parts, slabs};
use super::products::Weights;
use crate::recurrent::fused::kernels::{lstm_backward_in_place, lstm_forward_keep};
use crate::recurrent::fused::packed::PackedMatrix;

/// What the forward pass keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct LstmTrace {
    /// Activated gates `s(i), s(f), tanh(g), s(o)` of every step, `[T, B, 4H]`.
    pub gates: Vec<f32>,
    /// `h_0 .. h_T`, `[T + 1, B, H]`.
    pub hidden: Vec<f32>,
    /// `c_0 .. c_T`, `[T + 1, B, H]`.
    pub cell: Vec<f32>,
    /// With zoneout, each step's cell update before zoneout `c~_t` (what `h_t` reads),
    /// `[T, B, H]` in time order; empty without.
    pub updates: Vec<f32>,
    /// A layer-normalised cell's layer norms.
    pub norms: Option<KeptNorms>,
    /// The order the states were computed in (and in which [`Self::hidden`] keeps them).
    pub direction: Direction,
}

impl LstmTrace {
    /// The op's output `[T + 1, B, H]`: the outputs `h_t` in time order, then the final cell
    /// state.
    pub fn output(&self, steps: usize, bh: usize) -> Vec<f32> {
        let outputs = self.direction.outputs(&self.hidden, bh);
        let cell = &self.cell[self.direction.last_slot(steps) * bh..][..bh];
        concat_padded(&[outputs, cell], outputs.len() + bh)
    }
}

/// Runs an LSTM layer direction on `inputs` from `h0`, `c0` `[B, H]`.
pub fn lstm_sequence_forward(
    inputs: &LayerInputs<'_>,
    h0: &[f32],
    c0: &[f32],
    (steps, batch, h): (usize, usize, usize),
    direction: Direction,
) -> LstmTrace {
    let (g4, bh) = (4 * h, batch * h);
    // gates += h_t W_hh^T: W_hh^T [H, 4H] packed once (or read in place for a tiny batch).
    let w = Weights::new(inputs.w_hh, (g4, h), batch);
    // The gates start as x W_ih^T; each step adds both biases and the recurrent product. With
    // layer norms the gates start as LN_ih(x W_ih^T) and both biases, and each step adds
    // LN_hh(h W_hh^T).
    let mut gates = inputs.project();
    let mut bias = inputs.summed_bias();
    let mut norms = inputs
        .norms
        .map(|n| KeptNorms::new(n, &mut gates, Some(&bias), (steps, batch, h)));
    if norms.is_some() {
        bias.fill(0.0);
    }
    let mut hidden = vec![0f32; (steps + 1) * bh];
    let mut cell = vec![0f32; (steps + 1) * bh];
    let first = direction.first_slot(steps) * bh;
    hidden[first..][..bh].copy_from_slice(h0);
    cell[first..][..bh].copy_from_slice(c0);
    let mut updates = vec![0f32; inputs.zoneout.map_or(0, |_| steps * bh)];
    let parts = row_parts(batch, steps * bh * g4);
    let mut update_parts = slabs(&mut updates, h, batch, &parts);
    update_parts.resize_with(parts.len(), Vec::new);
    let norm_parts = norm_parts(norms.as_mut(), None, (g4, h), batch, &parts);
    let work: Vec<_> = slabs(&mut gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(slabs(&mut cell, h, batch, &parts).into_iter().zip(&parts))
        .zip(update_parts.into_iter().zip(norm_parts))
        .collect();
    in_parallel(
        work,
        |(((mut gs, mut hs), (mut cs, rows)), (mut us, mut ns))| {
            let mut operand = inputs.operand(rows, h);
            let mut product = vec![0f32; if ns.hh.is_empty() { 0 } else { rows.len() * g4 }];
            for t in direction.times(steps) {
                let g = &mut *gs[t];
                let (h_prev, h_next) = step_states(&mut hs, direction.slots(t));
                match (inputs.norms, ns.hh.get_mut(t)) {
                    (Some(n), Some((hat, rstd))) => {
                        w.multiply_bias(operand.of(h_prev), &mut product, false, &bias);
                        standardise(&product, hat, rstd);
                        shift(hat, n.hh, None, g, true);
                    }
                    _ => w.multiply_bias(operand.of(h_prev), g, true, &bias),
                }
                let (c_prev, c_next) = step_states(&mut cs, direction.slots(t));
                lstm_forward_keep(g, c_prev, h, h_next, c_next);
                if let (Some(n), Some((hat, rstd))) =
                    (inputs.norms.and_then(|n| n.c), ns.c.get_mut(t))
                {
                    standardise(c_next, hat, rstd);
                    lstm_output(g, hat, n, h_next);
                }
                if let Some(z) = inputs.zoneout {
                    us[t].copy_from_slice(c_next);
                    zone(
                        h_next,
                        h_prev,
                        ZoneoutRates::at(z.hidden, t, rows, h, batch),
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
        norms,
        direction,
    }
}

/// BPTT through the trace, which it consumes (the gradients of the gates overwrite the gates).
/// `d_hidden` `[T, B, H]` is `dL/dh_1..h_T` from the outputs, `d_cell` `[B, H]` is `dL/dc_T`.
pub fn lstm_sequence_backward(
    trace: LstmTrace,
    inputs: &LayerInputs<'_>,
    d_hidden: &[f32],
    d_cell: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LayerGrads {
    let (g4, bh) = (4 * h, batch * h);
    // dh_{t-1} = dG_t W_hh: W_hh [4H, H] packed once.
    let w = PackedMatrix::pack(inputs.w_hh, (g4, h), false);
    let LstmTrace {
        gates: mut d_gates,
        hidden,
        cell,
        updates,
        mut norms,
        direction,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let mut dc_next = d_cell.to_vec();
    let parts = row_parts(batch, steps * bh * g4);
    // Each batch row's sum over time of its gate gradients (for the bias gradient), and of the
    // layer norms' gain and bias gradients.
    let mut sums = vec![0f32; batch * g4];
    let mut norm_sums = inputs.norms.map(|n| NormSums::zeros(n, batch));
    let norm_parts = norm_parts(norms.as_mut(), norm_sums.as_mut(), (g4, h), batch, &parts);
    let work: Vec<_> = slabs(&mut d_gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(slabs(&mut dc_next, h, batch, &parts))
        .zip(
            parts
                .iter()
                .cloned()
                .zip(slabs(&mut sums, g4, batch, &parts))
                .zip(norm_parts),
        )
        .collect();
    in_parallel(
        work,
        |(((mut dgs, mut dh_next), mut dc_next), ((rows, mut sums), mut ns))| {
            let (dh_next, dc_next) = (&mut *dh_next[0], &mut *dc_next[0]);
            let mask = inputs.mask_rows(&rows, h);
            let (mut dh, mut dc_prev) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
            // With zoneout, the parts of dL/dh_t and dL/dc_t that reach h_{t-1} and c_{t-1}
            // past the cell.
            let mut direct = inputs.zoneout.map(|_| [dh.clone(), dh.clone()]);
            // With the cell's layer norm, the output gate's gradient (which the plain kernel,
            // given no dL/dh, leaves at zero) and a zero dL/dh.
            let c_norm = inputs.norms.and_then(|n| n.c);
            let mut shown = c_norm.map(|_| [dh.clone(), dh.clone()]);
            for t in direction.times(steps).rev() {
                add(&mut dh, rows_of(d_hidden, t, &rows, h, batch), dh_next);
                let dg = &mut *dgs[t];
                let (from, to) = direction.slots(t);
                let c_prev = rows_of(&cell, from, &rows, h, batch);
                let mut c = rows_of(&cell, to, &rows, h, batch);
                if let (Some(z), Some([dh_direct, dc_direct])) = (inputs.zoneout, &mut direct) {
                    unzone(
                        &mut dh,
                        ZoneoutRates::at(z.hidden, t, &rows, h, batch),
                        dh_direct,
                    );
                    unzone(
                        dc_next,
                        ZoneoutRates::at(z.cell, t, &rows, h, batch),
                        dc_direct,
                    );
                    c = rows_of(&updates, t, &rows, h, batch);
                }
                match (c_norm, &mut shown, ns.c.get_mut(t)) {
                    (Some(n), Some([d_out_gate, no_dh]), Some((hat, rstd))) => {
                        let [gamma_sums, beta_sums] = &mut ns.sums[1..] else {
                            unreachable!("three sums")
                        };
                        lstm_output_backward(
                            dg,
                            (hat, rstd),
                            n,
                            &dh,
                            d_out_gate,
                            (gamma_sums, beta_sums),
                        );
                        accumulate(dc_next, hat);
                        lstm_backward_in_place(dg, c_prev, c, no_dh, dc_next, h, &mut dc_prev);
                        for (dg, d) in dg.chunks_mut(g4).zip(d_out_gate.chunks(h)) {
                            dg[3 * h..].copy_from_slice(d);
                        }
                    }
                    _ => lstm_backward_in_place(dg, c_prev, c, &dh, dc_next, h, &mut dc_prev),
                }
                accumulate(sums[0], dg);
                match (inputs.norms, ns.hh.get_mut(t)) {
                    (Some(n), Some((hat, rstd))) => {
                        step_backward(dg, hat, rstd, n.hh.gamma, ns.sums[0]);
                        w.multiply(hat, dh_next, false);
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
    let h_prev = inputs.recurrent_operand(direction.entering(&hidden, bh));
    let bias = total(&sums, g4);
    match (norms, inputs.norms, norm_sums) {
        (Some(mut kept), Some(n), Some(sums)) => {
            // The gates are LN_ih(x W_ih^T) + b_ih + LN_hh(h W_hh^T) + b_hh: the products'
            // gradients through their layer norms (the recurrent one's from the loop), and
            // every bias (and beta) the gates' column sums.
            let gamma_ih = kept.ih.backward_all(&d_gates, n.ih.gamma);
            let grads = LayerGrads::new(
                inputs,
                (&kept.ih.hat, bias.clone()),
                (&kept.hh.hat, bias.clone()),
                &h_prev,
                (dh_next, dc_next),
            );
            let mut norm_grads = vec![gamma_ih, bias.clone(), total(&sums.hh_gamma, g4), bias];
            if n.c.is_some() {
                norm_grads.extend([total(&sums.c_gamma, h), total(&sums.c_beta, h)]);
            }
            grads.with_norms(norm_grads)
        }
        // The gates are x W_ih^T + b_ih + h W_hh^T + b_hh: one gradient for both products.
        _ => LayerGrads::shared(inputs, (&d_gates, bias), &h_prev, (dh_next, dc_next)),
    }
}
