"""PyTorch twin of `cargo run --release --example char_lm` (the neural rows).

Same data (datasets/text/shakespeare.txt, vocabulary sorted by frequency with <unk> = 0, 90/10
split by position), same model (embedding 32 -> one recurrent layer -> linear), the same widths
(each cell's hidden size chosen so its parameter count is nearest the LSTM-128 budget), the same
truncated-BPTT data layout (32 parallel streams, 64-step blocks, offset seed % 64, state carried
and detached, reset each epoch), Adam(lr 2e-3, PyTorch defaults), clip_grad_norm_(1.0), 3 epochs,
and the same validation (sequential streams, state carried, cross-entropy averaged over tokens).

    python3 examples/torch/char_lm.py [--epochs 3] [--seed 42] [--quick] [--out runs/examples/char_lm_torch]

Writes char_lm_torch.csv / .md: model, hidden, parameters, validation perplexity, bits per char.
"""
import argparse
import collections
import math
import os
import time

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_vocab(text):
    counts = collections.Counter(text)
    tokens = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {t: i + 1 for i, (t, _) in enumerate(tokens)}  # 0 is <unk>


def stream_blocks(ids, batch, steps, offset):
    per_stream = (len(ids) - offset - 1) // batch
    count = per_stream // steps
    src = torch.tensor(ids[offset:], dtype=torch.long)
    blocks = []
    for j in range(count):
        rows_x, rows_y = [], []
        for b in range(batch):
            s = b * per_stream + j * steps
            rows_x.append(src[s:s + steps])
            rows_y.append(src[s + 1:s + steps + 1])
        blocks.append((torch.stack(rows_x), torch.stack(rows_y)))
    return blocks


class CharLm(nn.Module):
    def __init__(self, cell, vocab, embedding, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(embedding, hidden, batch_first=True)
        self.output = nn.Linear(hidden, vocab)

    def forward(self, x, state):
        h, state = self.rnn(self.embedding(x), state)
        return self.output(h), state


def detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def width_for(cell, budget, vocab, embedding, upper):
    count = lambda h: n_params(CharLm(cell, vocab, embedding, h))
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid + 1
        else:
            hi = mid
    if lo > 1 and budget - count(lo - 1) < count(lo) - budget:
        return lo - 1
    return lo


def evaluate(model, ids, batch, steps, offset):
    steps = min(steps, len(ids) - 1)
    streams = max(1, min(batch, (len(ids) - 1) // steps))
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for x, y in stream_blocks(ids, streams, steps, offset):
            logits, state = model(x, state)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total += loss.item() * y.numel()
            count += y.numel()
    return total / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs/examples/char_lm_torch"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    text = open(os.path.join(ROOT, "datasets/text/shakespeare.txt"), encoding="utf-8").read()
    if args.quick:
        text = text[:60_000]
    vocab = build_vocab(text)
    ids = [vocab.get(c, 0) for c in text]
    n_valid = round(len(ids) * 0.1)
    train, valid = ids[: len(ids) - n_valid], ids[len(ids) - n_valid:]
    batch, steps, embedding = 32, 64, 32
    lstm_hidden = 32 if args.quick else 128
    offset = args.seed % steps
    V = len(vocab) + 1
    budget = n_params(CharLm("lstm", V, embedding, lstm_hidden))
    rows = []
    blocks = stream_blocks(train, batch, steps, offset)
    for cell in ["rnn", "gru", "lstm"]:
        hidden = width_for(cell, budget, V, embedding, 4 * lstm_hidden)
        torch.manual_seed(args.seed)
        model = CharLm(cell, V, embedding, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        start = time.time()
        for epoch in range(args.epochs):
            state = None
            model.train()
            for x, y in blocks:
                logits, state = model(x, state)
                state = detach(state)
                loss = nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            model.eval()
            valid_loss = evaluate(model, valid, batch, steps, offset)
            print(f"{cell} epoch {epoch + 1}: valid loss {valid_loss:.4f} ({time.time() - start:.0f} s)", flush=True)
        rows.append((cell, hidden, n_params(model), math.exp(valid_loss), valid_loss / math.log(2)))
    os.makedirs(args.out, exist_ok=True)
    header = ["model", "hidden", "parameters", "validation perplexity", "bits per char"]
    with open(os.path.join(args.out, "char_lm_torch.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]},{r[3]:.4f},{r[4]:.4f}\n")
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.4f} | {r[4]:.4f} |\n" for r in rows)
    open(os.path.join(args.out, "char_lm_torch.md"), "w").write(md)
    print(md)


if __name__ == "__main__":
    main()
