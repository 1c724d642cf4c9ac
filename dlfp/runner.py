"""``run_experiment``: everything one run does once its config is composed. ``dlfp-train`` calls it
for each run, and the compare task for each of its sub-runs, so every run directory gets the same
``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from dlfp.config.scope import check_run_config
from dlfp.engine import distributed
from dlfp.engine.hardware import cpu_threads, seed_everything, setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.engine.schedules import check_budget
from dlfp.engine.tracking import build_mirrors
from dlfp.errors import DlfpError
from dlfp.tasks import DATA_PARALLEL, get_task, task_reads

log = logging.getLogger("dlfp")


def run_experiment(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Seed, device and threads, the task in ``run_dir``, then ``summary.json``; returns the summary."""
    began = time.time()
    check_run_config(cfg, overrides, task_reads(cfg.task))  # before any data
    check_budget(cfg.get("schedule"), cfg.get("train"))  # a budget in updates: before any data
    task = get_task(cfg.task)
    ranks = data_parallel_ranks(cfg.task)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed + 1_000_003 * ranks.rank)  # DDP copies rank 0's initial weights to all
    hw = setup_hardware(cfg.hardware, ranks)
    log.info("experiment %s, task %s, device %s, run dir %s%s", cfg.experiment_name, cfg.task, hw.device,
             run_dir, f", {ranks.world_size} processes" if ranks.active else "")
    mirrors = build_mirrors(cfg, run_dir) if ranks.is_main else []
    metrics_log = MetricLog(run_dir / "metrics.jsonl", writes=ranks.is_main, mirrors=mirrors)
    run = Run(cfg=cfg, dir=run_dir, hw=hw, metrics=metrics_log, run_experiment=run_experiment)
    try:
        with cpu_threads(cfg.hardware.threads):
            metrics = task(cfg, run)
    except Exception as e:
        error = user_error(e)
        if error is None:
            raise
        raise error from None  # the user's problem, without hydra.utils.instantiate's wrapping
    finally:
        run.metrics.close()
    summary = {
        "experiment": cfg.experiment_name,
        "task": cfg.task,
        "seed": cfg.seed,
        "objective": cfg.objective,
        "metrics": metrics,
        "wall_seconds": round(time.time() - began, 3),
        "timings": run.timings,
        "device": str(hw.device),
        "device_name": torch.cuda.get_device_name(hw.device) if hw.device.type == "cuda"
        else _cpu_name(),
        "threads": torch.get_num_threads() if cfg.hardware.threads is None else int(cfg.hardware.threads),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__},
        "git_commit": _git_commit(),
        "overrides": list(overrides),
        "processes": ranks.world_size,
    }
    if not ranks.is_main:
        return summary
    tmp = run_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / "summary.json")
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    log.info("done in %.1fs: %s", summary["wall_seconds"], shown)
    return summary


def data_parallel_ranks(task: str) -> distributed.Ranks:
    """This process's ranks, with the process group joined; one error for a task that cannot run
    data-parallel."""
    ranks = distributed.ranks_from_environment()
    if ranks.active and task not in DATA_PARALLEL:
        raise DlfpError(f"task {task} cannot run data-parallel (WORLD_SIZE={ranks.world_size}); run it as "
                        f"one process, without torchrun. Tasks that can: {', '.join(sorted(DATA_PARALLEL))}")
    distributed.join(ranks)
    if not ranks.is_main:
        logging.getLogger("dlfp").setLevel(logging.WARNING)
    return ranks


def user_error(error: BaseException | None) -> DlfpError | None:
    """The DlfpError behind ``error``, if any: hydra.utils.instantiate wraps what a target raised."""
    while error is not None:
        if isinstance(error, DlfpError):
            return error
        error = error.__cause__
    return None


def _cpu_name() -> str:
    """The CPU's model name (a single seed's metrics differ between CPU kinds: docs/design.md)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
