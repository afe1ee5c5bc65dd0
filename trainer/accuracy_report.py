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
    runs = {}
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    run = json.loads(line)
                    runs[(run["arch"], key(run))] = run
    return runs


def table(runs):
    out = []
    for arch in ["lenet", "mlp"]:
        rows = [runs[(arch, k)] for k in ORDER if (arch, k) in runs]
        if not rows:
            continue
        fp32 = runs.get((arch, ("fp32", 0)))
        out.append("### %s\n" % ARCH_NAMES.get(arch, arch))
        out.append("| Method | bits / quantized weight | test accuracy "
                   "(trainer) | test accuracy (engine) | prediction agreement "
                   "| model file KiB | x smaller than FP32 file |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            ratio = (fp32["file_bytes"] / r["file_bytes"]) if fp32 else 0
            out.append("| %s | %.2f | %.2f | %.2f | %.2f%% | %.1f | %.1f |" % (
                label(r), r["bits_per_weight"], r["trainer_accuracy"],
                r["engine_accuracy"], r["agreement"], r["file_bytes"] / 1024.0,
                ratio))
        one_bit = runs.get((arch, ("binary1", 0)))
        for n_in, bar, name in [(16, -0.3, "0.8"), (12, -1.0, "0.6")]:
            fx = runs.get((arch, ("flexor", n_in)))
            if one_bit and fx:
                diff = fx["trainer_accuracy"] - one_bit["trainer_accuracy"]
                ok = diff >= bar
                out.append("")
                out.append("- FleXOR %s bit vs 1-bit: %+.2f points (bar: >= "
                           "%.1f) -> %s" % (name, diff, bar,
                                            "met" if ok else "NOT met"))
        out.append("")
    return "\n".join(out)


def plot(runs, png):
    with tempfile.TemporaryDirectory() as tmp:
        script = ["set terminal pngcairo size 900,560 font 'Sans,11'",
                  "set output '%s'" % png,
                  "set title 'Fashion-MNIST test accuracy vs bits per "
                  "quantized weight'",
                  "set xlabel 'bits per quantized weight'",
                  "set ylabel 'test accuracy (%)'",
                  "set xrange [0.3:2.2]", "set grid", "set key bottom right"]
        plots = []
        colors = {"lenet": "#1f77b4", "mlp": "#d62728"}
        for arch in ["lenet", "mlp"]:
            points = [runs[(arch, k)] for k in ORDER[1:] if (arch, k) in runs]
            if not points:
                continue
            data = os.path.join(tmp, arch + ".dat")
            with open(data, "w") as f:
                for r in sorted(points, key=lambda r: r["bits_per_weight"]):
                    name = ("FleXOR %.1f" % r["bits_per_weight"]
                            if r["method"] == "flexor" else r["method"])
                    f.write("%f %f \"%s\"\n" % (r["bits_per_weight"],
                                                r["trainer_accuracy"], name))
            flexor = [r for r in points if r["method"] == "flexor"]
            fdata = os.path.join(tmp, arch + "_flexor.dat")
            with open(fdata, "w") as f:
                for r in sorted(flexor, key=lambda r: r["bits_per_weight"]):
                    f.write("%f %f\n" % (r["bits_per_weight"],
                                         r["trainer_accuracy"]))
            c = colors[arch]
            plots.append("'%s' using 1:2 with linespoints lw 2 pt 7 lc rgb '%s'"
                         " title '%s FleXOR'" % (fdata, c, arch))
            plots.append("'%s' using 1:2 with points pt 5 ps 1.3 lc rgb '%s' "
                         "title '%s baselines'" % (data, c, arch))
            plots.append("'%s' using 1:2:3 with labels offset 0,1 font ',9' "
                         "tc rgb '%s' notitle" % (data, c))
            fp32 = runs.get((arch, ("fp32", 0)))
            if fp32:
                plots.append("%f with lines dt 2 lc rgb '%s' title '%s FP32 "
                             "(32 bit)'" % (fp32["trainer_accuracy"], c, arch))
        script.append("plot " + ", \\\n  ".join(plots))
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
