"""Experiment trackers as mirrors of ``metrics.jsonl``: each record the run writes there is also sent
to TensorBoard and/or MLflow (``tracking.tensorboard=true``, ``tracking.mlflow=true``). The file stays
the record every dlfp tool reads; a tracker only shows it. Both packages are optional.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Protocol

from omegaconf import DictConfig

from dlfp.config.plain import dotted, plain_config
from dlfp.errors import DlfpError


class Mirror(Protocol):
    def log(self, step: int, split: str, metrics: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class TensorBoardMirror:
    """Scalars ``<split>/<metric>`` against the update, in ``<run dir>/tensorboard``."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"{split}/{name}", value, global_step=step)

    def close(self) -> None:
        self.writer.close()


class MLflowMirror:
    """One MLflow run per dlfp run: the resolved config as parameters, ``<split>/<metric>`` per update."""

    def __init__(self, run_dir: Path, cfg: DictConfig) -> None:
        import mlflow

        self.mlflow = mlflow
        if cfg.tracking.mlflow_uri:  # else MLflow's own default (MLFLOW_TRACKING_URI, or its local store)
            mlflow.set_tracking_uri(cfg.tracking.mlflow_uri)
        mlflow.set_experiment(cfg.tracking.mlflow_experiment or str(cfg.experiment_name))
        self.run = mlflow.start_run(run_name=run_dir.name)
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in dotted(plain_config(cfg)).items()}
        items = [(k, v[:500]) for k, v in params.items()]  # MLflow's limits: 500 characters a value,
        for first in range(0, len(items), 100):  # 100 parameters a call
            mlflow.log_params(dict(items[first : first + 100]))

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        self.mlflow.log_metrics({f"{split}/{k}": v for k, v in metrics.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def build_mirrors(cfg: DictConfig, run_dir: Path) -> list[Mirror]:
    """The trackers ``tracking`` turns on; one error naming the missing package."""
    tracking = cfg.get("tracking")
    if tracking is None:
        return []
    wanted = [name for name, on in (("tensorboard", tracking.tensorboard), ("mlflow", tracking.mlflow)) if on]
    missing = [name for name in wanted if importlib.util.find_spec(name) is None]
    if missing:
        raise DlfpError(f"tracking.{missing[0]}=true needs the {missing[0]} package: pip install "
                        f"{' '.join(missing)} (or set tracking.{missing[0]}=false)")
    return [TensorBoardMirror(run_dir) if name == "tensorboard" else MLflowMirror(run_dir, cfg)
            for name in wanted]
