"""The DDPM experiment end to end: a tiny CLI run with every figure, resume with the EMA, the
quality table with a (tiny) trained classifier, and sampling from a checkpoint alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import ROOT, crash_and_resume, read_summary, run_inprocess

TINY_DDPM = ["experiment=ddpm", "hardware=cpu", "hardware.threads=1", "model.widths=[8,16,16]",
             "model.groups=4", "train.steps=12", "train.eval_every=6", "train.log_every=3",
             "train.checkpoint_every=6",
             "train.batch_size=16", "schedule.warmup_steps=2", "ddpm.timesteps=40", "ddpm.grid_images=8",
             "ddpm.grid_sampler_steps=5", "ddpm.loss_images=40", "ddpm.loss_buckets=4"]
FIGURES = ["noising.png", "loss.png", "loss_per_timestep.png", "samples.png", "denoising.png"]


def test_tiny_ddpm_run_writes_every_figure_and_samples_from_its_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """In process: dlfp-reproduce's smoke run (tests/test_reproduce.py) runs the DDPM through the CLI."""
    run_dir = tmp_path / "run"
    run_inprocess(TINY_DDPM, run_dir)
    metrics = read_summary(run_dir)["metrics"]
    assert metrics["steps"] == 12 and {"val/loss_t5", "val/loss_t35", "val/loss"} <= set(metrics)
    for name in FIGURES:
        assert (run_dir / "plots" / name).stat().st_size > 5_000, name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val_ema"] == [0, 6, 12]

    script = _script("ddpm_sample")  # the checkpoint alone: moved away from its run directory
    moved = tmp_path / "elsewhere.pt"
    (run_dir / "checkpoints" / "last.pt").rename(moved)
    out, trajectory = tmp_path / "grid.png", tmp_path / "trajectory.png"
    assert script.main([str(moved), "--sampler", "ddim", "--steps", "5", "--n", "4", "--out", str(out),
                        "--trajectory", str(trajectory)]) == 0
    assert "wrote 4 samples" in capsys.readouterr().out
    assert out.stat().st_size > 2_000 and trajectory.stat().st_size > 2_000
    assert script.main([str(tmp_path / "nothing")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_crashed_run_resumes_exactly_with_its_ema(tmp_path: Path) -> None:
    resumed, straight = crash_and_resume(TINY_DDPM, tmp_path, crash_after=9)
    assert read_summary(resumed)["metrics"] == read_summary(straight)["metrics"]
    assert (resumed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("cnn") / "run"
    run_inprocess(["experiment=mnist_cnn", "hardware=cpu", "hardware.threads=1", "model.widths=[4,8]",
                   "model.hidden=16", "train.epochs=null", "train.steps=30", "train.batch_size=32"], run_dir)
    return run_dir


def test_quality_table_scores_every_sampler_and_the_real_images(tmp_path: Path,
                                                                tiny_classifier: Path) -> None:
    run_dir = tmp_path / "run"
    summary = run_inprocess([*TINY_DDPM, f"ddpm.quality.classifier={tiny_classifier}",
                             "ddpm.quality.samples=20", "ddpm.quality.reference_images=100",
                             "ddpm.quality.ddim_steps=[10,5]", "ddpm.quality.ddim_etas=[0,1]",
                             "ddpm.quality.bootstrap=3"], run_dir)
    m = summary["metrics"]
    for row in ("real_train", "ddpm_T40", "ddim_S10_eta0", "ddim_S5_eta0", "ddim_S5_eta1"):
        assert m[f"{row}/frechet"] >= 0 and m[f"{row}/frechet_std"] >= 0
        assert 0 < m[f"{row}/confidence"] <= 1 and 1 <= m[f"{row}/classes_present"] <= 10
    assert m["ddpm_T40/seconds_per_image"] > m["ddim_S5_eta0/seconds_per_image"] > 0
    assert m["real_train/frechet"] < m["ddim_S5_eta0/frechet"]  # 12 updates make noise, not digits
    assert "| ddim_S10_eta1 |" in (run_dir / "quality.md").read_text()
