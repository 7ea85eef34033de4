"""Collects the full runs of the examples into docs/results.md (no figure typed by hand).

Run every example without --quick first (their tables land in runs/examples/NAME/NAME.md), and
`python3 examples/torch/char_lm.py` for the PyTorch column, then:

    python3 scripts/write_results.py

Copies each example's plots to docs/results/ and compares sequent's and PyTorch's validation
perplexities for the neural char-LMs. `--only NAME` rewrites that example's section (and its
README line) from its run and keeps the other sections as they are.
"""
import argparse
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
    ("long_dependencies", "Adding and copy-memory tasks against the memoryless baseline",
     ["curves_adding_50.svg", "curves_adding_100.svg", "curves_adding_200.svg",
      "curves_copy_100.svg", "curves_copy_200.svg", "input_gradients.svg"]),
    ("births_forecast", "US daily births 1969-1988, last 730 days held out", ["forecast.svg", "horizons.svg"]),
    ("regularisation", "Regularisation inside the recurrence, 3 x 512 LSTM char-LM on Shakespeare",
     ["valid_loss.svg", "train_loss.svg"]),
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[e[0] for e in EXAMPLES],
                        help="rewrite this example's section only")
    only = parser.parse_args().only
    header = ["# Results of the example scripts", "",
              "Produced by `scripts/write_results.py` from the runs' own tables; no figure is typed in by hand.",
              f"Machine: {machine()}; device `flex` (CPU).", ""]
    os.makedirs(os.path.join(DOCS, "results"), exist_ok=True)
    if only is None:
        sections = [section(e) for e in EXAMPLES]
    else:
        kept = existing_sections()
        header = kept.pop("", header)
        title_line = next(line for line in header if line.startswith("Machine: "))
        sections = []
        for e in EXAMPLES:
            if e[0] != only:
                sections.append(kept[e[0]] if e[0] in kept else section(e))
                continue
            new = section(e)
            if title_line != f"Machine: {machine()}; device `flex` (CPU).":
                new[4:4] = [f"This section: {machine()}; device `flex` (CPU).", ""]
            sections.append(new)
    out = header + [line for s in sections for line in s]
    open(os.path.join(DOCS, "results.md"), "w").write("\n".join(out).rstrip("\n") + "\n")
    print("wrote docs/results.md")
    update_readme(only)


def existing_sections():
    """docs/results.md split into its header (key "") and one list of lines per example."""
    sections, key = {"": []}, ""
    for line in open(os.path.join(DOCS, "results.md")).read().rstrip("\n").split("\n"):
        if line.startswith("## ") and ":" in line:
            key = line[3:].split(":", 1)[0]
            sections[key] = []
        sections[key].append(line)
    for lines in sections.values():
        while lines and lines[-1] == "":
            lines.pop()
        lines.append("")
    return sections


def section(example):
    """The lines of one example's section, from its run."""
    name, title, plots = example
    table = os.path.join(RUNS, name, f"{name}.md")
    out = [f"## {name}: {title}", "", f"`cargo run --release --example {name}`", ""]
    if not os.path.exists(table):
        return out + ["(not run yet)", ""]
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
    if name == "births_forecast":
        out += [reading_births(), ""]
    if name == "regularisation":
        out += [reading_regularisation(), ""]
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
    return out


def median(cell):
    """The median of a "median [smallest, largest]" cell (or a single value)."""
    return float(cell.split(" ")[0])


def reading_long_dependencies():
    """The lecture's targets against the medians of the seeds, and the run's budget."""
    r = rows("long_dependencies")
    main = lambda x: x["settings"] in ("tanh, PyTorch init",) or x["settings"].startswith("chrono")
    lines = ["Targets (median over the seeds of error / memoryless; cells with the settings above, not the",
             "ablation):", ""]
    for x in r:
        if not main(x):
            continue
        task, t, cell, ratio = x["task"], int(x["T"]), x["cell"], median(x["error / memoryless"])
        if task == "adding":
            target = "above 0.9" if cell == "rnn" else "below 0.1"
            met = ratio > 0.9 if cell == "rnn" else ratio < 0.1
        elif t <= 100 and cell != "rnn":
            target, met = ("below 0.5", ratio < 0.5) if t == 100 else (None, None)
        else:
            target, met = None, None
        if target is None and cell != "rnn":
            lines.append(f"- {task}, T = {t}, {cell}: {ratio:.3f} (no target: reported as it is)")
        if target:
            line = f"- {task}, T = {t}, {cell}: {ratio:.3f}, target {target}: {'met' if met else 'not met'}"
            if not met:
                half = float(x["at half the updates"])
                trend = "still falling at the end of the budget" if ratio < 0.9 * half else \
                    "no better than at half the updates"
                line += f" ({half:.3f} at half the updates: {trend})"
            lines.append(line)
    ran = {(x["task"], int(x["T"])) for x in r}
    missing = [f"{task}, T = {t}" for task, ts in (("adding", (50, 100, 200)), ("copy", (100, 200)))
               for t in ts if (task, t) not in ran]
    if missing:
        lines += ["", f"Not in this table (the run was stopped before them; `OUT/outcomes/` lets it continue): "
                  f"{'; '.join(missing)}."]
    seconds = sum(float(x["seconds a run"]) for x in r) * 3
    lines += ["", f"Budget: every run's updates and examples are in the table; the runs' wall times add up to "
              f"about {seconds / 3600:.1f} hours on this machine (3 seeds a row)."]
    return "\n".join(lines)


def reading_births():
    """Which models beat the seasonal-naive forecast at every horizon in every seed."""
    def worst(row, h):  # the largest ratio over the seeds: "median [low, high]" or one value
        cell = row[f"MAE / naive h={h}"]
        return float(cell.split("[")[-1].split(",")[-1].strip(" ]"))
    lines = ["MAE / naive is a model's MAE divided by the seasonal-naive forecast's at the same horizon and",
             "origins, the median [smallest, largest] over the seeds. Below the seasonal-naive MAE at h = 1, 7",
             "and 28 in every seed:", ""]
    for covariates in sorted({x["covariates"] for x in rows("births_forecast") if x["covariates"]}):
        models = [x["model"] for x in rows("births_forecast") if x["covariates"] == covariates
                  and all(worst(x, h) < 1 for h in (1, 7, 28))]
        lines.append(f"- covariates {covariates}: {'; '.join(models) if models else 'none'}")
    return "\n".join(lines)


def best_of(r, regularised):
    """The row with the lowest best validation perplexity among the (un)regularised ones."""
    pick = [x for x in r if x["regularisation"].startswith("none") != regularised]
    return min(pick, key=lambda x: float(x["best validation perplexity"]))


def reading_regularisation():
    """The best regularised configuration against the best unregularised one."""
    r = rows("regularisation")
    if not r:
        return ""
    plain, reg = best_of(r, False), best_of(r, True)
    a, b = float(plain["best validation perplexity"]), float(reg["best validation perplexity"])
    lower = 100 * (1 - b / a)
    return "\n".join([
        f"Best unregularised: {plain['regularisation']}, validation perplexity {a:.3f} at its best epoch.",
        f"Best regularised: {reg['regularisation']}, {b:.3f}: {lower:.1f}% lower "
        f"(target: at least 3% lower; {'met' if lower >= 3 else 'not met'}).",
        "Both at their best epoch of the same budget; the final epoch's perplexities are in the table.",
        "`seconds` is each run's wall time as measured, not a comparison of the options' cost: that is",
        "measured side by side in docs/performance.md."])


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
        cells = [x for x in r if x["task"] == "adding" and int(x["T"]) == t
                 and (x["settings"] == "tanh, PyTorch init" or x["settings"].startswith("chrono"))]
        return f"adding, T = {t}, error / memoryless: " + ", ".join(f"{x['cell']} {median(x['error / memoryless']):.2f}" for x in cells)
    if name == "births_forecast":
        gru = next(x for x in r if x["model"] == "gru" and x["covariates"] != "none")
        ratios = ", ".join(gru[f"MAE / naive h={h}"].split(" ")[0] for h in (1, 7, 28))
        return f"GRU with calendar covariates: MAE / seasonal naive {ratios} at 1, 7, 28 days"
    if name == "regularisation":
        plain, reg = best_of(r, False), best_of(r, True)
        a, b = float(plain["best validation perplexity"]), float(reg["best validation perplexity"])
        return f"validation perplexity {b:.3f} regularised against {a:.3f} without ({100 * (1 - b / a):.1f}% lower)"
    if name == "japanese_vowels":
        return "test accuracy " + ", ".join(f"{x['model']} {float(x['test accuracy']):.3f}" for x in r)
    return ""


def update_readme(only=None):
    path = os.path.join(ROOT, "README.md")
    text = open(path).read()
    begin, end = "<!-- examples:begin -->", "<!-- examples:end -->"
    if begin not in text:
        return
    head, rest = text.split(begin, 1)
    old, tail = rest.split(end, 1)
    kept = {line.split("--example ", 1)[1].split("`", 1)[0]: line
            for line in old.strip().split("\n") if "--example " in line}
    lines = ["| example | command | headline (full run, docs/results.md) |", "|---|---|---|"]
    for name, title, _ in EXAMPLES:
        if only is not None and name != only and name in kept:
            lines.append(kept[name])
        else:
            lines.append(f"| {title} | `cargo run --release --example {name}` | {headline(name)} |")
    open(path, "w").write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
    print("updated README.md")


if __name__ == "__main__":
    main()
