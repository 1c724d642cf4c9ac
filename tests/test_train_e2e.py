"""The MNIST network end to end: the real CLI, determinism, and kill-and-resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_MNIST, kill_and_resume, only_run_dir, read_summary, run_cli, run_inprocess

from dlfp.engine.checkpoint import load_checkpoint


def test_tiny_training_run_through_the_cli_writes_every_artifact(tmp_path: Path) -> None:
    run_cli(TINY_MNIST, cwd=tmp_path)  # as a user types it: the run directory's default name
    run_dir = only_run_dir(tmp_path)
    assert run_dir.relative_to(tmp_path).parts[:2] == ("outputs", "mnist_nn_torch")
    summary = read_summary(run_dir)
    assert summary["experiment"] == "mnist_nn_torch" and summary["device"] == "cpu"
    assert set(summary["metrics"]) >= {"val/loss", "val/error", "val/accuracy", "steps"}
    assert summary["metrics"]["val/accuracy"] > 0.5  # 60 updates already learn something
    assert summary["metrics"]["parameters"] == 16 * 8 + 8 + 392 * 256 + 256 + 256 * 10 + 10  # 103,314
    assert "train_seconds" in summary["timings"] and summary["versions"]["torch"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "val"}
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 20, 40, 60]
    assert all({"step", "epoch", "split"} <= set(r) for r in records)
    for name in ("loss", "error", "lr", "confusion"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert (run_dir / "train.log").read_text().count("val loss") == 4
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 60


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path: Path) -> None:
    a = run_inprocess(TINY_MNIST, tmp_path / "a")["metrics"]
    b = run_inprocess(TINY_MNIST, tmp_path / "b")["metrics"]
    c = run_inprocess([*TINY_MNIST, "seed=1"], tmp_path / "c")["metrics"]
    assert a == b
    assert a != c
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


@pytest.mark.slow  # SIGKILL + resume runs in the default suite under torchrun (test_distributed.py)
def test_killed_run_resumed_ends_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    overrides = [*TINY_MNIST, "train.steps=1200", "train.eval_every=500", "train.log_every=100",
                 "train.checkpoint_every=100"]
    killed, straight = kill_and_resume(overrides, tmp_path)
    assert read_summary(killed)["metrics"] == read_summary(straight)["metrics"]
    assert (killed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_default_recipe_reaches_90_percent_on_mnist5k(tmp_path: Path) -> None:
    summary = run_inprocess(["hardware=cpu"], tmp_path / "full")
    assert summary["metrics"]["val/accuracy"] >= 0.90


@pytest.mark.slow
def test_default_recipe_reaches_97_percent_on_real_mnist(tmp_path: Path, shared_data: Path) -> None:
    summary = run_inprocess(["hardware=cpu", "dataset=mnist", f"paths.data_dir={shared_data}"],
                            tmp_path / "full")
    assert summary["metrics"]["test/accuracy"] >= 0.97
