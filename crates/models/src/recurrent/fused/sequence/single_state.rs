//! A layer direction of a cell whose state is the hidden vector alone, a GRU (reset after) or a
//! vanilla RNN (tanh or ReLU), as one op: the time loop (`W_hh` packed once) and BPTT.

use super::buffers::{accumulate, add, add_rows, total};
use super::direction::{Direction, rows_of, step_states};
use super::grads::LayerGrads;
use super::inputs::{LayerInputs, ZoneoutRates, mask_in_place, unzone, zone};
use super::norm::{KeptNorms, NormSums, norm_parts, normalise, unstandardise};
use super::parts::{in_parallel, row_parts, slabs};
use super::products::Weights;
use crate::recurrent::fused::kernels::{
    gru_backward_in_place, gru_forward_keep, relu_backward, relu_forward, tanh_backward,
    tanh_forward,
};
use crate::recurrent::fused::packed::PackedMatrix;

/// What the forward pass of a GRU (reset-after) or vanilla-RNN sequence keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct SingleStateTrace {
    /// Per step `h_t W_hh^T + b_hh`, `[T, B, G*H]` (GRU: `G = 3`; RNN: the pre-activation).
    pub projected: Vec<f32>,
    /// GRU: the activations `r, z, n` of every step, `[T, B, 3H]`; RNN: empty.
    pub acts: Vec<f32>,
    /// `h_0 .. h_T`, `[T + 1, B, H]`.
    pub hidden: Vec<f32>,
    /// A vanilla RNN's with zoneout: each step's update before zoneout `h~_t` (what the
    /// nonlinearity's gradient reads), `[T, B, H]` in time order; empty otherwise.
    pub updates: Vec<f32>,
    /// A layer-normalised GRU's layer norms (`projected` then holds `LN_hh(h_t W_hh^T) + b_hh`).
    pub norms: Option<KeptNorms>,
    /// The order the states were computed in (and in which [`Self::hidden`] keeps them).
    pub direction: Direction,
}

impl SingleStateTrace {
    /// The op's output: the outputs `h_t` in time order, `[T, B, H]`.
    pub fn output(&self, bh: usize) -> &[f32] {
        self.direction.outputs(&self.hidden, bh)
    }
}

/// The cells whose state is the hidden vector alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SingleStateCell {
    /// GRU, reset after the recurrent product (PyTorch's form): `G = 3`.
    Gru,
    /// Vanilla RNN with tanh: `G = 1`.
    RnnTanh,
    /// Vanilla RNN with ReLU: `G = 1`.
    RnnRelu,
}

impl SingleStateCell {
    pub(super) fn gates(self) -> usize {
        match self {
            SingleStateCell::Gru => 3,
            SingleStateCell::RnnTanh | SingleStateCell::RnnRelu => 1,
        }
    }
}

/// Runs a GRU or vanilla-RNN layer direction on `inputs` from `h0` `[B, H]`.
pub fn single_state_forward(
    cell: SingleStateCell,
    inputs: &LayerInputs<'_>,
    h0: &[f32],
    (steps, batch, h): (usize, usize, usize),
    direction: Direction,
) -> SingleStateTrace {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // P_t = h_t W_hh^T + b_hh: W_hh^T [H, G*H] packed once (or read in place for a tiny batch).
    let w = Weights::new(inputs.w_hh, (gh, h), batch);
    // The RNN's pre-activation x W_ih^T + b_ih + P_t builds up in place in the projection; the
    // GRU keeps x W_ih^T + b_ih and P_t apart (its reset gate multiplies P_t's last block only);
    // a layer-normalised GRU's are LN_ih(x W_ih^T) + b_ih and LN_hh(h_t W_hh^T) + b_hh.
    let (mut projected, mut x_proj, mut acts, mut bias) = match cell {
        SingleStateCell::Gru => {
            let n = steps * batch * gh;
            let (p, a) = (vec![0f32; n], vec![0f32; n]);
            (p, inputs.project(), a, inputs.b_hh.to_vec())
        }
        SingleStateCell::RnnTanh | SingleStateCell::RnnRelu => (
            inputs.project(),
            Vec::new(),
            Vec::new(),
            inputs.summed_bias(),
        ),
    };
    let mut norms = inputs
        .norms
        .map(|n| KeptNorms::new(n, &mut x_proj, &vec![0f32; gh], (steps, batch, h)));
    if norms.is_some() {
        bias.fill(0.0);
    }
    let mut hidden = vec![0f32; (steps + 1) * bh];
    hidden[direction.first_slot(steps) * bh..][..bh].copy_from_slice(h0);
    let zoned_rnn = inputs.zoneout.is_some() && cell != SingleStateCell::Gru;
    let mut updates = vec![0f32; if zoned_rnn { steps * bh } else { 0 }];
    let parts = row_parts(batch, steps * bh * gh);
    let mut update_parts = slabs(&mut updates, h, batch, &parts);
    update_parts.resize_with(parts.len(), Vec::new);
    // The GRU's x and activation slabs (none for the RNN).
    let mut gru_parts: Vec<_> = slabs(&mut x_proj, gh, batch, &parts)
        .into_iter()
        .zip(slabs(&mut acts, gh, batch, &parts))
        .collect();
    gru_parts.resize_with(parts.len(), Default::default);
    let work: Vec<_> = slabs(&mut projected, gh, batch, &parts)
        .into_iter()
        .zip(slabs(&mut hidden, h, batch, &parts))
        .zip(gru_parts.into_iter().zip(&parts))
        .zip(
            update_parts
                .into_iter()
                .zip(norm_parts(norms.as_mut(), None, (gh, h), batch, &parts)),
        )
        .collect();
    in_parallel(
        work,
        |(((mut ps, mut hs), ((mut xs, mut acts), rows)), (mut us, mut ns))| {
            let mut operand = inputs.operand(rows, h);
            for t in direction.times(steps) {
                let p = &mut *ps[t];
                let (prev, next) = step_states(&mut hs, direction.slots(t));
                match cell {
                    SingleStateCell::Gru => {
                        add_rows(xs[t], inputs.b_ih);
                        match (inputs.norms, ns.hh.get_mut(t)) {
                            (Some(n), Some((hat, rstd))) => {
                                w.multiply_bias(operand.of(prev), hat, false, &bias);
                                normalise(hat, rstd, n.hh, inputs.b_hh, p, false);
                            }
                            _ => w.multiply_bias(operand.of(prev), p, false, &bias),
                        }
                    }
                    SingleStateCell::RnnTanh | SingleStateCell::RnnRelu => {
                        w.multiply_bias(operand.of(prev), p, true, &bias)
                    }
                }
                match cell {
                    SingleStateCell::Gru => gru_forward_keep(xs[t], p, prev, h, next, acts[t]),
                    SingleStateCell::RnnTanh => tanh_forward(p, next),
                    SingleStateCell::RnnRelu => relu_forward(p, next),
                }
                if let Some(z) = inputs.zoneout {
                    if let Some(u) = us.get_mut(t) {
                        u.copy_from_slice(next);
                    }
                    zone(next, prev, ZoneoutRates::at(z.hidden, t, rows, h, batch));
                }
            }
        },
    );
    SingleStateTrace {
        projected,
        acts,
        hidden,
        updates,
        norms,
        direction,
    }
}

/// BPTT through a GRU or vanilla-RNN trace, which it consumes (gradients overwrite the activations
/// and projections); `d_hidden` `[T, B, H]` is `dL/dh_1..h_T`.
pub fn single_state_backward(
    cell: SingleStateCell,
    trace: SingleStateTrace,
    inputs: &LayerInputs<'_>,
    d_hidden: &[f32],
    (steps, batch, h): (usize, usize, usize),
) -> LayerGrads {
    let (gh, bh) = (cell.gates() * h, batch * h);
    // dh_{t-1} = dP_t W_hh (+ the GRU's direct path): W_hh [G*H, H] packed once.
    let w = PackedMatrix::pack(inputs.w_hh, (gh, h), false);
    let SingleStateTrace {
        projected: mut d_proj,
        acts: mut d_x,
        hidden,
        updates,
        mut norms,
        direction,
    } = trace;
    let mut dh_next = vec![0f32; bh];
    let parts = row_parts(batch, steps * bh * gh);
    let mut dx_parts = slabs(&mut d_x, gh, batch, &parts);
    dx_parts.resize_with(parts.len(), Vec::new);
    // Each batch row's sums over time of `dP` and (GRU) of `dX` (for the bias gradients).
    let (mut p_sums, mut x_sums) = (vec![0f32; batch * gh], vec![0f32; batch * gh]);
    let sum_parts = slabs(&mut p_sums, gh, batch, &parts).into_iter().zip(slabs(
        &mut x_sums,
        gh,
        batch,
        &parts,
    ));
    let mut norm_sums = inputs.norms.map(|n| NormSums::zeros(n, batch));
    let norm_parts = norm_parts(norms.as_mut(), norm_sums.as_mut(), (gh, h), batch, &parts);
    let work: Vec<_> = dx_parts
        .into_iter()
        .zip(slabs(&mut d_proj, gh, batch, &parts))
        .zip(slabs(&mut dh_next, h, batch, &parts))
        .zip(parts.iter().cloned().zip(sum_parts).zip(norm_parts))
        .collect();
    in_parallel(
        work,
        |(((mut dxs, mut dps), mut dh_next), ((rows, (mut p_sums, mut x_sums)), mut ns))| {
            let dh_next = &mut *dh_next[0];
            let mask = inputs.mask_rows(&rows, h);
            // `g` = dL/dh_t; `direct` = its part that reaches h_{t-1} without W_hh (GRU's z h_{t-1}).
            let (mut g, mut direct) = (vec![0f32; dh_next.len()], vec![0f32; dh_next.len()]);
            // With zoneout, the part of dL/dh_t that reaches h_{t-1} past the cell.
            let mut zoned = inputs.zoneout.map(|_| vec![0f32; dh_next.len()]);
            for t in direction.times(steps).rev() {
                add(&mut g, rows_of(d_hidden, t, &rows, h, batch), dh_next);
                if let (Some(z), Some(zoned)) = (inputs.zoneout, &mut zoned) {
                    unzone(
                        &mut g,
                        ZoneoutRates::at(z.hidden, t, &rows, h, batch),
                        zoned,
                    );
                }
                let dp = &mut *dps[t];
                let (from, to) = direction.slots(t);
                match cell {
                    SingleStateCell::Gru => {
                        let prev = rows_of(&hidden, from, &rows, h, batch);
                        gru_backward_in_place(dxs[t], dp, prev, &g, h, &mut direct);
                        accumulate(x_sums[0], dxs[t]);
                        accumulate(p_sums[0], dp);
                        // Through LN_ih: the gradient of x W_ih^T takes the kept y^'s place.
                        if let (Some(n), Some((hat, rstd))) = (inputs.norms, ns.ih.get_mut(t)) {
                            unstandardise(dxs[t], hat, rstd, n.ih.gamma, ns.sums[0]);
                        }
                        // Through LN_hh: the gradient of h W_hh^T takes the kept y^'s place.
                        let dp: &[f32] = match (inputs.norms, ns.hh.get_mut(t)) {
                            (Some(n), Some((hat, rstd))) => {
                                unstandardise(dp, hat, rstd, n.hh.gamma, ns.sums[1]);
                                hat
                            }
                            _ => dp,
                        };
                        match mask {
                            None => {
                                dh_next.copy_from_slice(&direct);
                                w.multiply(dp, dh_next, true);
                            }
                            // Only the product's part of the gradient passes the mask.
                            Some(m) => {
                                w.multiply(dp, dh_next, false);
                                mask_in_place(dh_next, m);
                                accumulate(dh_next, &direct);
                            }
                        }
                    }
                    SingleStateCell::RnnTanh | SingleStateCell::RnnRelu => {
                        let y = if updates.is_empty() {
                            rows_of(&hidden, to, &rows, h, batch)
                        } else {
                            rows_of(&updates, t, &rows, h, batch)
                        };
                        if cell == SingleStateCell::RnnTanh {
                            tanh_backward(y, &g, dp);
                        } else {
                            relu_backward(y, &g, dp);
                        }
                        w.multiply(dp, dh_next, false);
                        if let Some(m) = mask {
                            mask_in_place(dh_next, m);
                        }
                        accumulate(p_sums[0], dp);
                    }
                }
                if let Some(zoned) = &zoned {
                    accumulate(dh_next, zoned);
                }
            }
        },
    );
    let h_prev = &*inputs.recurrent_operand(direction.entering(&hidden, bh));
    match cell {
        SingleStateCell::Gru => {
            let (b_ih, b_hh) = (total(&x_sums, gh), total(&p_sums, gh));
            // Through the layer norms: the gradients of x W_ih^T and of h W_hh^T (from the loop)
            // take the kept y^'s places.
            let (d_x_proj, d_h_proj, norm_grads) = match (&norms, &norm_sums) {
                (Some(kept), Some(sums)) => {
                    let gamma_ih = total(&sums.ih_gamma, gh);
                    let gamma_hh = total(&sums.hh_gamma, gh);
                    let grads = vec![gamma_ih, b_ih.clone(), gamma_hh, b_hh.clone()];
                    (&kept.ih.hat[..], &kept.hh.hat[..], grads)
                }
                _ => (&d_x[..], &d_proj[..], Vec::new()),
            };
            LayerGrads::new(
                inputs,
                (d_x_proj, b_ih),
                (d_h_proj, b_hh),
                h_prev,
                (dh_next, Vec::new()),
            )
            .with_norms(norm_grads)
        }
        // The RNN's pre-activation is x W_ih^T + b_ih + P_t: one gradient for both products.
        SingleStateCell::RnnTanh | SingleStateCell::RnnRelu => LayerGrads::shared(
            inputs,
            (&d_proj, total(&p_sums, gh)),
            h_prev,
            (dh_next, Vec::new()),
        ),
    }
}
