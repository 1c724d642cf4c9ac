"""Scoped settings (dlfp/config/scope.py): a value for a section or key the selected experiment's
task does not read is one error naming it, before any data loads; every shipped config passes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY_MNIST, compose_config, run_cli, run_inprocess, without_hydra

from dlfp.config.overrides import absent_section_problem, moved_key_problem
from dlfp.config.scope import DRIVER_KEYS, SCOPED, check_scope, scope_problems
from dlfp.config.train import TrainLoopConfig
from dlfp.errors import DlfpError
from dlfp.tasks import READS, TASKS, task_reads
from dlfp.tasks.compare import compose_experiment
from dlfp.train import cli

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def _problems(overrides: list[str]) -> list[str]:
    cfg = without_hydra(compose_config(overrides))
    return scope_problems(cfg, task_reads(cfg.task))


def _error(overrides: list[str]) -> str:
    cfg = without_hydra(compose_config(overrides))
    with pytest.raises(DlfpError) as info:
        check_scope(cfg, task_reads(cfg.task))
    return str(info.value)


# the ignored settings: (overrides, what the one error line must say)
IGNORED = [
    (["experiment=mnist_svm", "dataset.augment=[hflip]"],
     "dataset.augment=[hflip] has no effect in experiment mnist_svm (task svm), which does not read it"),
    (["experiment=vae", "dataset.transforms=[standardize]"],
     "dataset.transforms=[standardize] has no effect in experiment vae (task vae)"),
    (["experiment=ddpm", "dataset.augment=[hflip]"],
     "dataset.augment=[hflip] has no effect in experiment ddpm (task ddpm)"),
    (["experiment=lm", "+classify.tta=flip"], "classify is set, but experiment lm (task lm) does not read"),
    (["tokenizer=char"], "tokenizer is set, but experiment mnist_nn_torch (task classify) does not read it"),
    (["corpus=shakespeare"], "corpus is set, but experiment mnist_nn_torch (task classify) does not read it"),
    (["experiment=lm", "dataset=mnist"], "dataset is set, but experiment lm (task lm) does not read it"),
    (["experiment=mnist_nn_numpy", "optimizer.routes=[{params:{module:norm},lr_scale:2.0}]"],
     "optimizer.routes=[{'params': {'module': 'norm'}, 'lr_scale': 2.0}] has no effect in experiment "
     "mnist_nn_numpy (task scratch_nn)"),  # the NumPy network trains with its own SGD
]


@pytest.mark.parametrize(("overrides", "message"), IGNORED, ids=[" ".join(o) for o, _ in IGNORED])
def test_an_ignored_setting_is_one_error_naming_key_and_experiment(overrides, message) -> None:
    error = _error(overrides)
    assert message in error and "remove it" in error
    assert "\n" not in error


# one experiment of each task, and a value other than the default for each scoped key (SCOPED)
EXPERIMENT_OF = {"classify": "mnist_nn_torch", "regression": "regression", "svm": "mnist_svm",
                 "compare": "mnist_compare", "scratch_nn": "mnist_nn_numpy", "vae": "vae",
                 "adversarial": "cifar_adversarial", "lm": "lm", "ddpm": "ddpm"}
SCOPED_TASKS = sorted(t for t in TASKS if not READS[t].everything)
SET = {"dataset.transforms": ["rescale"], "dataset.augment": ["hflip"],
       "optimizer.routes": [{"params": {"module": "norm"}, "lr_scale": 2.0}]}


@pytest.mark.parametrize("task", SCOPED_TASKS)
def test_every_task_refuses_each_scoped_key_it_does_not_read(task: str) -> None:
    reads = READS[task]
    cfg = without_hydra(compose_config([f"experiment={EXPERIMENT_OF[task]}"]))
    assert cfg.task == task
    for key, value in SET.items():
        section, name = key.split(".")
        if name not in (cfg.get(section) or {}):  # no such section, or one without the key (1-D data)
            continue
        changed = cfg.copy()
        changed[section][name] = value
        read = name in reads.keys.get(section, frozenset())
        assert [p.split("=")[0] for p in scope_problems(changed, reads)] == ([] if read else [key]), key


@pytest.mark.parametrize("task", SCOPED_TASKS)
def test_every_task_refuses_an_unread_section(task: str) -> None:
    section = next(s for s in ("tokenizer", "dataset") if s not in READS[task].sections)
    overrides = {"tokenizer": "tokenizer=char", "dataset": "dataset=mnist"}[section]
    assert any(p.startswith(f"{section} is set") for p in _problems([f"experiment={EXPERIMENT_OF[task]}",
                                                                      overrides]))


@pytest.mark.parametrize("debug", [[], ["debug=smoke"]], ids=["shipped", "smoke"])
def test_every_experiment_reads_everything_its_config_holds(debug: list[str]) -> None:
    for name in EXPERIMENTS:
        assert _problems([f"experiment={name}", *debug]) == [], name


def test_a_value_of_a_read_key_passes_and_a_default_of_an_unread_one_too() -> None:
    assert _problems(["experiment=cifar_fast", "classify.tta=flip", "classify.label_smoothing=0.1"]) == []
    assert _problems(["experiment=mnist_svm", "dataset.augment=[]"]) == []
    assert _problems(["experiment=ddpm", "dataset.transforms=[standardize]"]) == []


def test_every_task_declares_what_it_reads_and_every_scoped_key_is_read() -> None:
    assert set(READS) == set(TASKS) == set(EXPERIMENT_OF)
    assert set(SET) == {f"{section}.{key}" for section, keys in SCOPED.items() for key in keys}
    assert DRIVER_KEYS == {f.name for f in dataclasses.fields(TrainLoopConfig)}  # train: the driver's alone
    for section, keys in SCOPED.items():
        assert set(keys) == set().union(*(r.keys.get(section, ()) for r in READS.values())), section


def test_an_ignored_setting_through_the_cli_is_one_line_exit_1_before_any_data(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_cli([*TINY_MNIST, "train.steps=5", "corpus=shakespeare", f"hydra.run.dir={run_dir}"],
                   cwd=tmp_path, check=False, env={"DLFP_DATA": str(tmp_path / "nodata")})
    assert proc.returncode == 1
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert lines[-1].startswith("error: corpus is set, but experiment mnist_nn_torch (task classify)"), lines
    assert not (tmp_path / "nodata").exists() and not (run_dir / "metrics.jsonl").exists()


def test_compare_refuses_an_override_none_of_its_experiments_reads_before_running_any(tmp_path: Path) -> None:
    with pytest.raises(DlfpError, match=r"^tokenizer=char: none of compare.experiments \(mnist_svm, "
                                        r"mnist_nn_numpy, mnist_nn_torch\) reads it"):
        run_inprocess(["experiment=mnist_compare", "tokenizer=char"], tmp_path / "run")
    assert not (tmp_path / "run" / "mnist_svm").exists()


def test_compare_forwards_classify_options_to_the_classifier_alone() -> None:
    forwarded = ["classify.tta=flip", "train.steps=5"]
    torch_cfg, torch_overrides = compose_experiment("mnist_nn_torch", forwarded, [])
    assert torch_overrides == ["experiment=mnist_nn_torch", *forwarded] and torch_cfg.classify.tta == "flip"
    assert compose_experiment("mnist_nn_numpy", forwarded, [])[1] == ["experiment=mnist_nn_numpy",
                                                                      "train.steps=5"]


def test_compare_refuses_a_bad_classify_value_before_running_any(tmp_path: Path) -> None:
    # the SVM would have run first (minutes on real data) before the network's run refused it
    with pytest.raises(DlfpError, match=r"classify.label_smoothing=1.0 must be >= 0 and < 1"):
        run_inprocess(["experiment=mnist_compare", "classify.label_smoothing=1"], tmp_path / "run")
    assert not (tmp_path / "run" / "mnist_svm").exists()


# the ignored classification settings: train has no such keys now; each override names
# where the key lives, in one line, before Hydra composes anything
MOVED_CASES = [["experiment=lm", "train.tta=flip"], ["experiment=lm", "train.label_smoothing=0.1"],
               ["experiment=lm", "train.adversarial=pgd"], ["experiment=lm", "train.eval_splits=[test]"],
               ["experiment=vae", "train.tta=flip"], ["experiment=regression", "train.tta=flip_translate"],
               ["experiment=cifar_fast", "+train.adversarial_eps=4"]]


@pytest.mark.parametrize("overrides", MOVED_CASES, ids=[" ".join(o) for o in MOVED_CASES])
def test_a_classification_key_under_train_says_where_it_lives(overrides: list[str]) -> None:
    key, value = overrides[1].lstrip("+").split("=")
    name = key.split(".")[1]
    assert moved_key_problem(overrides) == (f"{key} is not a setting of train; classification's options "
                                            f"are under classify.*: use classify.{name}={value}")
    assert moved_key_problem([overrides[0], f"classify.{name}={value}"]) is None


def test_the_console_script_refuses_a_moved_key_in_one_line_before_hydra(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["dlfp-train", "experiment=lm", "train.tta=flip"])
    with pytest.raises(SystemExit) as exited:  # sys.exit(message): the message on stderr, status 1
        cli()
    assert exited.value.code == ("error: train.tta is not a setting of train; classification's options "
                                 "are under classify.*: use classify.tta=flip")
    assert not list(tmp_path.iterdir())


def test_a_transform_key_under_train_says_it_moved_to_dataset() -> None:
    assert moved_key_problem(["experiment=mnist_svm", "train.augment=[hflip]"]) == (
        "train.augment is not a setting of train; the per-batch transforms and augmentation are under "
        "dataset.*: use dataset.augment=[hflip]")
    problem = moved_key_problem(["+train.transforms=[standardize]"])
    assert problem is not None and problem.endswith("use dataset.transforms=[standardize]")


@pytest.mark.parametrize(("args", "message"), [
    (["experiment=lm", "classify.tta=flip"], "classify.tta=flip: experiment lm has no classify section"),
    (["experiment=mnist_svm", "train.steps=5"], "train.steps=5: experiment mnist_svm has no train section"),
    (["-m", "experiment=lm", "dataset.augment=[hflip]", "seed=0,1"],
     "dataset.augment=[hflip]: experiment lm has no dataset section"),
    (["experiment=vae", "vae.mc_samples=2", "train.steps=5"], None),  # sections it has
    (["-m", "experiment=lm,vae", "vae.mc_samples=2"], None),  # two experiments: Hydra and the scope judge
    (["experiment=lm", "+classify.tta=flip"], None),  # added: the scope check refuses it, in one line too
])
def test_a_key_under_a_section_the_experiment_lacks_is_one_line_before_hydra(args, message) -> None:
    """Hydra's refusal takes five lines and suggests +key=value (which the scope check refuses)."""
    problem = absent_section_problem(args)
    assert problem == message if message is None else problem.startswith(message) and "remove it" in problem
