"""The DDPM experiment end to end: a tiny CLI run with every figure, resume with the EMA, the
quality table with a (tiny) trained classifier, and sampling from a checkpoint alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, compose_config, crash_and_resume, read_summary, run_inprocess, without_hydra

from dlfp.config.checks import validate
from dlfp.data import mnist5k
from dlfp.engine.checkpoint import load_checkpoint, save_checkpoint
from dlfp.errors import DlfpError
from dlfp.models import build_model
from dlfp.tasks import ddpm
from dlfp.viz.diffusion import plot_denoising
from dlfp.viz.mosaic import grid_shape, tile_grid

TINY_DDPM = ["experiment=ddpm", "hardware=cpu", "hardware.threads=1", "model.widths=[8,16,16]",
             "model.groups=4", "train.steps=12", "train.eval_every=6", "train.log_every=3",
             "train.checkpoint_every=6",
             "train.batch_size=16", "schedule.warmup_steps=2", "model.timesteps=40", "ddpm.grid_images=8",
             "ddpm.grid_sampler_steps=5", "ddpm.loss_images=40", "ddpm.loss_buckets=4"]
FIGURES = ["noising.png", "loss.png", "loss_per_timestep.png", "samples.png", "denoising.png"]


def test_tiny_ddpm_run_writes_every_figure_and_samples_from_its_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """In process: dlfp-reproduce's smoke run (tests/test_reproduce.py) runs the DDPM through the CLI."""
    run_dir = tmp_path / "run"  # T = 20: the linear schedule's scaled end reaches 1, clipped at 0.999
    run_inprocess([o.replace("model.timesteps=40", "model.timesteps=20") for o in TINY_DDPM], run_dir)
    metrics = read_summary(run_dir)["metrics"]
    assert metrics["steps"] == 12 and {"val/loss_t2", "val/loss_t17", "val/loss"} <= set(metrics)
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


def test_ddpm_sample_draws_the_size_the_checkpoint_was_trained_on(tmp_path: Path, monkeypatch) -> None:
    """16x16 images, T = 10 cosine: all from the model config; the run's config names no model."""
    model = build_model({"_target_": "dlfp.models.diffusion.Diffusion", "timesteps": 10, "noise": "cosine",
                         "image_size": 16, "in_channels": 1, "widths": [8, 8], "groups": 4})
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"config": json.dumps({"task": "ddpm", "ddpm": {}}),
                           "model_config": json.dumps(model.init_config),
                           "update": {"model": model.state_dict()}})
    script, grids = _script("ddpm_sample"), []
    monkeypatch.setattr(script, "plot_image_grid",
                        lambda images, path, title: grids.append((images.shape, title)))
    assert script.main([str(path), "--sampler", "ddpm", "--n", "5", "--out", str(tmp_path / "grid.png")]) == 0
    assert grids == [((5, 16, 16), "DDPM, 10 steps, seed 0")]


def test_a_checkpoint_from_before_the_process_moved_into_the_model_is_refused(tmp_path: Path, capsys) -> None:
    """Written while T and the schedule were ddpm.* settings and the model a bare UNet: resuming it is
    one error naming the changed settings (before any weights load), and so is sampling from it."""
    run_dir = tmp_path / "run"
    tiny = [*TINY_DDPM, "train.steps=2", "train.eval_every=2", "train.checkpoint_every=2",
            "schedule.warmup_steps=1"]
    run_inprocess(tiny, run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    config = json.loads(state["config"])
    model = config["model"]
    config["ddpm"].update(timesteps=model.pop("timesteps"), noise=model.pop("noise"))
    del model["image_size"]
    model["_target_"] = "dlfp.models.unet.UNet"
    state.update(config=json.dumps(config), model_config=json.dumps(model))
    state["update"]["model"] = {k.removeprefix("net."): v for k, v in state["update"]["model"].items()}
    state["task"]["ema"]["model"] = state["update"]["model"]
    save_checkpoint(last, state)
    with pytest.raises(DlfpError) as info:
        run_inprocess([*tiny, "resume=true"], run_dir)
    message = str(info.value)
    assert message.startswith("resume=true would mix two runs") and "\n" not in message
    assert "ddpm.timesteps: 40 -> <unset>" in message and "model.timesteps: <unset> -> 40" in message
    assert _script("ddpm_sample").main([str(last)]) == 1
    assert "holds a UNet, not a Diffusion model" in capsys.readouterr().err


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


# ---- bad settings: one error before any data loads, or before the model is built ---------------

BAD_SETTINGS = [  # (overrides, what the one error line must say), found by the schema check
    (["model.groups=3"], "model.widths=[16, 32, 64], model.groups=3: GroupNorm splits every width"),
    (["model.widths=[]"], "model.widths=[]: give at least one width"),
    (["model.widths=[8,8,8,8]"], "model.image_size=28, model.widths=[8, 8, 8, 8]: each width after the "
                                 "first halves the image: image_size must be a multiple of 2^(len(widths)"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_SETTINGS, ids=[" ".join(o) for o, _ in BAD_SETTINGS])
def test_settings_that_cannot_work_are_one_error_at_the_schema_check(overrides, message) -> None:
    with pytest.raises(DlfpError) as info:
        validate(without_hydra(compose_config(["experiment=ddpm", *overrides])))
    assert message in str(info.value) and "\n" not in str(info.value)


def _no_data(*args, **kwargs):
    """The dataset's loader, patched: whatever calls it (directly or through Hydra) fails."""
    raise AssertionError("data loaded before the check")


STEPS_ABOVE_T = [  # the ddpm section's step counts against the model's T: two sections, the task checks
    (["model.timesteps=10"], "ddpm.grid_sampler_steps=100, model.timesteps=10: DDIM takes at most T steps"),
    (["ddpm.grid_sampler_steps=1001"], "ddpm.grid_sampler_steps=1001, model.timesteps=1000"),
    (["model.timesteps=8", "ddpm.grid_sampler_steps=8"],
     "ddpm.loss_buckets=10, model.timesteps=8: each timestep bucket needs a timestep of its own"),
]


@pytest.mark.parametrize(("overrides", "message"), STEPS_ABOVE_T, ids=[" ".join(o) for o, _ in STEPS_ABOVE_T])
def test_step_counts_above_the_models_T_are_one_error_before_any_data_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides, message) -> None:
    monkeypatch.setattr(mnist5k, "load_mnist5k", _no_data)
    with pytest.raises(DlfpError) as info:
        run_inprocess(["experiment=ddpm", "hardware=cpu", *overrides], tmp_path / "run")
    assert message in str(info.value) and "\n" not in str(info.value)


def _fake_checkpoint(path: Path, task: str, dataset: dict) -> Path:
    save_checkpoint(path, {"config": json.dumps({"task": task, "dataset": dataset})})
    return path


MNIST5K = {"_target_": "dlfp.data.mnist5k.load_mnist5k", "name": "mnist5k"}


def _bad_quality_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    fashion = _fake_checkpoint(tmp_path / "fashion.pt", "classify",
                               {"_target_": "dlfp.data.mnist.load_mnist", "name": "fashion_mnist"})
    cifar = _fake_checkpoint(tmp_path / "cifar.pt", "classify", {"_target_": "dlfp.data.cifar.load_cifar10"})
    vae = _fake_checkpoint(tmp_path / "vae.pt", "vae", MNIST5K)
    mnist = _fake_checkpoint(tmp_path / "mnist.pt", "classify", {"_target_": "dlfp.data.mnist.load_mnist",
                                                                 "name": "mnist"})
    return [
        ([f"ddpm.quality.classifier={tmp_path / 'nothing'}"],
         f"ddpm.quality.classifier: {tmp_path / 'nothing'} holds no checkpoint"),
        ([f"ddpm.quality.classifier={vae}"], f"ddpm.quality.classifier: {vae} is a checkpoint of task 'vae'"),
        ([f"ddpm.quality.classifier={fashion}"],
         f"ddpm.quality.classifier={fashion} was trained on fashion_mnist images, but this run's are mnist"),
        ([f"ddpm.quality.classifier={cifar}"], "was trained on cifar10 images, but this run's are mnist"),
        ([f"ddpm.quality.classifier={mnist}", f"ddpm.quality.vae={tmp_path / 'none'}"],
         f"ddpm.quality.vae: {tmp_path / 'none'} holds no checkpoint"),
        ([f"ddpm.quality.classifier={mnist}", "ddpm.quality.ddim_steps=[20,50]"],
         "ddpm.quality.ddim_steps=[20, 50]: [50] exceed model.timesteps=40"),
    ]


def test_what_the_quality_table_reads_is_checked_before_any_data_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing, foreign-task or other-images classifier (or VAE), or DDIM rows longer than T,
    were found after all training; mnist5k and full-MNIST classifiers both fit (the same digits)."""
    monkeypatch.setattr(mnist5k, "load_mnist5k", _no_data)
    for overrides, message in _bad_quality_inputs(tmp_path):
        with pytest.raises(DlfpError) as info:
            run_inprocess([*TINY_DDPM, *overrides], tmp_path / "run")
        assert message in str(info.value), overrides
    judge = _fake_checkpoint(tmp_path / "mnist5k.pt", "classify", MNIST5K)
    with pytest.raises(Exception, match="data loaded"):  # passes the checks, reaches the data
        run_inprocess([*TINY_DDPM, f"ddpm.quality.classifier={judge}", "ddpm.quality.ddim_steps=[5]"],
                      tmp_path / "run")


@pytest.mark.parametrize(("override", "message"), [
    ("model.in_channels=3", "model.in_channels=3 but dataset mnist5k has 1-channel images; "
                            "set model.in_channels=1"),
    ("model.image_size=32", "model.image_size=32 but dataset mnist5k's images are 28x28; "
                            "set model.image_size=28"),
])
def test_a_model_that_does_not_fit_the_images_is_refused_before_it_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: str, message: str) -> None:
    monkeypatch.setattr(ddpm, "build_model", lambda cfg: pytest.fail("model built"))
    with pytest.raises(DlfpError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_inprocess([*TINY_DDPM, override], tmp_path / "run")


# ---- figures ------------------------------------------------------------------------------------


def test_image_grid_fills_its_cells_and_leaves_no_black_image() -> None:
    """8 images made a 3 x 3 grid with a black ninth cell (the smoke report's DDPM grid)."""
    assert [grid_shape(n) for n in (8, 64, 6, 7, 10)] == [(2, 4), (8, 8), (2, 3), (3, 3), (2, 5)]
    tiles = tile_grid(np.ones((7, 4, 4)))
    assert tiles.shape == (3, 3, 4, 4)
    assert np.isnan(tiles.reshape(9, -1)[7:]).all() and (tiles.reshape(9, -1)[:7] == 1).all()


def test_denoising_title_names_the_sampler_it_is_given(tmp_path: Path, monkeypatch) -> None:
    titles = []
    monkeypatch.setattr("matplotlib.axes.Axes.set_xlabel", lambda ax, text, **kw: titles.append(text))
    grid = np.zeros((2, 3, 4, 4))
    plot_denoising(grid, [9, 4, -1], tmp_path / "a.png", sampler="DDPM, 10 steps")
    plot_denoising(grid, [9, 4, -1], tmp_path / "b.png")
    assert titles == ["reverse process: noise -> sample (DDPM, 10 steps)", "reverse process: noise -> sample"]
