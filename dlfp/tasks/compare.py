"""The MNIST study table: run several experiments on the same data and tabulate them.

Recipe: for each experiment in ``compare.experiments``, compose its config exactly as
``dlfp-train experiment=<name> ...`` would (with this run's overrides that apply to it, plus
``compare.overrides[<name>]``), run its task in ``<run dir>/<name>/`` (own metrics.jsonl, plots,
summary.json), then write results.md / results.csv (method, accuracy, train time) and the
validation-error curves of the networks on one plot.
"""

from __future__ import annotations

import csv
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlfp.config import CONF_DIR, register_configs
from dlfp.config.overrides import override_key
from dlfp.config.scope import check_run_config
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.tasks import task_reads
from dlfp.viz.curves import plot_curves

log = logging.getLogger("dlfp")
SVM_ROWS = {"raw": "SVM raw", "gabor": "SVM Gabor"}
EVERY_EXPERIMENT = ("debug",)  # config groups forwarded to every sub-run (debug=smoke: all of them tiny)


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    forwarded = own_overrides()
    composed = {name: compose_experiment(name, forwarded, list(cfg.compare.overrides.get(name, [])))
                for name in cfg.compare.experiments}  # all before any runs: an unused override is refused
    unused = sorted(set(forwarded) - {o for _, overrides in composed.values() for o in overrides})
    if unused:
        raise DlfpError(f"{', '.join(unused)}: none of compare.experiments ({', '.join(composed)}) reads "
                        "it, so it would have no effect; remove it")
    for sub_cfg, sub_overrides in composed.values():  # every experiment's config, before any runs
        check_run_config(sub_cfg, sub_overrides, task_reads(sub_cfg.task))
    rows: list[dict] = []
    curves: dict[str, list[dict]] = {}
    for name, (sub_cfg, sub_overrides) in composed.items():
        sub_dir = run.dir / name
        log.info("compare: running %s (task %s) in %s", name, sub_cfg.task, sub_dir)
        sub_dir.mkdir(parents=True, exist_ok=True)
        (sub_dir / "config.yaml").write_text(OmegaConf.to_yaml(sub_cfg))
        summary = run.run_experiment(sub_cfg, sub_dir, sub_overrides)
        records = MetricLog(sub_dir / "metrics.jsonl").records()
        label = cfg.compare.labels.get(name, name)
        rows += table_rows(name, label, summary, records)
        val_errors = [r for r in records if r["split"] == "val" and "error" in r]
        if val_errors:
            curves[label] = val_errors

    write_table(run.dir, rows)
    if curves:
        plot_curves(curves, "error", run.plots_dir / "val_error_networks.png",
                    title="validation error of the networks", ylabel="error rate", logy=True)
    metrics: dict[str, float] = {}
    for row in rows:
        metrics[f"{row['key']}/accuracy"] = row["accuracy"]
        metrics[f"{row['key']}/error"] = 1.0 - row["accuracy"]
    return metrics


def own_overrides() -> list[str]:
    """This run's command-line overrides, minus the ones that choose or configure the comparison."""
    kept = []
    for override in HydraConfig.get().overrides.task:
        key = override_key(override)
        if key != "experiment" and key.split(".")[0] != "compare":
            kept.append(override)
    return kept


def compose_experiment(name: str, forwarded: list[str], extra: list[str]) -> tuple[DictConfig, list[str]]:
    """``experiment=<name>`` with the forwarded overrides whose top-level key it has, then ``extra``;
    returns the config and the overrides that made it."""
    base = _compose([f"experiment={name}"], name)
    if base.task == "compare":
        raise DlfpError(f"compare.experiments lists {name}, which is itself a comparison")
    applies = [o for o in forwarded if override_key(o) in EVERY_EXPERIMENT
               or base.get(override_key(o).split(".")[0]) is not None]
    skipped = sorted(set(forwarded) - set(applies))
    if skipped:
        log.info("compare: %s has no use for %s", name, ", ".join(skipped))
    overrides = [f"experiment={name}", *applies, *extra]
    return _compose(overrides, name), overrides


def _compose(overrides: list[str], name: str) -> DictConfig:
    register_configs()
    initialized = GlobalHydra.instance().is_initialized()  # true inside dlfp-train
    context = nullcontext() if initialized else initialize_config_dir(CONF_DIR, version_base="1.3")
    try:
        with context:
            cfg = compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise DlfpError(f"cannot compose experiment {name} for the comparison "
                        f"(overrides {overrides}): {e}") from None
    if OmegaConf.is_interpolation(cfg, "experiment_name"):  # ${hydra:...} would name this run's experiment
        cfg.experiment_name = name
    return cfg


def table_rows(name: str, label: str, summary: dict[str, Any], records: list[dict]) -> list[dict]:
    """SVM runs give one row per feature set; a network run gives one row."""
    metrics, timings = summary["metrics"], summary["timings"]
    if summary["task"] == "svm":
        split = next((r["split"] for r in records), "val")
        return [
            {"key": f"svm_{features}", "method": SVM_ROWS[features], "experiment": name,
             "accuracy": metrics[f"{features}/accuracy"], "split": split,
             "train_seconds": timings[f"{features}/train_seconds"],
             "train_images": int(metrics["train_size"])}
            for features in SVM_ROWS
        ]
    split = "test" if "test/accuracy" in metrics else "val"
    if f"{split}/accuracy" not in metrics:
        raise DlfpError(f"experiment {name} returned no {split}/accuracy metric; it cannot be tabulated")
    return [{"key": name, "method": label, "experiment": name, "accuracy": metrics[f"{split}/accuracy"],
             "split": split, "train_seconds": timings.get("train_seconds", float("nan")),
             "train_images": "all"}]


def write_table(run_dir: Path, rows: list[dict]) -> None:
    columns = ["method", "experiment", "accuracy", "split", "train_seconds", "train_images"]
    with (run_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| method | accuracy | split | train time (s) | training images |",
             "|---|---:|---|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['accuracy']:.2%} | {row['split']} | "
                     f"{row['train_seconds']:.1f} | {row['train_images']} |")
    note = ("Train time: SVM rows = features of the training images + fit; network rows = the "
            "training loop (updates and periodic validation). Wall-clock, so it varies run to run.")
    (run_dir / "results.md").write_text("# MNIST: methods compared\n\n" + "\n".join(lines) + f"\n\n{note}\n")
