"""Experiment trackers mirror metrics.jsonl: every record written reaches them, nothing else does."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import TINY_MNIST, run_inprocess
from omegaconf import OmegaConf

from dlfp.engine.metrics import MetricLog
from dlfp.engine.tracking import build_mirrors
from dlfp.errors import DlfpError


class Recorder:
    def __init__(self) -> None:
        self.records, self.closed = [], False

    def log(self, step: int, split: str, metrics: dict[str, float]) -> None:
        self.records.append({"step": step, "split": split, **metrics})

    def close(self) -> None:
        self.closed = True


def test_mirrors_receive_exactly_the_records_written(tmp_path: Path) -> None:
    mirror = Recorder()
    log = MetricLog(tmp_path / "metrics.jsonl", mirrors=[mirror])
    log.log(0, "val", epoch=0.0, accuracy=0.5)
    log.log(10, "train", epoch=0.5, loss=1.25, lr=0.1)
    log.close()
    written = [{k: v for k, v in r.items() if k != "epoch"} for r in log.records()]
    assert mirror.records == written and mirror.closed
    silent = Recorder()
    quiet = MetricLog(tmp_path / "rank1.jsonl", writes=False, mirrors=[silent])
    quiet.log(0, "val", accuracy=0.5)  # a data-parallel rank other than 0 writes nothing
    assert not (tmp_path / "rank1.jsonl").exists() and silent.records == []


def test_a_missing_tracker_package_is_one_clear_error(monkeypatch, tmp_path: Path) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name == "mlflow" else find_spec(name))
    tracking = {"tensorboard": False, "mlflow": True, "mlflow_uri": None, "mlflow_experiment": None}
    cfg = OmegaConf.create({"experiment_name": "x", "tracking": tracking})
    with pytest.raises(DlfpError, match=r"tracking.mlflow=true needs the mlflow package: pip install mlflow"):
        build_mirrors(cfg, tmp_path)


def test_tensorboard_mirror_holds_the_metrics_of_the_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="an optional dependency (pip install tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    run_inprocess([*TINY_MNIST, "tracking.tensorboard=true"], run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    scalars = events.Scalars("val/accuracy")
    assert [(s.step, round(s.value, 6)) for s in scalars] == val_accuracy(run_dir)


def test_mlflow_mirror_holds_the_metrics_and_config_of_the_run(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("mlflow", reason="mlflow is an optional dependency (pip install mlflow)")
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database store
    store = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "run"
    run_inprocess([*TINY_MNIST, "tracking.mlflow=true", f"tracking.mlflow_uri={store}"], run_dir)
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "mnist_nn_torch"]
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == val_accuracy(run_dir)
    assert run.data.params["train.steps"] == "60"


def val_accuracy(run_dir: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], round(r["accuracy"], 6)) for r in records if r["split"] == "val"]
