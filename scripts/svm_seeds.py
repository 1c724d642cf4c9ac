"""Mean and spread of mnist_svm runs over seeds (different training subsets), from their summaries.

    dlfp-train -m experiment=mnist_svm dataset=mnist dataset.train_size=10000 hardware=cpu seed=0,1,2
    python scripts/svm_seeds.py outputs/multirun/mnist_svm/<date>/<time>

Prints one Markdown table: per-seed accuracies, then mean ± sample std (ddof=1) of the raw and
Gabor accuracies, of their difference (paired: same subset, same SVM settings), and of the timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

METRICS = ["raw/accuracy", "gabor/accuracy", "gabor_gain/accuracy"]
TIMINGS = ["raw/fit_seconds", "raw/predict_seconds", "gabor/features_seconds", "gabor/fit_seconds",
           "gabor/predict_seconds"]


def load(paths: list[Path]) -> list[dict]:
    summaries = []
    for path in paths:
        found = [path] if path.name == "summary.json" else sorted(path.rglob("summary.json"))
        for file in found:
            summary = json.loads(file.read_text())
            if summary.get("task") == "svm":
                summaries.append(summary)
    return sorted(summaries, key=lambda s: s["seed"])


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.4f} ± {std:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="multirun folders or summary.json files")
    args = parser.parse_args(argv)
    summaries = load(args.paths)
    if not summaries:
        print(f"no mnist_svm summary.json under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    sizes = {s["metrics"]["train_size"] for s in summaries}
    print(f"{len(summaries)} runs, training images: {', '.join(str(int(n)) for n in sorted(sizes))}\n")
    print("| seed | " + " | ".join(METRICS) + " |")
    print("|---|" + "---:|" * len(METRICS))
    for s in summaries:
        print(f"| {s['seed']} | " + " | ".join(f"{s['metrics'][m]:.4f}" for m in METRICS) + " |")
    print("| mean ± std | " + " | ".join(spread([s["metrics"][m] for s in summaries]) for m in METRICS)
          + " |\n")
    print("| timing (s) | mean ± std |")
    print("|---|---:|")
    for t in TIMINGS:
        values = [s["timings"][t] for s in summaries if t in s["timings"]]
        if values:
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(f"| {t} | {mean:.1f} ± {std:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
