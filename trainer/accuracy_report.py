#!/usr/bin/env python3
"""Writes the accuracy table (Markdown) and plot (PNG via gnuplot) from the
per-run JSON summaries that flexor_train --results_json writes."""
import argparse
import glob
import json
import os
import subprocess
import tempfile

ORDER = [("fp32", 0), ("binary1", 0), ("binary2_ls", 0), ("ternary", 0),
         ("flexor", 16), ("flexor", 12), ("flexor", 8), ("ternary_dst", 0)]
LABELS = {"fp32": "FP32", "binary1": "1-bit binary (BWN scale)",
          "binary2_ls": "2-bit least-squares", "ternary": "ternary (TWN)",
          "ternary_dst": "ternary (GXNOR DST)"}
ARCH_NAMES = {"lenet": "LeNet-5 style CNN", "mlp": "MLP 784-512-512-10"}


def label(run):
    if run["method"] == "flexor":
        return "FleXOR N_in=%d/N_out=%d, N_tap=%d" % (
            run["n_in"], run["n_out"], run["n_tap"])
    return LABELS.get(run["method"], run["method"])


def key(run):
    return (run["method"], run["n_in"] if run["method"] == "flexor" else 0)


def load(runs_dir):
    """One entry per (arch, method): accuracies averaged over seeds."""
    by_key = {}
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    run = json.loads(line)
                    seeds = by_key.setdefault((run["arch"], key(run)), {})
                    seeds[run["seed"]] = run
    runs = {}
    for k, seeds in by_key.items():
        items = [seeds[s] for s in sorted(seeds)]
        merged = dict(items[0])
        n = len(items)
        accs = [r["trainer_accuracy"] for r in items]
        mean = sum(accs) / n
        merged["trainer_accuracy"] = mean
        merged["trainer_accuracy_std"] = (
            (sum((a - mean) ** 2 for a in accs) / (n - 1)) ** 0.5 if n > 1
            else 0.0)
        merged["engine_accuracy"] = sum(
            r["engine_accuracy"] for r in items) / n
        merged["agreement"] = min(r["agreement"] for r in items)
        merged["seeds"] = [r["seed"] for r in items]
        merged["per_seed"] = accs
        runs[k] = merged
    return runs


def fmt_acc(r):
    if len(r["seeds"]) == 1:
        return "%.2f" % r["trainer_accuracy"]
    return "%.2f ± %.2f (%s)" % (r["trainer_accuracy"],
                                 r["trainer_accuracy_std"],
                                 ", ".join("%.2f" % a for a in r["per_seed"]))


def table(runs):
    out = []
    for arch in ["lenet", "mlp"]:
        rows = [runs[(arch, k)] for k in ORDER if (arch, k) in runs]
        if not rows:
            continue
        fp32 = runs.get((arch, ("fp32", 0)))
        out.append("### %s\n" % ARCH_NAMES.get(arch, arch))
        seeds = sorted({s for r in rows for s in r["seeds"]})
        out.append("Seeds: %s (accuracy = mean ± sample std, per-seed values "
                   "in brackets, when more than one).\n" %
                   ", ".join(map(str, seeds)))
        out.append("| Method | bits / quantized weight | test accuracy "
                   "(trainer) | test accuracy (engine) | prediction agreement "
                   "(worst seed) | model file KiB | x smaller than FP32 file |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            ratio = (fp32["file_bytes"] / r["file_bytes"]) if fp32 else 0
            out.append("| %s | %.2f | %s | %.2f | %.2f%% | %.1f | %.1f |" % (
                label(r), r["bits_per_weight"], fmt_acc(r),
                r["engine_accuracy"], r["agreement"], r["file_bytes"] / 1024.0,
                ratio))
        out.append("")
        one_bit = runs.get((arch, ("binary1", 0)))
        for n_in, bar, name in [(16, -0.3, "0.8"), (12, -1.0, "0.6")]:
            fx = runs.get((arch, ("flexor", n_in)))
            if one_bit and fx:
                diff = fx["trainer_accuracy"] - one_bit["trainer_accuracy"]
                ok = diff >= bar
                out.append("- FleXOR %s bit vs 1-bit: %+.2f points (bar: >= "
                           "%.1f) -> %s" % (name, diff, bar,
                                            "met" if ok else "NOT met"))
        out.append("")
    return "\n".join(out)


def plot(runs, png):
    """Two panels (CNN, MLP): accuracy vs bits per quantized weight."""
    archs = [a for a in ["lenet", "mlp"]
             if any((a, k) in runs for k in ORDER)]
    colors = {"lenet": "#1f77b4", "mlp": "#d62728"}
    with tempfile.TemporaryDirectory() as tmp:
        script = ["set terminal pngcairo size 900,%d font 'Sans,11'" %
                  (380 * len(archs)),
                  "set output '%s'" % png, "set termoption noenhanced",
                  "set multiplot layout %d,1 title 'Fashion-MNIST test "
                  "accuracy vs bits per quantized weight (same schedule, "
                  "seed-averaged where several seeds ran)'" % len(archs),
                  "set xlabel 'bits per quantized weight'",
                  "set ylabel 'test accuracy (%)'",
                  "set xrange [0.2:2.2]", "set grid",
                  "set key outside right top"]
        for arch in archs:
            points = [runs[(arch, k)] for k in ORDER[1:] if (arch, k) in runs]
            data = os.path.join(tmp, arch + ".dat")
            # Points at the same x get labels nudged apart vertically.
            seen = {}
            accs = [r["trainer_accuracy"] for r in points]
            if (arch, ("fp32", 0)) in runs:
                accs.append(runs[(arch, ("fp32", 0))]["trainer_accuracy"])
            step = 0.07 * max(max(accs) - min(accs), 0.2)
            with open(data, "w") as f:
                for r in sorted(points, key=lambda r: -r["trainer_accuracy"]):
                    x = r["bits_per_weight"]
                    rank = seen.get(x, 0)
                    seen[x] = rank + 1
                    name = ("FleXOR %.1f" % x if r["method"] == "flexor"
                            else r["method"])
                    label_y = r["trainer_accuracy"] + (
                        step * 0.6 if rank == 0 else -step * rank)
                    f.write("%f %f \"%s\" %f\n" % (x, r["trainer_accuracy"],
                                                    name, label_y))
            fdata = os.path.join(tmp, arch + "_flexor.dat")
            with open(fdata, "w") as f:
                for r in sorted((r for r in points if r["method"] == "flexor"),
                                key=lambda r: r["bits_per_weight"]):
                    f.write("%f %f\n" % (r["bits_per_weight"],
                                         r["trainer_accuracy"]))
            c = colors[arch]
            plots = [
                "'%s' using 1:2 with linespoints lw 2 pt 7 lc rgb '%s' "
                "title 'FleXOR (N_out=20, N_tap=2)'" % (fdata, c),
                "'%s' using 1:2 with points pt 5 ps 1.2 lc rgb '%s' "
                "title 'baselines'" % (data, c),
                "'%s' using ($1-0.03):4:3 with labels right font ',9' "
                "tc rgb '#333333' notitle" % data]
            fp32 = runs.get((arch, ("fp32", 0)))
            if fp32:
                plots.append("%f with lines dt 2 lw 2 lc rgb '#555555' title "
                             "'FP32 (%.2f)'" % (fp32["trainer_accuracy"],
                                                fp32["trainer_accuracy"]))
            script.append("set title '%s'" % ARCH_NAMES.get(arch, arch))
            script.append("plot " + ", \\\n  ".join(plots))
        script.append("unset multiplot")
        gp = os.path.join(tmp, "plot.gp")
        with open(gp, "w") as f:
            f.write("\n".join(script) + "\n")
        subprocess.run(["gnuplot", gp], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs_dir")
    parser.add_argument("--table", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args()
    runs = load(args.runs_dir)
    text = table(runs)
    with open(args.table, "w") as f:
        f.write(text + "\n")
    print(text)
    plot(runs, args.plot)


if __name__ == "__main__":
    main()
