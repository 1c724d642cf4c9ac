"""The root of every run's config: the task, seed, objective and paths, and one slot per section."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from dlfp.config.checks import SEED, limit


@dataclass
class PathsConfig:
    data_dir: str = "${oc.env:DLFP_DATA,data}"
    cache_dir: str = "${paths.data_dir}/.dlfp-cache"  # derived files (trained tokenizers), rebuildable
    output_dir: str | None = "${hydra:runtime.output_dir}"  # null only outside a run (--cfg job --resolve)


@dataclass
class TrackingConfig:
    """Mirrors of metrics.jsonl (which stays the record): optional, off by default."""

    tensorboard: bool = False  # event files in <run dir>/tensorboard (pip install tensorboard)
    mlflow: bool = False  # an MLflow run with the config as parameters (pip install mlflow)
    mlflow_uri: str | None = None  # tracking server or store; null: MLflow's default (MLFLOW_TRACKING_URI)
    mlflow_experiment: str | None = None  # null: the experiment_name


@dataclass
class RootConfig:
    task: str = MISSING
    experiment_name: str = "${experiment_file:}"  # the experiment file's name unless set
    seed: int = limit(0, **SEED)  # seeds Python, NumPy and torch (and, by default, the data subsets)
    objective: str = "val/error"  # summary metric returned to sweepers
    resume: bool = False  # continue from checkpoints/last.pt of hydra.run.dir
    paths: PathsConfig = field(default_factory=PathsConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
