"""Collects the full runs of the examples into docs/results.md (no figure typed by hand).

Run every example without --quick first (their tables land in runs/examples/NAME/NAME.md), and
`python3 examples/torch/char_lm.py` for the PyTorch column, then:

    python3 scripts/write_results.py

Copies each example's plots to docs/results/ and compares sequent's and PyTorch's validation
perplexities for the neural char-LMs.
"""
import csv
import os
import platform
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, "runs/examples")
DOCS = os.path.join(ROOT, "docs")

EXAMPLES = [
    ("sine_forecast", "d2l's sine: one-step and k-step-ahead MSE (noise floor 0.04)", ["k_step.svg"]),
    ("char_lm", "Character-level language models on Shakespeare (90/10 split by position)", ["valid_loss.svg"]),
    ("long_dependencies", "Adding and copy-memory tasks against the memoryless baseline", ["input_gradients.svg"]),
    ("births_forecast", "US daily births 1969-1988, last 730 days held out", ["forecast.svg"]),
    ("japanese_vowels", "Speaker classification, Japanese Vowels (test set of 370)", ["loss.svg"]),
]


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    out = ["# Results of the example scripts", "",
           "Produced by `scripts/write_results.py` from the runs' own tables; no figure is typed in by hand.",
           f"Machine: {machine()}; device `flex` (CPU).", ""]
    os.makedirs(os.path.join(DOCS, "results"), exist_ok=True)
    for name, title, plots in EXAMPLES:
        table = os.path.join(RUNS, name, f"{name}.md")
        out += [f"## {name}: {title}", "", f"`cargo run --release --example {name}`", ""]
        if not os.path.exists(table):
            out += ["(not run yet)", ""]
            continue
        out += [open(table).read().rstrip(), ""]
        for p in plots:
            src = os.path.join(RUNS, name, p)
            if os.path.exists(src):
                dst = f"{name}_{p.replace('/', '_')}"
                shutil.copy(src, os.path.join(DOCS, "results", dst))
                out.append(f"![{name} {p}](results/{dst})")
        out.append("")
        if name == "long_dependencies":
            out += [reading_long_dependencies(), ""]
        if name == "char_lm":
            torch_csv = os.path.join(RUNS, "char_lm_torch", "char_lm_torch.csv")
            ours_csv = os.path.join(RUNS, name, f"{name}.csv")
            if os.path.exists(torch_csv):
                theirs = {r["model"]: r for r in read_csv(torch_csv)}
                out += ["Same configuration in PyTorch (`python3 examples/torch/char_lm.py`), same seed count (one),",
                        "same parameter budget:", "",
                        "| cell | hidden | sequent perplexity | PyTorch perplexity | sequent / PyTorch |",
                        "|---|---|---|---|---|"]
                for r in read_csv(ours_csv):
                    t = theirs.get(r["model"])
                    if t is None:
                        continue
                    a, b = float(r["validation perplexity"]), float(t["validation perplexity"])
                    out.append(f"| {r['model']} | {r['hidden']} / {t['hidden']} | {a:.4f} | {b:.4f} | {a / b:.4f} |")
                out.append("")
            samples = os.path.join(RUNS, name, "samples.md")
            if os.path.exists(samples):
                shutil.copy(samples, os.path.join(DOCS, "results", "char_lm_samples.md"))
                out += ["Samples at temperatures 0.5 and 1.0: [results/char_lm_samples.md](results/char_lm_samples.md).", ""]
    open(os.path.join(DOCS, "results.md"), "w").write("\n".join(out) + "\n")
    print("wrote docs/results.md")
    update_readme()


def reading_long_dependencies():
    """Which cells got clearly below the memoryless error (ratio < 0.9), per task and length."""
    lines = ["Cells below 0.9 x the memoryless error (the lecture expects LSTM and GRU, not the RNN):"]
    r = rows("long_dependencies")
    for task in ["adding", "copy"]:
        for t in sorted({int(x["T"]) for x in r}):
            cells = [x["cell"] for x in r if x["task"] == task and int(x["T"]) == t
                     and float(x["error / memoryless"]) < 0.9]
            lines.append(f"- {task}, T = {t}: {', '.join(cells) if cells else 'none'}")
    return "\n".join(lines)


def rows(name):
    path = os.path.join(RUNS, name, f"{name}.csv")
    return read_csv(path) if os.path.exists(path) else []


def headline(name):
    """One sentence with the example's main figure, read from its table."""
    r = rows(name)
    if not r:
        return "not run yet"
    by = lambda key, value: next((x for x in r if x[key] == value), None)
    if name == "sine_forecast":
        ar = by("model", "ar")
        return f"AR one-step MSE {float(ar['one-step MSE']):.3f} (noise floor 0.04), 64-step {float(ar['k=64']):.3f}"
    if name == "char_lm":
        grams = [x for x in r if x["model"].endswith("gram")]
        best = min(grams, key=lambda x: float(x["validation perplexity"]))
        lstm = by("model", "lstm")
        return (f"LSTM validation perplexity {float(lstm['validation perplexity']):.2f} against "
                f"{float(best['validation perplexity']):.2f} for the best n-gram ({best['model']})")
    if name == "long_dependencies":
        t = max(int(x["T"]) for x in r)
        cells = [x for x in r if x["task"] == "adding" and int(x["T"]) == t]
        return f"adding, T = {t}, error / memoryless: " + ", ".join(f"{x['cell']} {float(x['error / memoryless']):.2f}" for x in cells)
    if name == "births_forecast":
        naive, gru = r[0], by("model", "gru")
        return f"1-day MAE: GRU {float(gru['MAE h=1']):.0f} against seasonal naive {float(naive['MAE h=1']):.0f}"
    if name == "japanese_vowels":
        return "test accuracy " + ", ".join(f"{x['model']} {float(x['test accuracy']):.3f}" for x in r)
    return ""


def update_readme():
    path = os.path.join(ROOT, "README.md")
    text = open(path).read()
    begin, end = "<!-- examples:begin -->", "<!-- examples:end -->"
    if begin not in text:
        return
    lines = ["| example | command | headline (full run, docs/results.md) |", "|---|---|---|"]
    for name, title, _ in EXAMPLES:
        lines.append(f"| {title} | `cargo run --release --example {name}` | {headline(name)} |")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    open(path, "w").write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
    print("updated README.md")


if __name__ == "__main__":
    main()
