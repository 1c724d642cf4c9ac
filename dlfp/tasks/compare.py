"""The MNIST study table: run several experiments on the same data and tabulate them.

Recipe: for each experiment in ``compare.experiments``, compose its config exactly as
``dlfp-train experiment=<name> ...`` would (with this run's overrides that apply to it, plus
``compare.overrides[<name>]``), run its task in ``<run dir>/<name>/`` (own metrics.jsonl, plots,
summary.json), then write results.md / results.csv (method, accuracy, train time) and the
validation-error curves of the networks on one plot.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlfp.engine.hardware import seed_everything, setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.errors import DlfpError
from dlfp.run import Run
from dlfp.viz.curves import plot_curves

log = logging.getLogger("dlfp")
SVM_ROWS = {"raw": "SVM raw", "gabor": "SVM Gabor"}


def run(cfg: DictConfig, run: Run) -> dict[str, float]:
    forwarded = own_overrides()
    rows: list[dict] = []
    curves: dict[str, list[dict]] = {}
    for name in cfg.compare.experiments:
        extra = list(cfg.compare.overrides.get(name, []))
        sub_cfg = compose_experiment(name, forwarded, extra)
        log.info("compare: running %s (task %s) in %s", name, sub_cfg.task, run.dir / name)
        sub_metrics, sub = run_sub_experiment(sub_cfg, run.dir / name)
        label = cfg.compare.labels.get(name, name)
        rows += table_rows(name, label, sub_metrics, sub)
        val_errors = [r for r in sub.metrics.records("val") if "error" in r]
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
        key = _override_key(override)
        if key != "experiment" and key.split(".")[0] != "compare":
            kept.append(override)
    return kept


def compose_experiment(name: str, forwarded: list[str], extra: list[str]) -> DictConfig:
    """``experiment=<name>`` with the forwarded overrides whose top-level key it has, then ``extra``."""
    base = _compose([f"experiment={name}"], name)
    if base.task == "compare":
        raise DlfpError(f"compare.experiments lists {name}, which is itself a comparison")
    applies = [o for o in forwarded if base.get(_override_key(o).split(".")[0]) is not None]
    skipped = sorted(set(forwarded) - set(applies))
    if skipped:
        log.info("compare: %s has no use for %s", name, ", ".join(skipped))
    return _compose([f"experiment={name}", *applies, *extra], name)


def _compose(overrides: list[str], name: str) -> DictConfig:
    from dlfp.train import CONF_DIR  # the dispatcher module registers the schemas on import

    initialized = GlobalHydra.instance().is_initialized()  # true inside dlfp-train
    context = nullcontext() if initialized else initialize_config_dir(CONF_DIR, version_base="1.3")
    try:
        with context:
            return compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise DlfpError(f"cannot compose experiment {name} for the comparison "
                        f"(overrides {overrides}): {e}") from None


def run_sub_experiment(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, float], Run]:
    """What ``dlfp-train`` does for one run, into ``run_dir``: seed, device, task, summary.json."""
    from dlfp.tasks import get_task

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    task = get_task(cfg.task)
    began = time.time()
    seed_everything(cfg.seed)
    hw = setup_hardware(cfg.hardware)
    sub = Run(cfg=cfg, dir=run_dir, hw=hw, metrics=MetricLog(run_dir / "metrics.jsonl"))
    metrics = task(cfg, sub)
    sub.timings["wall_seconds"] = round(time.time() - began, 3)
    summary = {"experiment": cfg.experiment_name, "task": cfg.task, "seed": cfg.seed,
               "metrics": metrics, "timings": sub.timings, "device": str(hw.device)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return metrics, sub


def table_rows(name: str, label: str, metrics: dict[str, float], sub: Run) -> list[dict]:
    """SVM runs give one row per feature set; a network run gives one row."""
    if sub.cfg.task == "svm":
        split = next((r["split"] for r in sub.metrics.records()), "val")
        return [
            {"key": f"svm_{features}", "method": SVM_ROWS[features], "experiment": name,
             "accuracy": metrics[f"{features}/accuracy"], "split": split,
             "train_seconds": sub.timings[f"{features}/train_seconds"],
             "train_images": int(metrics["train_size"])}
            for features in SVM_ROWS
        ]
    split = "test" if "test/accuracy" in metrics else "val"
    if f"{split}/accuracy" not in metrics:
        raise DlfpError(f"experiment {name} returned no {split}/accuracy metric; it cannot be tabulated")
    return [{"key": name, "method": label, "experiment": name, "accuracy": metrics[f"{split}/accuracy"],
             "split": split, "train_seconds": sub.timings.get("train_seconds", float("nan")),
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


def _override_key(override: str) -> str:
    """``+a.b=1`` / ``~a.b`` / ``dataset=mnist`` -> ``a.b`` / ``a.b`` / ``dataset``."""
    return override.split("=", 1)[0].lstrip("+~")
