#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for sequent's recurrent-layer parity tests.

For each configuration this writes, under crates/models/tests/fixtures/:
  <name>.weights.safetensors  the layer's state_dict exactly as PyTorch names and lays it out
  <name>.weights.pt           the same, written by torch.save with its default (zip) container,
                              one case per cell kind (PT_CASES)
  <name>.weights.legacy.pt    the same in torch.save's older pickle container (LEGACY_PT_CASES)
  <name>.data.safetensors     input x, optional h0/c0 and lengths, probes (R, S, U), the expected
                              output/h_n/c_n, and gradients of
                              loss = sum(out * R) + sum(h_n * S) [+ sum(c_n * U)]
                              with respect to x, h0, c0 and every weight.
and one manifest.json listing the configurations.

References are computed in float64 and stored as float32. GRU with reset_after = false (Cho et al.
v3, d2l), the layer-normalised LSTM and GRU (Ba et al. 2016, as haste's LayerNormLSTM) and the LSTM
with zoneout in evaluation (Krueger et al. 2016) have no PyTorch layer, so they are written out
below in plain torch ops and autograd. Their layer norms are named as nn.LayerNorm modules
layer_norm_{ih,hh,c}_l{k}[_reverse] would be.

Run: python3 scripts/gen_parity_fixtures.py   (needs torch and safetensors)
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "models", "tests", "fixtures")
B, T, I, H = 3, 5, 4, 6
P = 3  # proj_size of the projected LSTM cases (mode "lstm_proj")
LENGTHS = [5, 2, 4]
# lstm_l2_bi_h0.weights.pt has the 21-character stem that zip 9.8.2 misreads (torch_zip.rs).
PT_CASES = {"lstm_l2_bi_h0", "gru_l1_uni", "rnn_tanh_l1_uni", "rnn_relu_l1_uni"}
LEGACY_PT_CASES = {"lstm_l2_bi_h0"}


def gru_v3(x, h0, params, layers, bidir, lengths):
    """GRU with the reset gate applied before the recurrent product:
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn), time-major loop, packed-sequence semantics."""
    dirs = 2 if bidir else 1
    batch, steps, _ = x.shape
    lens = torch.tensor(lengths if lengths is not None else [steps] * batch)
    inp = x
    h_n = []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b_ih = params.get("bias_ih" + sfx, torch.zeros(3 * H, dtype=x.dtype))
            b_hh = params.get("bias_hh" + sfx, torch.zeros(3 * H, dtype=x.dtype))
            h = h0[layer * dirs + d] if h0 is not None else torch.zeros(batch, H, dtype=x.dtype)
            out = [None] * steps
            order = range(steps) if d == 0 else range(steps - 1, -1, -1)
            for t in order:
                xp = inp[:, t] @ w_ih.T + b_ih
                xr, xz, xn = xp.chunk(3, 1)
                hr = h @ w_hh[: H].T + b_hh[: H]
                hz = h @ w_hh[H: 2 * H].T + b_hh[H: 2 * H]
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                n = torch.tanh(xn + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
                h_new = (1 - z) * n + z * h
                valid = (t < lens).to(x.dtype).unsqueeze(1)
                h = valid * h_new + (1 - valid) * h
                out[t] = valid * h_new
            outs.append(torch.stack(out, 1))
            h_n.append(h)
        inp = torch.cat(outs, 2)
    return inp, torch.stack(h_n, 0)


ZONEOUT = 0.3  # zoneout probability of the "lstm_zoneout" cases (evaluation: the expectation)
MANUAL = ("gru_v3", "lstm_ln", "gru_ln", "lstm_zoneout")  # written out in torch ops


def layer_norm_params(params, layers, bidir, lstm):
    """Gains near 1 and biases near 0 for every layer norm of a layer-normalised stack."""
    for layer in range(layers):
        for d in range(2 if bidir else 1):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            for part, width in [("ih", (4 if lstm else 3) * H), ("hh", (4 if lstm else 3) * H)] + \
                    ([("c", H)] if lstm else []):
                params[f"layer_norm_{part}{sfx}.weight"] = \
                    (1 + 0.2 * torch.randn(width, dtype=torch.float64)).requires_grad_(True)
                params[f"layer_norm_{part}{sfx}.bias"] = \
                    (0.2 * torch.randn(width, dtype=torch.float64)).requires_grad_(True)


def manual_stack(mode, x, h0, c0, params, layers, bidir, lengths):
    """LSTM ("lstm_ln", "lstm_zoneout") or GRU ("gru_ln") with reset_after, time-major loop,
    packed-sequence semantics:
      x_proj = LN_ih(W_ih x) + b_ih,  h_proj = LN_hh(W_hh h) + b_hh   (LN only in *_ln)
      LSTM: c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(LN_c(c'))
      zoneout in evaluation: c' <- p c + (1 - p) c',  h' <- p h + (1 - p) h'."""
    lstm = mode.startswith("lstm")
    normed = mode.endswith("_ln")
    zoneout = ZONEOUT if mode == "lstm_zoneout" else 0.0
    dirs = 2 if bidir else 1
    batch, steps, _ = x.shape
    lens = torch.tensor(lengths if lengths is not None else [steps] * batch)
    inp = x
    h_n, c_n = [], []
    for layer in range(layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
            w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b_ih = params.get("bias_ih" + sfx, 0.0)
            b_hh = params.get("bias_hh" + sfx, 0.0)

            def ln(part, v):
                if not normed:
                    return v
                name = f"layer_norm_{part}{sfx}"
                return torch.nn.functional.layer_norm(v, v.shape[-1:], params[name + ".weight"],
                                                      params[name + ".bias"], 1e-5)

            k = layer * dirs + d
            h = h0[k] if h0 is not None else torch.zeros(batch, H, dtype=x.dtype)
            c = c0[k] if c0 is not None else torch.zeros(batch, H, dtype=x.dtype)
            out = [None] * steps
            order = range(steps) if d == 0 else range(steps - 1, -1, -1)
            for t in order:
                xp = ln("ih", inp[:, t] @ w_ih.T) + b_ih
                hp = ln("hh", h @ w_hh.T) + b_hh
                if lstm:
                    i, f, g, o = (xp + hp).chunk(4, 1)
                    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h_new = torch.sigmoid(o) * torch.tanh(ln("c", c_new))
                    c_new = zoneout * c + (1 - zoneout) * c_new
                    h_new = zoneout * h + (1 - zoneout) * h_new
                else:
                    xr, xz, xn = xp.chunk(3, 1)
                    hr, hz, hn = hp.chunk(3, 1)
                    r = torch.sigmoid(xr + hr)
                    z = torch.sigmoid(xz + hz)
                    n = torch.tanh(xn + r * hn)
                    h_new = (1 - z) * n + z * h
                    c_new = c
                valid = (t < lens).to(x.dtype).unsqueeze(1)
                h = valid * h_new + (1 - valid) * h
                c = valid * c_new + (1 - valid) * c
                out[t] = valid * h_new
            outs.append(torch.stack(out, 1))
            h_n.append(h)
            c_n.append(c)
        inp = torch.cat(outs, 2)
    return inp, torch.stack(h_n, 0), (torch.stack(c_n, 0) if lstm else None)


def run_case(name, mode, layers, bidir, with_h0, with_lengths, bias, seed):
    torch.manual_seed(seed)
    dirs = 2 if bidir else 1
    proj = P if mode == "lstm_proj" else 0
    kw = dict(input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidir, bias=bias,
              batch_first=True)
    if mode in ("rnn_tanh", "rnn_relu"):
        layer = torch.nn.RNN(nonlinearity=mode[4:], **kw)
    elif mode.startswith("lstm"):
        layer = torch.nn.LSTM(proj_size=proj, **kw)
    else:  # the GRUs share PyTorch's parameter layout
        layer = torch.nn.GRU(**kw)
    layer = layer.double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in layer.state_dict().items()}
    if mode.endswith("_ln"):
        layer_norm_params(params, layers, bidir, mode.startswith("lstm"))
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    lstm = mode.startswith("lstm")
    h0 = (torch.randn(layers * dirs, B, proj or H, dtype=torch.float64, requires_grad=True)
          if with_h0 else None)
    c0 = (torch.randn(layers * dirs, B, H, dtype=torch.float64, requires_grad=True)
          if with_h0 and lstm else None)
    lengths = LENGTHS if with_lengths else None

    if mode == "gru_v3":
        out, h_n = gru_v3(x, h0, params, layers, bidir, lengths)
        c_n = None
    elif mode in MANUAL:
        out, h_n, c_n = manual_stack(mode, x, h0, c0, params, layers, bidir, lengths)
    else:
        inp = x
        if lengths is not None:
            inp = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                                          enforce_sorted=False)
        state = (h0, c0) if lstm and h0 is not None else h0
        out, st = torch.func.functional_call(layer, params, (inp, state))
        if lengths is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        h_n, c_n = st if lstm else (st, None)

    R = torch.randn_like(out)
    S = torch.randn_like(h_n)
    loss = (out * R).sum() + (h_n * S).sum()
    data = {"x": x, "out": out, "h_n": h_n, "R": R, "S": S}
    if c_n is not None:
        U = torch.randn_like(c_n)
        loss = loss + (c_n * U).sum()
        data.update({"c_n": c_n, "U": U})
    wrt = {"x": x, **{k: v for k, v in params.items()}}
    if h0 is not None:
        wrt["h0"] = h0
        data["h0"] = h0
    if c0 is not None:
        wrt["c0"] = c0
        data["c0"] = c0
    grads = torch.autograd.grad(loss, list(wrt.values()))
    for k, g in zip(wrt.keys(), grads):
        data["grad." + k] = g
    if lengths is not None:
        data["lengths"] = torch.tensor(lengths, dtype=torch.int64)

    f32 = {k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
           for k, v in data.items()}
    save_file(f32, os.path.join(OUT, name + ".data.safetensors"))
    weights = {k: v.detach().float().contiguous() for k, v in params.items()}
    save_file(weights, os.path.join(OUT, name + ".weights.safetensors"))
    if name in PT_CASES:  # the same weights as torch.save writes them, for the .pt reader
        torch.save(weights, os.path.join(OUT, name + ".weights.pt"))
    if name in LEGACY_PT_CASES:
        torch.save(weights, os.path.join(OUT, name + ".weights.legacy.pt"),
                   _use_new_zipfile_serialization=False)
    return {"name": name, "mode": mode, "input_size": I, "hidden_size": H, "num_layers": layers,
            "bidirectional": bidir, "bias": bias, "initial_state": with_h0,
            "lengths": lengths is not None, "proj_size": proj, "layer_norm": mode.endswith("_ln"),
            "zoneout": ZONEOUT if mode == "lstm_zoneout" else 0.0}


def main():
    os.makedirs(OUT, exist_ok=True)
    variants = [  # (layers, bidirectional, initial state, lengths, bias)
        (1, False, False, False, True),
        (2, True, True, False, True),
        (3, False, True, True, True),
        (2, True, False, True, True),
        (1, True, True, True, False),
    ]
    cases = []
    seed = 0
    for mode in ("rnn_tanh", "rnn_relu", "lstm", "gru", "gru_v3"):
        for layers, bidir, h0, lens, bias in variants:
            seed += 1
            name = f"{mode}_l{layers}_{'bi' if bidir else 'uni'}{'_h0' if h0 else ''}" \
                   f"{'_len' if lens else ''}{'' if bias else '_nobias'}"
            cases.append(run_case(name, mode, layers, bidir, h0, lens, bias, seed))
    # LSTM with a projection: uni- and bidirectional, 1 to 3 layers, initial state, lengths.
    for layers, bidir, h0, lens, bias in variants[:4]:
        seed += 1
        name = f"lstm_proj_l{layers}_{'bi' if bidir else 'uni'}{'_h0' if h0 else ''}" \
               f"{'_len' if lens else ''}"
        cases.append(run_case(name, "lstm_proj", layers, bidir, h0, lens, bias, seed))
    # Layer-normalised LSTM and GRU, and the LSTM with zoneout in evaluation.
    for mode, chosen in [("lstm_ln", variants[:4]), ("gru_ln", variants[:4]),
                         ("lstm_zoneout", [variants[0], variants[2]])]:
        for layers, bidir, h0, lens, bias in chosen:
            seed += 1
            name = f"{mode}_l{layers}_{'bi' if bidir else 'uni'}{'_h0' if h0 else ''}" \
                   f"{'_len' if lens else ''}"
            cases.append(run_case(name, mode, layers, bidir, h0, lens, bias, seed))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"generator": "scripts/gen_parity_fixtures.py", "torch": torch.__version__,
                   "batch": B, "steps": T, "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
