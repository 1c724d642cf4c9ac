"""The command-line tools (dlfp-generate, scripts/ddpm_sample.py, scripts/vae_sample.py,
dlfp-reproduce) and the limits they share with the config: a flag is read and bounded as the config
key it stands for (one definition), bad input is one ``error:`` line and exit 1 before any
checkpoint loads, and a failure leaves no file or folder behind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_ddpm import _script

from dlfp import reproduce
from dlfp.config import GROUP_SCHEMAS
from dlfp.config.checks import option_type
from dlfp.config.ddpm import DDPMSectionConfig, QualityConfig
from dlfp.config.lm import SampleConfig
from dlfp.config.transforms import TRANSFORM_OPTIONS
from dlfp.data.tokenizer import train_tokenizer
from dlfp.engine.checkpoint import save_checkpoint
from dlfp.generate import main as generate
from dlfp.generate import unknown_characters
from dlfp.models.diffusion import Diffusion
from dlfp.models.transformer import TransformerLM

ddpm_sample = _script("ddpm_sample")
vae_sample = _script("vae_sample")


def _one_error_line(tool, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The tool's stderr when it refuses ``argv``: exit 1, one ``error:`` line, no traceback."""
    try:
        code = tool(argv)
    except SystemExit as e:  # argparse's refusal
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["--temperature", "-1"], "argument --temperature: -1 must be >= 0"),
    (["--temperature", "inf"], "argument --temperature: inf must be a finite number >= 0"),
    (["--top-p", "2"], "argument --top-p: 2 must be > 0 and <= 1"),
    (["--top-p", "0"], "argument --top-p: 0 must be > 0 and <= 1"),
    (["--top-k", "0"], "argument --top-k: 0 must be >= 1"),
    (["--top-k", "-3"], "argument --top-k: -3 must be >= 1"),
    (["--top-k", "2.5"], "argument --top-k: 2.5 must be an integer >= 1 or null"),
    (["--new-tokens", "-5"], "argument --new-tokens: -5 must be >= 1"),
    (["--threads", "0"], "argument --threads: 0 must be >= 1"),
    (["--seed", "-1"], "argument --seed: -1 must be >= 0 and < 9223372036854775808"),
    (["--bogus"], "unrecognized arguments: --bogus; see dlfp-generate --help"),
])
def test_dlfp_generate_refuses_what_lm_sample_refuses(tmp_path: Path, argv, message, capsys) -> None:
    err = _one_error_line(generate, [str(tmp_path / "no run"), *argv], capsys)
    assert message in err  # before the (missing) checkpoint is looked at


@pytest.mark.parametrize(("argv", "message"), [
    (["--eta", "-1"], "argument --eta: -1 must be >= 0 and <= 1"),
    (["--eta", "nan"], "argument --eta: nan must be a finite number >= 0 and <= 1"),
    (["--n", "0"], "argument --n: 0 must be >= 1"),
    (["--n", "-2"], "argument --n: -2 must be >= 1"),
    (["--threads", "0"], "argument --threads: 0 must be >= 1"),
    (["--steps", "0"], "argument --steps: 0 must be >= 1"),
    (["--samples", "1"], "argument --samples: 1 must be >= 2"),
    (["--ddim-steps", "10", "0"], "argument --ddim-steps: 0 must be >= 1"),
    (["--sampler", "euler"], "argument --sampler: invalid choice: 'euler'"),
])
def test_ddpm_sample_refuses_what_the_ddpm_section_refuses(tmp_path: Path, argv, message, capsys) -> None:
    err = _one_error_line(ddpm_sample.main, [str(tmp_path / "no run"), *argv], capsys)
    assert message in err


def test_ddpm_sample_checks_where_it_writes_before_loading_anything(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    missing = str(tmp_path / "no run")  # the errors below are found before this is
    cases = [(["--out", str(a_file / "grid.png")], f"grid.png: its folder {a_file} is not a directory"),
             (["--out", str(tmp_path / "grid.xyz")], "matplotlib writes no .xyz files"),
             (["--out", str(tmp_path)], "is a folder"),
             (["--trajectory", str(a_file / "t.png")], "--trajectory "),
             (["--quality", "judge", "--out-dir", str(a_file / "q")], f"--out-dir {a_file / 'q'} lies under")]
    for argv, message in cases:
        assert message in _one_error_line(ddpm_sample.main, [missing, *argv], capsys), argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--n", "0"], "argument --n: 0 must be >= 1"),
    (["--seed", "-1"], "argument --seed: -1 must be >= 0 and < 9223372036854775808"),
    (["--threshold", "1.5"], "argument --threshold: 1.5 must be > 0 and < 1"),
    (["--threshold", "nan"], "argument --threshold: nan must be a finite number > 0 and < 1"),
    (["--out", "/proc/x/samples.png"], "--out /proc/x/samples.png: its folder /proc/x cannot be created"),
    (["--out", "samples.xyz"], "matplotlib writes no .xyz files"),
])
def test_vae_sample_refuses_what_the_vae_section_refuses(tmp_path: Path, argv, message, capsys) -> None:
    err = _one_error_line(vae_sample.main, [str(tmp_path / "no run"), *argv], capsys)
    assert message in err  # before the (missing) checkpoint is looked at
    assert not any(tmp_path.iterdir())


def _checkpoint(path: Path, config: dict, model_cls: type, model_args: dict, task_state: dict) -> Path:
    """A checkpoint as the driver writes it, of an untrained ``model_cls(**model_args)``."""
    model_config = {"_target_": f"{model_cls.__module__}.{model_cls.__name__}", **model_args}
    save_checkpoint(path, {"config": json.dumps(config), "model_config": json.dumps(model_config),
                           "update": {"model": model_cls(**model_args).state_dict()}, "task": task_state})
    return path


@pytest.fixture(scope="module")
def tiny_ddpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DDPM checkpoint of an untrained diffusion model (8-channel UNet) with T = 10."""
    ddpm = OmegaConf.to_container(OmegaConf.structured(DDPMSectionConfig()), enum_to_str=True)
    config = {"task": "ddpm", "seed": 0, "ddpm": ddpm, "hardware": {"device": "cpu", "threads": 1},
              "dataset": {"name": "mnist"}, "paths": {"data_dir": "data"}}
    return _checkpoint(tmp_path_factory.mktemp("ddpm") / "last.pt", config, Diffusion,
                       {"timesteps": 10, "noise": "linear", "image_size": 28, "in_channels": 1,
                        "widths": [8, 8, 8], "groups": 4}, {})


def test_ddpm_sample_writes_only_the_figures_asked_for(tiny_ddpm: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert ddpm_sample.main([str(tiny_ddpm), "--steps", "2", "--n", "2", "--trajectory", "t/d.png"]) == 0
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")] == ["t", "t/d.png"]
    assert "wrote 2 samples to t/d.png" in capsys.readouterr().out
    assert ddpm_sample.main([str(tiny_ddpm), "--steps", "2", "--n", "2"]) == 0  # no figure named: the grid
    assert (tmp_path / "ddpm_samples.png").is_file()


def test_ddpm_sample_quality_with_a_missing_classifier_leaves_no_folder(tiny_ddpm: Path, tmp_path: Path,
                                                                        capsys) -> None:
    out_dir = tmp_path / "quality"
    err = _one_error_line(ddpm_sample.main, [str(tiny_ddpm), "--quality", str(tmp_path / "judge"),
                                             "--out-dir", str(out_dir)], capsys)
    assert "ddpm.quality.classifier" in err and "no checkpoint" in err
    assert not out_dir.exists()
    steps = _one_error_line(ddpm_sample.main, [str(tiny_ddpm), "--steps", "11"], capsys)
    assert "--steps 11: DDIM takes at most the run's T=10 steps" in steps
    ancestral = _one_error_line(ddpm_sample.main, [str(tiny_ddpm), "--sampler", "ddpm", "--steps", "5"],
                                capsys)
    assert "--steps 5: ancestral DDPM runs all T=10 steps" in ancestral


def test_option_type_reads_a_flag_as_the_config_reads_its_key() -> None:
    assert option_type(SampleConfig, "top_k")("null") is None  # top_k may be null
    assert option_type(SampleConfig, "temperature")("0") == 0.0
    assert option_type(QualityConfig, "ddim_steps")("20") == 20  # one element of a list field
    with pytest.raises(Exception, match="must be an integer >= 1$"):
        option_type(SampleConfig, "new_tokens")("null")  # new_tokens may not


def test_prompt_characters_the_tokenizer_lacks_are_named(tmp_path: Path, capsys) -> None:
    tokenizer = train_tokenizer("char", "to be or not to be, that is the question\n" * 20)
    assert unknown_characters(tokenizer, "To be, 你好 to be!") == ["T", "你", "好", "!"]
    assert unknown_characters(tokenizer, "to be") == []
    config = {"task": "lm", "lm": {"sample": dataclasses.asdict(SampleConfig())}}
    path = _checkpoint(tmp_path / "last.pt", config, TransformerLM,
                       {"vocab_size": tokenizer.get_vocab_size(), "d_model": 8, "heads": 1, "layers": 1,
                        "context": 16}, {"tokenizer": {"json": tokenizer.to_str()}})
    assert generate([str(path), "--prompt", "To be!", "--new-tokens", "3"]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == ("warning: the tokenizer has no token for 'T', '!': the prompt 'To be!' goes to "
                           "the model without them")
    assert "--- To be!  (3 tokens in" in out


def test_dlfp_reproduce_help_prints_usage(capsys) -> None:
    assert reproduce.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dlfp-reproduce [size=smoke|cpu|gpu]") and "parts: mnist" in out


def _schemas() -> list[type]:
    found = [s for options in GROUP_SCHEMAS.values() for s in options.values()]
    found += list(TRANSFORM_OPTIONS.values())
    nested = [f.default_factory for s in found for f in dataclasses.fields(s)
              if dataclasses.is_dataclass(f.default_factory) and isinstance(f.default_factory, type)]
    return found + nested


def test_a_schema_subclass_keeps_the_ranges_its_parents_declare() -> None:
    """A field redeclared in a subclass (to change its default) must keep the parent's ``limit``
    (AdamW's weight_decay once lost its >= 0)."""
    checked = 0
    for schema in _schemas():
        for parent in schema.__mro__[1:]:
            if not dataclasses.is_dataclass(parent):
                continue
            own = {f.name: f.metadata.get("bounds") for f in dataclasses.fields(schema)}
            for field in dataclasses.fields(parent):
                if field.metadata.get("bounds"):
                    checked += 1
                    assert own[field.name] == field.metadata["bounds"], f"{schema.__name__}.{field.name}"
    assert checked >= 4  # AdamW's four

