use super::buffers::{COPY_BLOCK, transpose};
use super::parts::row_parts;
use super::products::product;
use super::single_state::SingleStateCell;
use super::*;
use crate::host::gradcheck::check_gradients;

#[test]
fn product_handles_the_transpositions() {
    // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
    let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
    for (a_t, b_t, want) in [
        (false, false, [19.0, 22.0, 43.0, 50.0]),
        (true, false, [26.0, 30.0, 38.0, 44.0]),
        (false, true, [17.0, 23.0, 39.0, 53.0]),
        (true, true, [23.0, 31.0, 34.0, 46.0]),
    ] {
        assert_eq!(product(&a, a_t, &b, b_t, (2, 2, 2)), want, "{a_t} {b_t}");
    }
    // A product over an empty inner dimension is all zeros.
    assert_eq!(product(&[], false, &[], false, (3, 3, 0)), [0.0; 9]);
}

/// A product large enough to run as row blocks on several threads (in a pool of three, so
/// that the blocks are uneven) is the f64 product, for each layout of the operands.
#[test]
fn product_in_row_blocks_matches_the_reference() {
    let (m, n, k) = (150, 40, 50);
    let (a, b) = (values(m * k, 1), values(k * n, 2));
    let at = |i: usize, q: usize| a[i * k + q] as f64;
    let bt = |q: usize, j: usize| b[q * n + j] as f64;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
        // The operands as `product` reads them: transposed copies where asked.
        let a_in = if a_t { transpose(&a, k) } else { a.clone() };
        let b_in = if b_t { transpose(&b, n) } else { b.clone() };
        let c = pool.install(|| product(&a_in, a_t, &b_in, b_t, (m, n, k)));
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|q| at(i, q) * bt(q, j)).sum();
                let got = c[i * n + j] as f64;
                assert!((got - want).abs() < 1e-4, "{a_t} {b_t} ({i}, {j})");
            }
        }
    }
}

/// Deterministic test values in [-0.75, 0.75].
fn values(n: usize, s: usize) -> Vec<f32> {
    (0..n)
        .map(|k| (((k * s) % 13) as f32 - 6.0) / 8.0)
        .collect()
}

/// `[x, w_ih, b_ih, w_hh, b_hh]` of a layer with `gates` gate blocks and input width `i`.
fn layer((t, b, i, h): (usize, usize, usize, usize), gates: usize) -> Vec<Vec<f32>> {
    let gh = gates * h;
    vec![
        values(t * b * i, 7),
        values(gh * i, 5),
        values(gh, 3),
        values(gh * h, 12),
        values(gh, 8),
    ]
}

fn inputs(v: &[Vec<f32>]) -> LayerInputs<'_> {
    LayerInputs {
        x: LayerInput::Features(&v[0]),
        w_ih: &v[1],
        b_ih: &v[2],
        w_hh: &v[3],
        b_hh: &v[4],
        w_hr: None,
        recurrent_mask: None,
        zoneout: None,
        norms: None,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum()
}

const DIRECTIONS: [Direction; 2] = [Direction::Forward, Direction::Reverse];

#[test]
fn lstm_backward_matches_central_differences() {
    let (t, b, i, h) = (3, 2, 3, 2);
    let mut args = layer((t, b, i, h), 4);
    args.extend([values(b * h, 11), values(b * h, 2)]);
    // Weights of the outputs h_1 .. h_T and of the final c.
    let wd = values((t + 1) * b * h, 9);
    for dir in DIRECTIONS {
        let loss = |a: &[Vec<f32>]| {
            let tr = lstm_sequence_forward(&inputs(a), &a[5], &a[6], (t, b, h), dir);
            dot(&tr.output(t).concat(), &wd)
        };
        let trace = lstm_sequence_forward(&inputs(&args), &args[5], &args[6], (t, b, h), dir);
        let (d_hidden, d_cell) = wd.split_at(t * b * h);
        let g = lstm_sequence_backward(trace, &inputs(&args), d_hidden, d_cell, (t, b, h));
        let grads = [&g.x, &g.w_ih, &g.b_ih, &g.w_hh, &g.b_hh, &g.h0, &g.c0];
        check_gradients(&args, &grads, loss, 3e-3);
    }
}

/// With a projection (`h` 2 wide, `c` 3) and layer norms (gains near 1, biases near 0), the
/// LSTM's gradients, `W_hr` and the gains and biases included.
#[test]
fn lstm_with_projection_and_layer_norms_matches_central_differences() {
    let (t, b, i, h, r) = (3, 2, 3, 3, 2);
    let g4 = 4 * h;
    let near_one = |n, s| values(n, s).iter().map(|v| 1.0 + v / 2.0).collect();
    let mut args = layer((t, b, i, h), 4);
    args[3] = values(g4 * r, 12);
    args.extend([values(b * r, 11), values(b * h, 2), values(r * h, 6)]);
    args.extend([
        near_one(g4, 4),
        values(g4, 5),
        near_one(g4, 7),
        values(g4, 3),
    ]);
    args.extend([near_one(h, 5), values(h, 9)]);
    fn full(a: &[Vec<f32>]) -> LayerInputs<'_> {
        let pair = |k: usize| NormParams {
            gamma: &a[k],
            beta: &a[k + 1],
        };
        let norms = CellNorms {
            ih: pair(8),
            hh: pair(10),
            c: Some(pair(12)),
        };
        LayerInputs {
            w_hh: &a[3],
            w_hr: Some(&a[7]),
            norms: Some(norms),
            ..inputs(a)
        }
    }
    // Weights of the outputs h_1 .. h_T and of the final c.
    let wd = values(t * b * r + b * h, 9);
    for dir in DIRECTIONS {
        let loss = |a: &[Vec<f32>]| {
            let tr = lstm_sequence_forward(&full(a), &a[5], &a[6], (t, b, r), dir);
            dot(&tr.output(t).concat(), &wd)
        };
        let trace = lstm_sequence_forward(&full(&args), &args[5], &args[6], (t, b, r), dir);
        let (d_hidden, d_cell) = wd.split_at(t * b * r);
        let g = lstm_sequence_backward(trace, &full(&args), d_hidden, d_cell, (t, b, r));
        let mut grads = vec![
            &g.x, &g.w_ih, &g.b_ih, &g.w_hh, &g.b_hh, &g.h0, &g.c0, &g.w_hr,
        ];
        grads.extend(&g.norms);
        check_gradients(&args, &grads, loss, 3e-3);
    }
}

#[test]
fn single_state_backward_matches_central_differences() {
    let (t, b, i, h) = (3, 2, 3, 2);
    for (cell, dir) in [SingleStateCell::Gru, SingleStateCell::RnnTanh]
        .into_iter()
        .flat_map(|c| DIRECTIONS.map(|d| (c, d)))
    {
        let mut args = layer((t, b, i, h), cell.gates());
        args.push(values(b * h, 11));
        let wd = values(t * b * h, 9);
        let loss = |a: &[Vec<f32>]| {
            let tr = single_state_forward(cell, &inputs(a), &a[5], (t, b, h), dir);
            dot(tr.output(b * h), &wd)
        };
        let trace = single_state_forward(cell, &inputs(&args), &args[5], (t, b, h), dir);
        let g = single_state_backward(cell, trace, &inputs(&args), &wd, (t, b, h));
        let grads = [&g.x, &g.w_ih, &g.b_ih, &g.w_hh, &g.b_hh, &g.h0];
        check_gradients(&args, &grads, loss, 3e-3);
    }
}

/// `[T, B*w]` with its `T` slabs in the opposite order.
fn flip(m: &[f32], steps: usize) -> Vec<f32> {
    let slab = m.len() / steps;
    m.chunks(slab).rev().flatten().copied().collect()
}

#[test]
fn reverse_direction_is_the_forward_one_over_the_flipped_input() {
    let (t, b, i, h) = (5, 3, 4, 3);
    let bh = b * h;
    for cell in [
        None,
        Some(SingleStateCell::Gru),
        Some(SingleStateCell::RnnTanh),
    ] {
        let gates = cell.map_or(4, |c| c.gates());
        let args = layer((t, b, i, h), gates);
        let mut flipped = args.clone();
        flipped[0] = flip(&args[0], t);
        let (h0, c0) = (values(bh, 11), values(bh, 2));
        // Outputs (and the LSTM's final c) of a run; `flip_outputs` puts them in the
        // reverse run's time order.
        let run = |a: &[Vec<f32>], dir, flip_outputs: bool| {
            let (mut out, tail) = match cell {
                None => {
                    let tr = lstm_sequence_forward(&inputs(a), &h0, &c0, (t, b, h), dir);
                    let [out, c] = tr.output(t);
                    (out.to_vec(), c.to_vec())
                }
                Some(c) => {
                    let tr = single_state_forward(c, &inputs(a), &h0, (t, b, h), dir);
                    (tr.output(bh).to_vec(), Vec::new())
                }
            };
            if flip_outputs {
                out = flip(&out, t);
            }
            out.extend(tail);
            out
        };
        let reverse = run(&args, Direction::Reverse, false);
        assert_eq!(reverse, run(&flipped, Direction::Forward, true), "{cell:?}");
    }
}

#[test]
fn token_inputs_are_one_hot_features() {
    // Every cell and direction, split between threads (T B H G*H >= MIN_PARALLEL_WORK).
    let (t, b, v, h) = (4, 9, 5, 160);
    let ids: Vec<usize> = (0..t * b).map(|r| (r * 7 + r / 3) % v).collect();
    let onehot: Vec<f32> = ids
        .iter()
        .flat_map(|&id| (0..v).map(move |k| f32::from(u8::from(k == id))))
        .collect();
    let (h0, c0, d_hidden) = (values(b * h, 11), values(b * h, 2), values(t * b * h, 9));
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
    };
    for dir in DIRECTIONS {
        for cell in [
            FusedCell::Lstm,
            FusedCell::Gru,
            FusedCell::RnnTanh,
            FusedCell::RnnRelu,
        ] {
            let args = layer((t, b, v, h), cell.gates());
            let run = |x: LayerInput<&[f32], &[usize]>| {
                let inputs = LayerInputs { x, ..inputs(&args) };
                let trace = cell.forward(&inputs, (&h0, &c0), (t, b, h), dir);
                let out = trace.output((t, b, h)).concat();
                let grad = [&d_hidden[..], &c0];
                (out, trace.backward(&inputs, grad, (t, b, h)))
            };
            let (out, g) = run(LayerInput::Tokens(&ids));
            let (want, w) = run(LayerInput::Features(&onehot));
            assert!(close(&out, &want), "{cell:?} {dir:?} outputs");
            assert!(g.x.is_empty(), "tokens have no gradient");
            for (name, a, b) in [
                ("w_ih", &g.w_ih, &w.w_ih),
                ("b_ih", &g.b_ih, &w.b_ih),
                ("w_hh", &g.w_hh, &w.w_hh),
                ("b_hh", &g.b_hh, &w.b_hh),
                ("h0", &g.h0, &w.h0),
                ("c0", &g.c0, &w.c0),
            ] {
                assert!(close(a, b), "{cell:?} {dir:?} {name}");
            }
        }
    }
}

#[test]
fn concat_padded_joins_the_parts_then_zeros() {
    // Several copy blocks (copied on the pool's threads), and one.
    for n in [3 * COPY_BLOCK + 5, 7] {
        let (a, b) = (values(n, 1), values(n / 2 + 1, 2));
        let out = concat_padded(&[&a, &b], 2 * n);
        assert_eq!(&out[..n], &a[..]);
        assert_eq!(&out[n..][..b.len()], &b[..]);
        assert!(out[n + b.len()..].iter().all(|v| *v == 0.0));
        assert_eq!(out.len(), 2 * n);
    }
}

#[test]
fn transpose_swaps_rows_and_columns() {
    for (rows, cols) in [(1, 1), (3, 5), (33, 70), (64, 32)] {
        let m = values(rows * cols, 3);
        let t = transpose(&m, cols);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], m[r * cols + c]);
            }
        }
    }
}

#[test]
fn weight_gradients_joined_or_apart_agree() {
    let (t, b, i, h) = (3, 5, 7, 6);
    let args = layer((t, b, i, h), 4);
    let (d, h_prev) = (values(t * b * 4 * h, 9), values(t * b * h, 4));
    let initial = || (Vec::new(), Vec::new());
    let grads = |joined| {
        let d = (&d[..], Vec::new());
        LayerGrads::shared_with(&inputs(&args), d, &h_prev, initial(), joined)
    };
    let (one, two) = (grads(true), grads(false));
    for (a, b) in [(&one.w_ih, &two.w_ih), (&one.w_hh, &two.w_hh)] {
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5));
    }
    // dW_hh = d^T h_prev, entry (0, 0) by hand.
    let want: f32 = (0..t * b).map(|r| d[r * 4 * h] * h_prev[r * h]).sum();
    assert!((one.w_hh[0] - want).abs() < 1e-5);
}

#[test]
fn splitting_the_batch_between_threads_changes_nothing() {
    // Large enough to split for every cell (T B H G*H >= MIN_PARALLEL_WORK), B not a multiple
    // of the parts.
    let (t, b, i, h) = (4, 13, 5, 160);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            assert_eq!(row_parts(b, t * b * h * h).len(), threads);
            let h0 = values(b * h, 11);
            let mut all = Vec::new();
            for dir in DIRECTIONS {
                let args = layer((t, b, i, h), 4);
                let trace = lstm_sequence_forward(&inputs(&args), &h0, &h0, (t, b, h), dir);
                all.extend([trace.hidden.clone(), trace.cell.clone()]);
                let d_hidden = values(t * b * h, 9);
                let g = lstm_sequence_backward(trace, &inputs(&args), &d_hidden, &h0, (t, b, h));
                all.extend([g.x, g.w_ih, g.b_ih, g.w_hh, g.b_hh, g.h0, g.c0]);
                for cell in [SingleStateCell::Gru, SingleStateCell::RnnTanh] {
                    let args = layer((t, b, i, h), cell.gates());
                    let trace = single_state_forward(cell, &inputs(&args), &h0, (t, b, h), dir);
                    all.push(trace.hidden.clone());
                    let g =
                        single_state_backward(cell, trace, &inputs(&args), &d_hidden, (t, b, h));
                    all.extend([g.x, g.w_ih, g.b_ih, g.w_hh, g.b_hh, g.h0]);
                }
            }
            all
        })
    };
    // Each row's arithmetic is the same whichever thread runs it: equal bit for bit.
    assert_eq!(run(1), run(3));
}
