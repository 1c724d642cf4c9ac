"""``dlfp-train``: compose the config, check it, seed, pick the device, run the task, summarise.

    dlfp-train experiment=mnist_nn_torch optimizer.lr=0.05 hardware=cpu
    dlfp-train -m experiment=regression sweep=regression_n hydra/launcher=joblib
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dlfp.config import register_configs
from dlfp.errors import DlfpError

log = logging.getLogger("dlfp")
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute: console scripts too
register_configs()


def _group_listing() -> str:
    """`--help` text: each config group under conf/ and its options (schemas left out)."""
    lines = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        lines.append(f"  {group.name + ':':<12} {', '.join(options)}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("dlfp_groups", _group_listing, replace=True)


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Everything one run does after composition; returns the summary it writes."""
    import numpy as np
    import torch

    from dlfp.engine.hardware import seed_everything, setup_hardware
    from dlfp.engine.metrics import MetricLog
    from dlfp.run import Run
    from dlfp.tasks import get_task

    began = time.time()
    task = get_task(cfg.task)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    seed_everything(cfg.seed)
    hw = setup_hardware(cfg.hardware)
    log.info("experiment %s, task %s, device %s, run dir %s",
             cfg.experiment_name, cfg.task, hw.device, run_dir)
    run = Run(cfg=cfg, dir=run_dir, hw=hw, metrics=MetricLog(run_dir / "metrics.jsonl"))
    metrics = task(cfg, run)
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
        else platform.processor() or platform.machine(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__},
        "git_commit": _git_commit(),
        "overrides": list(HydraConfig.get().overrides.task),
    }
    tmp = run_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, run_dir / "summary.json")
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    log.info("done in %.1fs: %s", summary["wall_seconds"], shown)
    return summary


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def user_error(error: BaseException) -> DlfpError | None:
    """The DlfpError behind ``error``, if any: hydra.utils.instantiate wraps what a target raised."""
    while error is not None:
        if isinstance(error, DlfpError):
            return error
        error = error.__cause__
    return None


def _record_failure(error: Exception) -> None:
    """A failed run leaves error.txt (with the traceback when the error is not the user's to fix)
    instead of summary.json; the sweep report lists the job as failed with this reason."""
    text = f"{type(error).__name__}: {error}\n"
    if not isinstance(error, DlfpError):
        text += "\n" + traceback.format_exc()
    (Path(HydraConfig.get().runtime.output_dir) / "error.txt").write_text(text)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """The Hydra entry point; returns the objective metric so sweepers can optimise it.

    A single run that fails on a user error exits with that one message. In a multirun a failed
    job is logged and recorded, and the sweep goes on: Hydra's sweepers would otherwise stop at the
    first failure, before the end-of-sweep report (``hydra.callbacks``) that lists it as failed.
    """
    try:
        summary = run_experiment(cfg)
    except Exception as e:
        e = user_error(e) or e
        _record_failure(e)
        if HydraConfig.get().mode == RunMode.RUN:
            if isinstance(e, DlfpError):
                sys.exit(f"error: {e}")
            raise
        log.error("job failed: %s: %s", type(e).__name__, e)
        return None
    value = summary["metrics"].get(cfg.objective)
    if value is None:
        log.warning("objective %r is not among the metrics %s", cfg.objective,
                    sorted(summary["metrics"]))
    return value


if __name__ == "__main__":
    main()
