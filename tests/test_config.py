"""Config composition of every experiment, and schema errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, compose_config, run_cli
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(name: str) -> None:
    cfg = compose_config([f"experiment={name}"])
    assert cfg.experiment_name == name
    assert cfg.task
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    job.paths.output_dir = "/tmp/run"  # set by Hydra at run time
    OmegaConf.to_container(job, resolve=True)  # every other interpolation resolves


def test_a_composed_config_resolves_outside_a_run_as_cfg_job_resolve_prints_it() -> None:
    """``dlfp-train --cfg job --resolve`` has no run directory yet: paths.output_dir is null, not
    a traceback."""
    cfg = compose_config(["experiment=vae"])
    job = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    assert job["paths"]["output_dir"] is None and job["experiment_name"] == "vae"
    assert not {"tokenizer", "corpus", "lm", "ddpm"} & set(job)  # groups vae does not use are absent


def test_default_experiment_is_the_offline_mnist_network() -> None:
    cfg = compose_config([])
    assert cfg.experiment_name == "mnist_nn_torch"
    assert cfg.dataset.name == "mnist5k"
    assert (cfg.train.batch_size, cfg.optimizer.lr, cfg.train.steps) == (32, 0.1, 10000)


def _composition_error(overrides: list[str]) -> str:
    with pytest.raises((ConfigCompositionException, MissingConfigException, ValidationError,
                        ConfigKeyError)) as info:
        compose_config(overrides)
    err = info.value
    return f"{err} {err.__cause__ or ''}"


def test_typo_in_override_names_the_key() -> None:
    msg = _composition_error(["optimizer.lrr=0.1"])
    assert "lrr" in msg


def test_typo_in_train_section_names_the_key() -> None:
    assert "stepz" in _composition_error(["train.stepz=3"])


def test_wrong_type_names_the_key() -> None:
    msg = _composition_error(["optimizer.lr=fast"])
    assert "optimizer.lr" in msg and "fast" in msg


def test_enum_value_lists_the_choices() -> None:
    msg = _composition_error(["hardware.device=tpu"])
    assert "tpu" in msg and "cuda" in msg


def test_unknown_experiment_lists_the_available_ones() -> None:
    msg = _composition_error(["experiment=mnist_nn_tortch"])
    assert "experiment/mnist_nn_tortch" in msg and "mnist_nn_torch" in msg


def test_schema_error_from_cli_is_one_message_without_traceback(tmp_path: Path) -> None:
    proc = run_cli(["optimizer.lrr=0.1", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "Key 'lrr' not in 'SGDConfig'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def _schema_of(option: dict) -> tuple[str, str] | None:
    """(group, name) of the schema an option file extends (``- /schema/<group>@_here_: <name>``)."""
    for entry in option.get("defaults") or []:
        for key, name in (entry.items() if isinstance(entry, dict) else []):
            if key.startswith("/schema/") and key.endswith("@_here_"):
                return key[len("/schema/"):-len("@_here_")], name
    return None


def test_no_option_file_restates_its_schemas_default() -> None:
    """One home per default: an option file states only what differs from its schema's defaults, so
    changing a default in the schema cannot be silently undone by a stale copy in YAML."""
    import yaml

    from dlfp.config import GROUP_SCHEMAS

    restated = []
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        option = yaml.safe_load(path.read_text()) or {}
        schema = _schema_of(option)
        if schema is None:
            continue
        defaults = OmegaConf.to_container(OmegaConf.structured(GROUP_SCHEMAS[schema[0]][schema[1]]),
                                          resolve=False, enum_to_str=True)
        restated += [f"{path.relative_to(ROOT)}: {key}" for key, value in option.items()
                     if key not in ("defaults", "_target_") and key in defaults and defaults[key] == value]
    assert not restated, restated


def test_every_config_enum_is_a_str_enum_whose_names_are_its_values() -> None:
    """Tasks compare and look up config choices as strings (``TARGETS[cfg.dataset.target]``): a
    StrEnum equals its value, but hashes by its name, so the two must be the same."""
    import enum
    import importlib
    import pkgutil

    import dlfp.config

    enums = []
    for info in pkgutil.iter_modules(dlfp.config.__path__):
        module = importlib.import_module(f"dlfp.config.{info.name}")
        enums += [o for o in vars(module).values() if isinstance(o, type) and issubclass(o, enum.Enum)
                  and o.__module__ == module.__name__]
    assert enums
    for kind in enums:
        assert issubclass(kind, enum.StrEnum), kind
        assert all(member.name == member.value for member in kind), kind
