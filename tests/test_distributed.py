"""Data-parallel training under torchrun, with 2 gloo processes on the CPU.

The runs go through ``python -m torch.distributed.run`` (torchrun itself, not needing it on PATH)
and the real ``dlfp.train`` program, as a user starts them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import only_run_dir, read_summary, run_inprocess

from dlfp.engine.checkpoint import load_checkpoint
from dlfp.engine.distributed import Ranks, ranks_from_environment
from dlfp.errors import DlfpError

# batch 16 per process x 2 processes: the global batch of the one-process run (batch 32)
DDP = ["experiment=mnist_nn_torch", "hardware=cpu", "hardware.threads=1", "train.steps=200",
       "train.eval_every=100", "train.log_every=20", "train.checkpoint_every=20",
       "train.eval_batch_size=500"]
PER_PROCESS, GLOBAL = "train.batch_size=16", "train.batch_size=32"


def torchrun(args: list[str], cwd: Path, processes: int = 2, **popen) -> subprocess.Popen:
    """``torchrun --nproc_per_node=<processes> -m dlfp.train <args>`` on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
           "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "dlfp.train", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return subprocess.Popen(cmd, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"torchrun failed:\n{out}"
    return out


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    """One uninterrupted 2-process run in the default run directory (``outputs/...`` under cwd)."""
    cwd = tmp_path_factory.mktemp("ddp")
    finish(torchrun([*DDP, PER_PROCESS], cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return only_run_dir(cwd)  # the ranks share one


def test_ddp_matches_one_process_with_the_same_global_batch(ddp_run, tmp_path):
    one = tmp_path / "one"
    run_inprocess([*DDP, GLOBAL], one)
    ddp_state = load_checkpoint(ddp_run / "checkpoints" / "last.pt")["update"]["model"]
    one_state = load_checkpoint(one / "checkpoints" / "last.pt")["update"]["model"]
    for name, value in one_state.items():
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-4, atol=1e-5, msg=name)
    # the train records are the global batch's mean loss, as one process logs it
    ddp_train = [r for r in _records(ddp_run) if r["split"] == "train"]
    one_train = [r for r in _records(one) if r["split"] == "train"]
    assert [r["step"] for r in ddp_train] == [r["step"] for r in one_train]
    for a, b in zip(ddp_train, one_train):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    ddp_metrics, one_metrics = read_summary(ddp_run)["metrics"], read_summary(one)["metrics"]
    assert ddp_metrics.keys() == one_metrics.keys()
    for key, value in one_metrics.items():
        assert ddp_metrics[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key


def test_ddp_run_directory_holds_one_set_of_artifacts(ddp_run):
    summary = read_summary(ddp_run)
    assert summary["processes"] == 2
    records = _records(ddp_run)
    keys = [(r["step"], r["split"]) for r in records]
    assert len(keys) == len(set(keys)), "a record was written by more than one rank"
    assert sorted(p.name for p in (ddp_run / "checkpoints").iterdir()) == ["last.prev.pt", "last.pt"]
    assert sorted(p.name for p in (ddp_run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml",
                                                                       "overrides.yaml"]
    assert not list(ddp_run.glob("**/*.tmp")) and not (ddp_run / "error.txt").exists()
    log = (ddp_run / "train.log").read_text()
    assert log.count("done in") == 1 and "2 processes" in log
    state = load_checkpoint(ddp_run / "checkpoints" / "last.pt")
    assert sorted(state["ranks"]) == ["0", "1"]  # each rank's RNG and loss window, for exact resume


def test_ddp_kill_and_resume_matches_the_uninterrupted_run(ddp_run, tmp_path):
    killed = tmp_path / "killed"
    proc = torchrun([*DDP, PER_PROCESS, f"hydra.run.dir={killed}"], tmp_path, start_new_session=True,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt, deadline = killed / "checkpoints" / "last.pt", time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()
    assert not (killed / "summary.json").exists(), "the run finished before it could be killed"
    assert 0 < int(load_checkpoint(ckpt)["step"]) < 200
    finish(torchrun([*DDP, PER_PROCESS, f"hydra.run.dir={killed}", "resume=true"], tmp_path,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    assert read_summary(killed)["metrics"] == read_summary(ddp_run)["metrics"]
    assert _records(killed) == _records(ddp_run)


def test_resume_with_another_number_of_processes_is_refused(ddp_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ddp_run, copy)
    with pytest.raises(DlfpError, match=r"written by 2 process\(es\) and this run has 1; resume with "
                                        r"torchrun --nproc_per_node=2"):
        run_inprocess([*DDP, PER_PROCESS, "resume=true", "train.steps=220"], copy)


def test_task_that_cannot_run_data_parallel_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DlfpError, match="task scratch_nn cannot run data-parallel .* without torchrun"):
        run_inprocess(["experiment=mnist_nn_numpy", "train.steps=1"], tmp_path / "run")


def test_ranks_from_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert ranks_from_environment() == Ranks(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ranks_from_environment() == Ranks(3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(DlfpError, match=r"RANK=4 must lie in \[0, WORLD_SIZE=4\)"):
        ranks_from_environment()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(DlfpError, match="must be integers"):
        ranks_from_environment()


def test_sync_batchnorm_on_cpu_is_refused():
    from omegaconf import OmegaConf

    from dlfp.engine.hardware import setup_hardware

    cfg = OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False, "channels_last": False,
                            "deterministic": True, "sync_batchnorm": True})
    with pytest.raises(DlfpError, match="sync_batchnorm=true needs CUDA"):
        setup_hardware(cfg, Ranks(0, 2, 0))


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # 13 s; the config and SLURM's variables are checked in the default suite
def test_submitit_job_of_two_tasks_trains_data_parallel(tmp_path):
    """Hydra's submitit launcher (the local executor: SLURM's code path without a cluster) starts a
    job of 2 tasks; dlfp derives torchrun's variables from submitit's and trains as 2 ranks."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    proc = subprocess.run([sys.executable, "-m", "dlfp.train", "-m", *DDP, PER_PROCESS, "train.steps=20",
                           "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                           "hydra.launcher.timeout_min=5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = only_run_dir(tmp_path, "outputs/multirun/*/*/*")  # the job, in its own processes, used it
    summary = read_summary(sweep / "0")
    assert summary["processes"] == 2 and summary["metrics"]["steps"] == 20
    assert "1 jobs, 1 finished, 0 failed" in (sweep / "sweep_summary.md").read_text()


def test_slurm_variables_become_torchrun_ones(monkeypatch):
    pytest.importorskip("submitit", reason="pip install -e '.[slurm]'")
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]",
             "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
    monkeypatch.setattr(os, "environ", dict(slurm))
    assert ranks_from_environment() == Ranks(rank=5, world_size=8, local_rank=1)
    assert os.environ["MASTER_ADDR"] == "gpu07" and int(os.environ["MASTER_PORT"]) > 0


def test_the_slurm_ddp_launcher_config_composes_with_its_settings():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    from conftest import compose_config

    cfg = compose_config(["hydra/launcher=slurm_ddp", "hydra.launcher.partition=gpu",
                          "hydra.launcher.gpus_per_node=8", "hydra.launcher.tasks_per_node=8"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    settings = (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes)
    assert settings == ("gpu", 8, 8, 1)


TINY_TASKS = {
    "vae": ["experiment=vae", "train.steps=20", "train.eval_every=10", "train.checkpoint_every=20",
            "vae.eval_mc_samples=4", "vae.iwae_k=[1,10]", "vae.iwae_chunk=5", "vae.num_samples=9",
            "vae.traversal.steps=3"],
    "lm": ["experiment=lm", "corpus=generated", "corpus.generated_chars=20000", "hardware.threads=1",
           "model.d_model=32", "model.heads=2", "model.head_dim=null", "model.layers=1", "model.context=16",
           "train.batch_size=8", "train.steps=20", "train.eval_every=10", "train.checkpoint_every=10",
           "lm.eval_tokens=512", "lm.sample.new_tokens=12"],
    "ddpm": ["experiment=ddpm", "hardware.threads=1", "model.widths=[8,16,16]", "model.groups=4",
             "train.steps=12", "train.eval_every=6", "train.checkpoint_every=6", "train.batch_size=16",
             "schedule.warmup_steps=2", "model.timesteps=40", "ddpm.grid_images=8",
             "ddpm.grid_sampler_steps=5", "ddpm.loss_images=40", "ddpm.loss_buckets=4"],
}


@pytest.mark.slow  # the classifier runs in the default suite above
@pytest.mark.parametrize("task", sorted(TINY_TASKS))
def test_every_data_parallel_task_runs_under_torchrun(task, tmp_path):
    """The VAE's loss calls encode/decode, not forward: DDP still sees it (LossOf)."""
    run_dir = tmp_path / "run"
    finish(torchrun([*TINY_TASKS[task], "hardware=cpu", f"paths.cache_dir={tmp_path / 'cache'}",
                     f"hydra.run.dir={run_dir}"], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    summary = read_summary(run_dir)
    assert summary["processes"] == 2 and summary["task"] == task
    assert all(v == v for v in summary["metrics"].values())  # no NaN
    keys = [(r["step"], r["split"]) for r in _records(run_dir)]
    assert len(keys) == len(set(keys))
