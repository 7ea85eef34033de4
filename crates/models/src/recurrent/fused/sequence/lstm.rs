//! An LSTM layer direction as one op: the time loop (`W_hh` packed once) and BPTT.

use super::buffers::{accumulate, add, concat_padded, total};
use super::direction::{Direction, rows_of, step_states};
use super::grads::LayerGrads;
use super::inputs::{LayerInputs, ZoneoutRates, mask_in_place, unzone, zone};
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
    // The gates start as x W_ih^T; each step adds both biases and the recurrent product.
    let mut gates = inputs.project();
    let bias = inputs.summed_bias();
    let mut hidden = vec![0f32; (steps + 1) * bh];
    let mut cell = vec![0f32; (steps + 1) * bh];
    let first = direction.first_slot(steps) * bh;
    hidden[first..][..bh].copy_from_slice(h0);
    cell[first..][..bh].copy_from_slice(c0);
    let mut updates = vec![0f32; inputs.zoneout.map_or(0, |_| steps * bh)];
    let parts = row_parts(batch, steps * bh * g4);
    let mut update_parts = slabs(&mut updates, h, batch, &parts);
    update_parts.resize_with(parts.len(), Vec::new);
    let work: Vec<_> = slabs(&mut gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(slabs(&mut cell, h, batch, &parts).into_iter().zip(&parts))
        .zip(update_parts)
        .collect();
    in_parallel(work, |(((mut gs, mut hs), (mut cs, rows)), mut us)| {
        let mut operand = inputs.operand(rows, h);
        for t in direction.times(steps) {
            let g = &mut *gs[t];
            let (h_prev, h_next) = step_states(&mut hs, direction.slots(t));
            w.multiply_bias(operand.of(h_prev), g, true, &bias);
            let (c_prev, c_next) = step_states(&mut cs, direction.slots(t));
            lstm_forward_keep(g, c_prev, h, h_next, c_next);
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
    });
    LstmTrace {
        gates,
        hidden,
        cell,
        updates,
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
        direction,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let mut dc_next = d_cell.to_vec();
    let parts = row_parts(batch, steps * bh * g4);
    // Each batch row's sum over time of its gate gradients (for the bias gradient).
    let mut sums = vec![0f32; batch * g4];
    let work: Vec<_> = slabs(&mut d_gates, g4, batch, &parts)
        .into_iter()
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(slabs(&mut dc_next, h, batch, &parts))
        .zip(
            parts
                .iter()
                .cloned()
                .zip(slabs(&mut sums, g4, batch, &parts)),
        )
        .collect();
    in_parallel(
        work,
        |(((mut dgs, mut dh_next), mut dc_next), (rows, mut sums))| {
            let (dh_next, dc_next) = (&mut *dh_next[0], &mut *dc_next[0]);
            let mask = inputs.mask_rows(&rows, h);
            let (mut dh, mut dc_prev) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
            // With zoneout, the parts of dL/dh_t and dL/dc_t that reach h_{t-1} and c_{t-1}
            // past the cell.
            let mut direct = inputs.zoneout.map(|_| [dh.clone(), dh.clone()]);
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
                lstm_backward_in_place(dg, c_prev, c, &dh, dc_next, h, &mut dc_prev);
                accumulate(sums[0], dg);
                w.multiply(dg, dh_next, false);
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
    // The gates are x W_ih^T + b_ih + h W_hh^T + b_hh: one gradient for both products.
    let h_prev = inputs.recurrent_operand(direction.entering(&hidden, bh));
    let bias = total(&sums, g4);
    LayerGrads::shared(inputs, (&d_gates, bias), &h_prev, (dh_next, dc_next))
}
