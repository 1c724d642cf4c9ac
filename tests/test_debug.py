"""The first hour: a budget given on the command line replaces the experiment's other one, and
``debug=smoke`` (conf/debug/) makes any experiment a run of seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, read_summary, run_inprocess, without_hydra

from dlfp.config.checks import config_problems
from dlfp.config.overrides import replace_budget
from dlfp.engine.metrics import MetricLog


@pytest.mark.parametrize(("overrides", "steps", "epochs"), [
    (["experiment=cifar_fast", "train.steps=20"], 20, None),  # an epoch recipe shortened in updates
    (["experiment=mnist_nn_torch", "train.epochs=2"], None, 2),  # an update recipe in epochs
    (["experiment=mnist_cnn", "++train.steps=20"], 20, None),
])
def test_a_budget_on_the_command_line_replaces_the_experiments_other(overrides: list[str], steps: int | None,
                                                                      epochs: int | None) -> None:
    cfg = without_hydra(compose_config(overrides))
    replace_budget(cfg, overrides)
    assert (cfg.train.steps, cfg.train.epochs) == (steps, epochs)
    assert config_problems(cfg) == []


def test_both_budgets_on_the_command_line_are_still_refused() -> None:
    overrides = ["experiment=cifar_fast", "train.steps=20", "train.epochs=2"]
    cfg = without_hydra(compose_config(overrides))
    replace_budget(cfg, overrides)
    assert config_problems(cfg) == [
        "train.steps=20, train.epochs=2: set only one of them (the other to null)"]


def test_the_runner_replaces_the_budget_before_its_checks(tmp_path: Path) -> None:
    """``experiment=regression`` states 12,000 updates; ``train.epochs=3`` alone runs 3 epochs."""
    summary = run_inprocess(["experiment=regression", "dataset.n=16", "train.epochs=3"], tmp_path / "run")
    assert summary["metrics"]["steps"] == 3.0  # 16 points: one full batch per epoch


# every experiment that trains or fits, with its offline data: the fastest in the default suite
FAST = ["mnist_nn_torch", "mnist_nn_numpy", "regression", "vae"]
CIFAR = ["cifar_fast", "cifar_fast_cpu", "cifar_fast_muon", "cifar_allcnn", "cifar_resnet18",
         "cifar_resnet34", "cifar_resnet50"]
SLOW = [("mnist_cnn", []), ("ddpm", []), ("lm", ["corpus=generated"]), ("lm_bench", ["corpus=generated"]),
        ("mnist_svm", []), ("mnist_compare", []), *((name, ["dataset=cifar_synthetic"]) for name in CIFAR)]


@pytest.mark.parametrize(("experiment", "extra"), [
    *((name, []) for name in FAST),
    *(pytest.param(name, extra, marks=pytest.mark.slow) for name, extra in SLOW)])
def test_debug_smoke_makes_an_experiment_a_run_of_seconds(tmp_path: Path, experiment: str,
                                                          extra: list[str]) -> None:
    run = tmp_path / "run"
    summary = run_inprocess([f"experiment={experiment}", "debug=smoke", "hardware.threads=1", *extra], run)
    if summary["task"] in ("svm", "compare"):  # nothing trained by gradient / the sub-runs' own
        return
    assert summary["metrics"]["steps"] == 8.0
    records = MetricLog(run / "metrics.jsonl").records()
    assert [r["step"] for r in records if r["split"] == "train" and r["step"]] == list(range(1, 9))
    assert {r["step"] for r in records if r["split"] != "train"} <= {8}  # at most one evaluation, at the end
    assert read_summary(run)["overrides"][1] == "debug=smoke"


@pytest.mark.parametrize("evaluations", [1, 2])
def test_a_sweep_draws_accuracy_curves_only_from_jobs_evaluated_more_than_once(tmp_path: Path,
                                                                                 evaluations: int) -> None:
    """``train.eval_every`` longer than the jobs: one evaluation each, no curve to draw (the figure
    used to join it to the untrained net's step-0 point, two points per line)."""
    from dlfp.report import Group, Job, Report, validation_curves

    groups = []
    for num, lr in enumerate(["0.1", "0.2"]):
        job_dir = tmp_path / str(num)
        job_dir.mkdir()
        records = [{"step": 4 * (i + 1), "epoch": i + 1, "split": "val", "accuracy": 0.1 * (i + 1)}
                   for i in range(evaluations)]
        (job_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        job = Job(num=num, params={"optimizer.lr": lr}, status="ok", dir=job_dir)
        groups.append(Group((lr,), [job]))
    report = Report(tmp_path, [g.jobs[0] for g in groups], ["optimizer.lr"], [], groups, files=[])
    drawn = validation_curves(report)
    assert [p.name for p in drawn] == (["val_accuracy_vs_epoch.png"] if evaluations > 1 else [])
