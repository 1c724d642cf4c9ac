"""Shared test helpers: compose configs, run experiments in-process or through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from dlfp.config import CONF_DIR, register_configs
from dlfp.runner import run_experiment

ROOT = Path(__file__).resolve().parent.parent
# real data for the slow tests: the folder DLFP_DATA names, else the one beside the checkout
SHARED_DATA = Path(os.environ.get("DLFP_DATA", ROOT.parent / "shared" / "data"))
register_configs()


def compose_config(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """The config `dlfp-train <overrides>` would see, with hydra.* resolved for ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        extra = [f"hydra.run.dir={run_dir}"] if run_dir is not None else []
        cfg = compose("train", overrides=overrides + extra, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} (the experiment_name) resolves as in a run
    return cfg


def hydra_job(overrides: list[str], run_dir: Path) -> DictConfig:
    """The config of a single run in ``run_dir``, with HydraConfig set as ``dlfp-train`` sets it."""
    cfg = compose_config(overrides, run_dir)
    OmegaConf.set_readonly(cfg.hydra, False)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    return cfg


def run_inprocess(overrides: list[str], run_dir: Path) -> dict:
    """Run one experiment in this process (fast: no interpreter start) and return its summary."""
    cfg = hydra_job(overrides, run_dir)
    overrides = list(cfg.hydra.overrides.task)
    return run_experiment(without_hydra(cfg), run_dir, overrides)


def only_run_dir(cwd: Path, pattern: str = "outputs/*/*/*") -> Path:
    """The one run (or sweep) directory a command run in ``cwd`` made under its default name."""
    made = [p for p in cwd.glob(pattern) if p.is_dir()]
    assert len(made) == 1, f"expected one directory {pattern} under {cwd}, found {made}"
    return made[0]


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The composed config as a run sees it: Hydra's own node removed, the schema types kept."""
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_cli(args: list[str], cwd: Path, timeout: float = 300, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m dlfp.train <args>`` as a user would (same program as dlfp-train)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "dlfp.train", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"dlfp-train {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kill_and_resume(overrides: list[str], tmp_path: Path, checkpoint: str = "last.pt") -> tuple[Path, Path]:
    """SIGKILL a CLI run once its first checkpoint exists, resume it through the CLI, and run the
    same overrides straight through in process; returns (resumed run dir, straight run dir)."""
    from dlfp.engine.checkpoint import load_checkpoint

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dlfp.train", *overrides, f"hydra.run.dir={killed}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / checkpoint
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "summary.json").exists()
    assert 0 < int(load_checkpoint(ckpt)["step"])
    run_cli([*overrides, f"hydra.run.dir={killed}", "resume=true"], cwd=tmp_path)
    straight = tmp_path / "straight"
    run_inprocess(overrides, straight)
    return killed, straight


class Crash(Exception):
    """Raised inside the driver by ``crash_and_resume``: a run that dies mid-epoch."""


def crash_and_resume(overrides: list[str], tmp_path: Path, crash_after: int) -> tuple[Path, Path]:
    """In process: a run dies (an exception) right after update ``crash_after``, before that
    step's checkpoint; it is resumed from its last checkpoint, and the same overrides run straight
    through. Returns (resumed run dir, straight run dir). Cheaper than ``kill_and_resume`` (no
    interpreter starts) for checking a task's checkpointed state; ``kill_and_resume`` checks what
    a SIGKILL leaves on disk."""
    from dlfp.engine import driver

    advance = driver.Progress.advance
    done = {"updates": 0}

    def advance_then_crash(self, n: int = 1) -> None:
        advance(self, n)
        done["updates"] += n
        if done["updates"] == crash_after:
            raise Crash(f"crashed after update {crash_after}")

    crashed, straight = tmp_path / "crashed", tmp_path / "straight"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver.Progress, "advance", advance_then_crash)
        with pytest.raises(Crash):
            run_inprocess(overrides, crashed)
    assert not (crashed / "summary.json").exists()
    run_inprocess([*overrides, "resume=true"], crashed)
    run_inprocess(overrides, straight)
    return crashed, straight


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# Tiny settings that keep the MNIST network's runs to a second or two.
TINY_MNIST = [
    "experiment=mnist_nn_torch", "hardware=cpu", "hardware.threads=1", "train.steps=60",
    "train.eval_every=20",
    "train.log_every=10", "train.checkpoint_every=20", "train.eval_batch_size=500",
]


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST not present at {SHARED_DATA}/MNIST/raw "
                    "(set DLFP_DATA to a folder holding it)")
    return SHARED_DATA
