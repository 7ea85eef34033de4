"""Writes the measured table of docs/performance.md from `sequent bench --json` (no figure typed by
hand).

    cargo build --release
    python3 scripts/write_performance.py              # runs the benchmarks below, then the table
    python3 scripts/write_performance.py --saved      # the table again from runs/bench/*.jsonl
    python3 scripts/write_performance.py --only options,options_norm,options_proj
                                                      # runs those, then the tables

Each benchmark runs `target/release/sequent bench --json` with the arguments listed in BENCHES
(and `--with-torch` where `python3 -c "import torch"` works), saves its output in
runs/bench/NAME.jsonl, and the tables between the `bench:begin` and `bench:end` markers and
between the `options:begin` and `options:end` markers of docs/performance.md are replaced (a
table whose benchmarks have no saved runs is left as it is). A ratio is the median over the rounds of each round's ratio
(every round measures every implementation side by side), with the rounds' range in brackets;
tokens/s are medians over the rounds. Run it on a quiet machine: nothing else should compete for
the cores.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, "runs/bench")
PAGE = os.path.join(ROOT, "docs/performance.md")
BEGIN = "<!-- bench:begin (scripts/write_performance.py writes this part) -->"
END = "<!-- bench:end -->"
OPTIONS_BEGIN = "<!-- options:begin (scripts/write_performance.py writes this part) -->"
OPTIONS_END = "<!-- options:end -->"
KINDS = ["lstm", "gru", "rnn"]
# The options the host engine's whole-sequence op runs (the others run the composed path).
FUSED_OPTIONS = ("input-dropout", "weight-drop", "recurrent-dropout", "zoneout", "layer-norm", "proj")

# (name, what it measures, `sequent bench` arguments). The reference shape: 2 layers x 256,
# B = 32, T = 35, V = 64 (the bench's defaults).
BENCHES = [
    ("train", "training, the layers alone", ["--no-fold", "--repeat", "5", "--steps", "20"]),
    ("folded", "training as `LanguageModel` runs it (embedding folded)",
     ["--repeat", "5", "--steps", "20"]),
    ("bidirectional", "training, bidirectional",
     ["--bidirectional", "--repeat", "3", "--steps", "10"]),
    ("long", "training, T = 350", ["--seq", "350", "--no-fold", "--repeat", "3", "--steps", "5"]),
    ("wide", "training, hidden 1024",
     ["--hidden", "1024", "--gemm", "--no-fold", "--repeat", "3", "--steps", "5"]),
    ("infer_stream", "", ["--mode", "infer,stream", "--repeat", "3", "--steps", "10"]),
]

# The options beyond PyTorch's, each timed against the plain layer in the same rounds (training
# as `LanguageModel` runs it), in three runs because each `--option` must fit every `--kind`.
OPTIONS = ["input-dropout", "weight-drop", "recurrent-dropout", "zoneout", "layer-norm", "proj"]
OPTION_BENCHES = [
    ("options", "", ["--option", "input-dropout,weight-drop,recurrent-dropout,zoneout",
                     "--repeat", "5", "--steps", "10"]),
    ("options_norm", "", ["--kind", "lstm,gru", "--option", "layer-norm", "--repeat", "7",
                          "--steps", "10"]),
    ("options_proj", "", ["--kind", "lstm", "--option", "proj", "--repeat", "3", "--steps", "10"]),
]


def torch_version():
    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (subprocess.CalledProcessError, OSError):
        return None


def machine():
    cpu = "unknown CPU"
    flags = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    simd = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return f"{cpu} ({simd}), {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def burn_version():
    lock = open(os.path.join(ROOT, "Cargo.lock")).read().split("[[package]]")
    for block in lock:
        if 'name = "burn"\n' in block:
            return block.split('version = "', 1)[1].split('"', 1)[0]
    return "unknown"


def run_benches(with_torch, only):
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                          "release/sequent")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")
    os.makedirs(RUNS, exist_ok=True)
    for name, _, args in BENCHES + OPTION_BENCHES:
        if only and name not in only:
            continue
        torch = with_torch and (name, "", args) in BENCHES
        command = [binary, "bench", "--json", *args] + (["--with-torch"] if torch else [])
        print("running", " ".join(command[1:]), flush=True)
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(f"`{' '.join(command)}` failed:\n{out.stderr}")
        with open(os.path.join(RUNS, f"{name}.jsonl"), "w") as f:
            f.write(out.stdout)


def load(name):
    with open(os.path.join(RUNS, f"{name}.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def ratio(a, b):
    """Median of the rounds' ratios a / b, with their range."""
    runs_a, runs_b = a.get("runs", [a["tokens_per_s"]]), b.get("runs", [b["tokens_per_s"]])
    rs = [x / y for x, y in zip(runs_a, runs_b)]
    text = f"{statistics.median(rs):.2f}x"
    return text + (f" ({min(rs):.2f}-{max(rs):.2f}x)" if len(rs) > 1 else "")


def rows_of(lines, title, args, mode):
    found = {}
    for m in lines:
        if "tokens_per_s" in m and m["mode"] == mode:
            impl = "torch" if m["impl"].startswith("torch") else m["impl"]
            found[(m["kind"], impl)] = m
    command = f"`{' '.join(args)}`"
    rows = []
    for other, label in [("burn-nn", "sequent / `burn::nn`"), ("torch", "sequent / PyTorch")]:
        if all((k, other) in found for k in KINDS):
            cells = [ratio(found[(k, "sequent")], found[(k, other)]) for k in KINDS]
            rows.append([f"{title}: {label}", command] + cells)
    rows.append([f"{title}: sequent tokens/s", command]
                + [f"{found[(k, 'sequent')]['tokens_per_s']:.0f}" for k in KINDS])
    shares = {(m["kind"], m["impl"]): m["share_of_gemm"] for m in lines if "share_of_gemm" in m}
    if shares:
        rows.append([f"{title}: sequent's share of the machine's GEMM rate", command]
                    + [f"{100 * shares[(k, 'sequent')]:.0f}%" for k in KINDS])
    return rows


def table():
    rows, torch = [], None
    for name, title, args in BENCHES:
        lines = load(name)
        torch = torch or next((m["impl"][len("torch-"):] for m in lines
                               if m.get("impl", "").startswith("torch-")), None)
        if name == "infer_stream":
            rows += rows_of(lines, "inference", args, "infer")
            rows += rows_of(lines, "batch-1 streaming generation", args, "stream")
        else:
            rows += rows_of(lines, title, args, "train")
    when = datetime.date.fromtimestamp(os.path.getmtime(os.path.join(RUNS, "train.jsonl")))
    head = (f"Measured {when.isoformat()} on {machine()}; Burn {burn_version()}, flex; "
            + (f"PyTorch {torch} on the same workloads in the same runs."
               if torch else "PyTorch was not installed for this run, so it has no PyTorch rows."))
    out = [head, "", "| workload | `sequent bench` arguments | LSTM | GRU | tanh RNN |",
           "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def options_table():
    """Each option's training step against the plain layer's (`sequent / +option`: the time the
    option's step takes, relative), per cell; a dash where the option does not apply."""
    cells, when = {}, None
    for name, _, args in OPTION_BENCHES:
        when = max(when or 0, os.path.getmtime(os.path.join(RUNS, f"{name}.jsonl")))
        lines = load(name)
        plain = {m["kind"]: m for m in lines if m["impl"] == "sequent"}
        for m in lines:
            if m["impl"].startswith("sequent+"):
                option = m["impl"][len("sequent+"):]
                cells[(option, m["kind"])] = (ratio(plain[m["kind"]], m), " ".join(args))
    out = [f"Measured {datetime.date.fromtimestamp(when).isoformat()} on {machine()}; Burn "
           f"{burn_version()}, flex; `sequent bench --option` at the reference shape, each option "
           "against the plain layer in the same rounds.", "",
           "| option | path | `sequent bench` arguments | LSTM | GRU | tanh RNN |",
           "|---|---|---|---|---|---|"]
    for option in OPTIONS:
        row = [cells.get((option, kind)) for kind in KINDS]
        command = next(c[1] for c in row if c)
        path = "fused" if option in FUSED_OPTIONS else "composed"
        ratios = [c[0] if c else "-" for c in row]
        out.append(f"| `{option}` | {path} | `{command}` | " + " | ".join(ratios) + " |")
    return "\n".join(out)


def replace_block(page, begin, end, text):
    if begin not in page or end not in page:
        sys.exit(f"{PAGE} has no {begin} ... {end} block")
    before, rest = page.split(begin, 1)
    _, after = rest.split(end, 1)
    return before + begin + "\n" + text + "\n" + end + after


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved", action="store_true",
                        help="write the tables from runs/bench/*.jsonl without running anything")
    parser.add_argument("--only", default="",
                        help="comma-separated benchmark names to run (the others are read back)")
    args = parser.parse_args()
    if not args.saved:
        only = set(filter(None, args.only.split(",")))
        run_benches(torch_version() is not None, only)
    page = open(PAGE).read()
    blocks = [(BEGIN, END, BENCHES, table), (OPTIONS_BEGIN, OPTIONS_END, OPTION_BENCHES,
                                              options_table)]
    for begin, end, benches, write in blocks:
        missing = [name for name, _, _ in benches
                   if not os.path.exists(os.path.join(RUNS, f"{name}.jsonl"))]
        if missing:
            print(f"left as it is: {begin} (no saved runs of {', '.join(missing)})")
        else:
            page = replace_block(page, begin, end, write())
    with open(PAGE, "w") as f:
        f.write(page)
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
