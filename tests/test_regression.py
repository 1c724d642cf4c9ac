"""The regression experiment, its n-sweep through the real CLI, and the sweep report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_config, only_run_dir, run_cli, run_inprocess
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict
from torch import nn

from dlfp.data.regression1d import make_regression1d, sin_10pi_x4
from dlfp.engine.checkpoint import load_checkpoint
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.optim import param_groups
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.eval.grid_errors import Grid
from dlfp.models.mlp import MLP
from dlfp.models.mlp_sgd import MLPSGDStep, manual_step
from dlfp.report import main as report_main

CPU = setup_hardware(OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False,
                                       "channels_last": False, "threads": None, "deterministic": True}))
NO_EXTRAS = OmegaConf.create({"grad_clip": None, "accumulate": 1})
TINY = ["experiment=regression", "hardware=cpu", "train.steps=60", "train.log_every=20",
        "train.eval_every=40"]


def test_mlp_counts_hidden_layers_as_depth():
    net = MLP(depth=3, width=256)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1, 256), (256, 256), (256, 256), (256, 1)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    assert net(torch.zeros(7, 1)).shape == (7, 1)


def make_update(net: MLP, optimizer: torch.optim.Optimizer, fast: bool) -> TorchUpdate:
    """The regression task's update: the hand-written step when ``fast`` and it applies."""
    fast_step = manual_step(net, optimizer) if fast else None
    return TorchUpdate(net, optimizer, CPU, NO_EXTRAS, manual_step=fast_step)


def test_mlp_loss_is_the_mean_squared_error():
    torch.manual_seed(0)
    net, x, y = MLP(depth=1, width=8), torch.rand(6, 1), torch.rand(6, 1)
    assert torch.equal(net.loss({"x": x, "y": y}), ((net(x) - y) ** 2).mean())


def test_mlp_standardises_its_input_with_saved_buffers():
    net = MLP(depth=1, width=8, input_mean=0.5, input_std=0.25)
    x = torch.rand(5, 1)
    torch.testing.assert_close(net(x), net.layers((x - 0.5) / 0.25))
    assert float(net.state_dict()["input_std"]) == 0.25
    with pytest.raises(ValueError, match="input_std"):
        MLP(input_std=0.0)


@pytest.mark.parametrize("sgd", [
    {"momentum": 0.9},  # the study's recipe
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    {"momentum": 0.5, "dampening": 0.3, "weight_decay": 1e-2},
    {"momentum": 0.0},
])
def test_hand_written_step_matches_autograd_and_torch_sgd(sgd):
    """Update for update, with a changing lr and weight decay on the weights only."""
    torch.manual_seed(0)
    nets = [MLP(depth=2, width=32, input_mean=0.5, input_std=0.3)]
    nets.append(MLP(depth=2, width=32, input_mean=0.5, input_std=0.3))
    nets[1].load_state_dict(nets[0].state_dict())
    updates = []
    for net, fast in zip(nets, (False, True)):
        optimizer = torch.optim.SGD(param_groups(net, sgd.get("weight_decay", 0.0)), lr=0.05,
                                    **{k: v for k, v in sgd.items() if k != "weight_decay"})
        updates.append(make_update(net, optimizer, fast))
    assert updates[0].manual_step is None and updates[1].manual_step is not None
    for step in range(12):
        x = torch.rand(7, 1)
        y = sin_10pi_x4(x)
        losses = []
        for update in updates:
            update.set_lr(1 / (1 + step))  # the driver's schedule mechanism
            losses.append(update({"x": x, "y": y})[0])
        torch.testing.assert_close(losses[1], losses[0])  # both report the batch MSE
    assert not torch.equal(nets[0].layers[0].weight, MLP(depth=2, width=32).layers[0].weight)
    for (name, a), b in zip(nets[0].state_dict().items(), nets[1].state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)


def test_other_optimisers_and_models_update_through_autograd():
    net = MLP(depth=1, width=8)
    assert not MLPSGDStep.supports(net, torch.optim.Adam(net.parameters()))
    assert not MLPSGDStep.supports(nn.Sequential(nn.Linear(1, 1)), torch.optim.SGD(net.parameters(), lr=0.1))
    before = net.layers[0].weight.clone()
    update = make_update(net, torch.optim.Adam(net.parameters(), lr=0.1), True)
    assert update.manual_step is None
    update({"x": torch.rand(4, 1), "y": torch.rand(4, 1)})
    assert not torch.equal(before, net.layers[0].weight)


class _Shifted(nn.Module):
    """f(x) = f*(x) + slope * x: its largest error on [0, b] is slope * b, at x = b."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sin_10pi_x4(x.double()).float() + self.slope * x


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def test_grid_errors_of_a_known_function():
    grid = Grid(0.0, 1.0, 1.5, 2001, torch.device("cpu"))
    assert grid.x.shape == (3001, 1)
    assert grid.x[2000].item() == pytest.approx(1.0) and grid.x[-1].item() == pytest.approx(1.5)
    errors = grid.errors(_Shifted(0.25), sin_10pi_x4)
    assert errors.delta_in == pytest.approx(0.25, abs=1e-5)
    assert errors.delta_out == pytest.approx(0.375, abs=1e-5)
    exact = grid.errors(_Shifted(0.0), sin_10pi_x4)
    assert exact.delta_in < 1e-5 and exact.delta_out < 1e-5
    # the zero function misses f* by max |sin| = 1, which a grid of spacing 5e-4 attains to 1e-3
    zero = grid.errors(_Zero(), sin_10pi_x4)
    assert zero.delta_in == pytest.approx(1.0, abs=1e-3) and zero.delta_out == pytest.approx(1.0, abs=1e-3)


def test_data_is_seeded_and_checked():
    a = make_regression1d("sin_10pi_x4", 50, 0.0, 0.0, 1.0, seed=3)
    b = make_regression1d("sin_10pi_x4", 50, 0.0, 0.0, 1.0, seed=3)
    c = make_regression1d("sin_10pi_x4", 50, 0.0, 0.0, 1.0, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.x, c.x)
    assert a.x.shape == (50, 1) and 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert torch.allclose(a.y, sin_10pi_x4(a.x.double()).float(), atol=1e-6)
    noisy = make_regression1d("sin_10pi_x4", 50, 0.1, 0.0, 1.0, seed=3)
    assert torch.equal(noisy.x, a.x) and 0.05 < (noisy.y - a.y).std() < 0.2
    with pytest.raises(DlfpError, match="dataset.target='cos'"):
        make_regression1d("cos", 50, 0.0, 0.0, 1.0, seed=0)
    with pytest.raises(DlfpError, match="dataset.n=0"):
        make_regression1d("sin_10pi_x4", 0, 0.0, 0.0, 1.0, seed=0)


@pytest.mark.parametrize("override, key", [
    ("dataset.nn=5", "nn"),
    ("train.stop_losz=1e-3", "stop_losz"),
    ("train.stop_loss=small", "stop_loss"),
    ("model.depth=three", "depth"),
])
def test_config_errors_name_the_key(override, key):
    with pytest.raises(HydraException, match=key):
        compose_config(["experiment=regression", override])


def test_sweep_config_composes_and_plain_run_is_unchanged():
    plain = compose_config([])
    assert plain.task == "classify" and not plain.hydra.sweeper.params
    assert not plain.hydra.launcher._target_.endswith("JoblibLauncher")
    cfg = compose_config(["experiment=regression", "sweep=regression_n"])
    assert cfg.hardware.threads == 1
    assert cfg.hydra.sweeper.params["dataset.n"].split(",")[::19] == ["1000", "10"]
    assert len(cfg.hydra.sweeper.params["dataset.n"].split(",")) == 20
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.callbacks.sweep_report._target_ == "dlfp.report.SweepReport"


def test_tiny_run_is_deterministic_and_stops_at_tolerance(tmp_path):
    mini = TINY + ["dataset.n=16", "regression.full_batch=false", "train.batch_size=5"]
    first = run_inprocess(mini, tmp_path / "a")
    second = run_inprocess(mini, tmp_path / "b")
    other = run_inprocess(mini + ["seed=1"], tmp_path / "c")
    assert first["metrics"] == second["metrics"]
    assert first["metrics"] != other["metrics"]
    assert set(first["metrics"]) == {"train_mse", "delta_in", "delta_out", "steps"}
    assert first["metrics"]["steps"] == 60
    assert first["metrics"]["delta_out"] >= first["metrics"]["delta_in"] > 0
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [0, 20, 40, 60]
    assert [r["step"] for r in records if r["split"] == "grid"] == [0, 40, 60]
    assert (tmp_path / "a" / "plots" / "fit.png").stat().st_size > 0
    assert (tmp_path / "a" / "plots" / "loss.png").stat().st_size > 0
    weights = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["update"]["model"]
    assert float(weights["input_mean"]) == 0.5  # standardised by U[0, 1]'s moments
    assert float(weights["input_std"]) == pytest.approx(12 ** -0.5)
    # autograd updates give the same run as the hand-written step
    autograd = run_inprocess(mini + ["regression.fast_mlp_step=false"], tmp_path / "e")
    assert autograd["metrics"] == first["metrics"]
    # a loose tolerance stops at the first check, and the returned MSE honours it
    loose = run_inprocess(TINY + ["dataset.n=16", "train.stop_loss=10"], tmp_path / "d")
    assert loose["metrics"]["steps"] == 0 and loose["metrics"]["train_mse"] <= 10


def test_bad_settings_raise_clear_errors(tmp_path):
    with pytest.raises(DlfpError, match="extrapolate_to"):
        run_inprocess(TINY + ["regression.extrapolate_to=0.5"], tmp_path / "a")
    with pytest.raises(DlfpError, match="NaN or infinite"):
        run_inprocess(TINY + ["dataset.n=8", "optimizer.lr=1e6"], tmp_path / "b")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_sweep_through_the_cli_with_joblib_writes_the_report(tmp_path):
    proc = run_cli(["-m", "experiment=regression", "sweep=regression_n", "dataset.n=5,8,12", "seed=0,1",
                    "train.steps=40", "train.log_every=20", "train.eval_every=20", "hydra.launcher.n_jobs=2"],
                   cwd=tmp_path, timeout=240)
    # the default sweep directory, named by the start time: the jobs (in joblib's worker processes)
    # write into the one the report reads
    sweep = only_run_dir(tmp_path, "outputs/multirun/regression/*/*")
    assert "JoblibLauncher" in proc.stdout + proc.stderr or "Joblib" in proc.stdout + proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 6
    for job in jobs:
        assert json.loads((job / "summary.json").read_text())["metrics"]["steps"] == 40
        assert (job / "plots" / "fit.png").exists() and (job / "plots" / "loss.png").exists()
    rows = _rows(sweep / "sweep_summary.csv")
    assert [r["dataset.n"] for r in rows] == ["5", "8", "12"]
    assert all(r["trials_ok"] == "2" and r["failed"] == "0" and r["missing"] == "0" for r in rows)
    per_job = {(r["dataset.n"], r["seed"]): r for r in _rows(sweep / "sweep_jobs.csv")}
    assert len(per_job) == 6
    n5 = [float(per_job[("5", s)]["delta_in"]) for s in ("0", "1")]
    assert float(rows[0]["delta_in_mean"]) == pytest.approx(sum(n5) / 2)
    assert float(rows[0]["delta_in_std"]) == pytest.approx(abs(n5[0] - n5[1]) / math.sqrt(2))
    table = (sweep / "sweep_summary.md").read_text()
    assert "| n | train MSE | δ_in | δ_out | updates | trials ok | failed | missing |" in table
    assert table.count("| 2/2 | 0 | 0 |") == 3
    assert "| n | train MSE" in proc.stdout  # the callback prints the table
    for figure in ("delta_vs_n.png", "dataset_example.png"):
        assert (sweep / figure).stat().st_size > 0


@pytest.mark.slow  # the same for any experiment: tests/test_reliability.py runs a failing multirun by default
def test_failed_job_does_not_stop_the_sweep_or_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", "experiment=regression", "sweep=regression_n", "hydra/launcher=basic",
                    "dataset.n=0,6", "seed=0", "train.steps=20", "train.log_every=10",
                    f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=False, timeout=180)
    assert proc.returncode == 1
    assert "1 of 2 jobs failed or are missing" in proc.stderr
    assert "dataset.n=0" in (sweep / "0" / "error.txt").read_text()
    assert (sweep / "1" / "summary.json").exists()
    table = (sweep / "sweep_summary.md").read_text()
    assert "- job 0 (dataset.n=0 seed=0): failed: DlfpError: dataset.n=0" in table


def _fake_job(sweep: Path, num: int, n: int, seed: int, summary: str | None) -> None:
    """A job directory as Hydra and dlfp-train leave it, with a chosen summary.json text."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- dataset.n={n}\n- seed={seed}\n")
    cfg = compose_config(["experiment=regression", f"dataset.n={n}", f"seed={seed}"])
    with open_dict(cfg):
        del cfg["hydra"]
    OmegaConf.save(cfg, job / ".hydra" / "config.yaml")
    if summary is not None:
        (job / "summary.json").write_text(summary)


def _summary(delta_in: float) -> str:
    metrics = {"train_mse": 1e-3, "delta_in": delta_in, "delta_out": 2 * delta_in, "steps": 100.0}
    return json.dumps({"metrics": metrics})


def test_report_lists_missing_and_corrupt_jobs_as_failed(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "experiment_name: regression\n"
        "hydra:\n  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params:\n      dataset.n: 10,20\n      seed: range(3)\n  overrides:\n    task: []\n")
    _fake_job(sweep, 0, 10, 0, _summary(2.0))
    _fake_job(sweep, 1, 10, 1, None)  # crashed or killed: no summary
    _fake_job(sweep, 2, 10, 2, _summary(4.0))
    _fake_job(sweep, 3, 20, 0, '{"metrics": {"delta_in": 1.0, ')  # cut off mid-write
    _fake_job(sweep, 4, 20, 1, _summary(1.0))
    # job 5 (n=20, seed=2) never started: no directory at all

    assert report_main([str(sweep)]) == 0
    rows = {r["dataset.n"]: r for r in _rows(sweep / "sweep_summary.csv")}
    assert (rows["10"]["trials_ok"], rows["10"]["failed"], rows["10"]["missing"]) == ("2", "1", "0")
    assert (rows["20"]["trials_ok"], rows["20"]["failed"], rows["20"]["missing"]) == ("1", "1", "1")
    assert float(rows["10"]["delta_in_mean"]) == 3.0
    assert float(rows["10"]["delta_in_std"]) == pytest.approx(math.sqrt(2))
    assert rows["20"]["delta_in_std"] == ""  # one finished trial: no spread to report
    table = (sweep / "sweep_summary.md").read_text()
    assert "| 10 | 0.001 ± 0 | 3 ± 1.41 | 6 ± 2.83 | 100 ± 0 | 2/3 | 1 | 0 |" in table
    assert "| 20 | 0.001 | 1 | 2 | 100 | 1/3 | 1 | 1 |" in table
    assert "- job 1 (dataset.n=10 seed=1): failed: no summary.json" in table
    assert "- job 3 (dataset.n=20 seed=0): failed: summary.json is unreadable" in table
    assert "- job 5 (dataset.n=20 seed=2): missing: no job directory" in table
    assert (sweep / "delta_vs_n.png").stat().st_size > 0
    assert (sweep / "dataset_example.png").stat().st_size > 0
    assert "| n | train MSE" in capsys.readouterr().out


@pytest.mark.parametrize(("seeds", "title_ends"), [
    ([1, 1], "(one seed per point: no spread)"),
    ([2, 2], "(mean ± std over 2 seeds)"),
    ([2, 1], "(mean over 1–2 seeds; ± std where 2 or more)"),
])
def test_delta_vs_n_is_labelled_in_words_and_claims_a_std_only_over_seeds(
        tmp_path, monkeypatch, seeds, title_ends):
    """The legend named config keys ([x_low, extrapolate_to]) and the title promised ± std with one seed."""
    from dlfp.report import regression_figures, summarize

    drawn = {}
    monkeypatch.setattr("dlfp.viz.regression.plot_delta_vs_n",
                        lambda path, n, curves, title: drawn.update(curves=curves, title=title) or path)
    monkeypatch.setattr("dlfp.report._dataset_example", lambda report, groups: None)
    num = 0
    for n, count in zip((10, 20), seeds):
        for seed in range(count):
            job = tmp_path / str(num)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(f"- dataset.n={n}\n- seed={seed}\n")
            (job / "summary.json").write_text(_summary(1.0 + seed))
            num += 1
    regression_figures(summarize(tmp_path))
    assert drawn["title"].endswith(title_ends)
    assert list(drawn["curves"]) == ["δ_in: inside the training inputs' range",
                                     "δ_out: with the extrapolation beyond it"]
    stds = drawn["curves"]["δ_in: inside the training inputs' range"][1]
    assert [std is None for std in stds] == [count < 2 for count in seeds]  # no band from one seed


def test_report_on_a_wrong_directory_says_so(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope")]) == 1
    assert "is not a directory" in capsys.readouterr().err
    assert report_main([str(tmp_path)]) == 1
    assert "holds no job directories" in capsys.readouterr().err


def test_slurm_sweep_composes_when_the_plugin_is_installed():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')")
    cfg = compose_config(["experiment=regression", "sweep=regression_n_slurm"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.cpus_per_task == 1 and cfg.hardware.threads == 1
    assert (ROOT / "conf" / "sweep" / "regression_n_slurm.yaml").exists()


@pytest.mark.slow
def test_with_enough_updates_the_fit_holds_inside_the_support_but_not_outside(tmp_path):
    """The study's finding on one run (about 80 s on one core): 4x the sweep's update budget
    takes n=113 to interpolation; the error inside [0, 1] falls well below f*'s amplitude,
    while outside, where no data constrain the network, it stays large."""
    summary = run_inprocess(["experiment=regression", "hardware=cpu", "dataset.n=113",
                             "train.steps=48000", "train.eval_every=6000"], tmp_path / "run")
    metrics = summary["metrics"]
    assert metrics["train_mse"] < 1e-2
    assert metrics["delta_in"] < 0.6
    assert metrics["delta_out"] > 5 * metrics["delta_in"]
