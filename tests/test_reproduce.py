"""dlfp-reproduce: every part of the study, tiny, through Hydra multirun, into one report."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_summary

from dlfp import reproduce


def test_smoke_size_runs_every_part_and_reports_each_claim(tmp_path: Path, capsys) -> None:
    out = tmp_path / "repro"
    assert reproduce.main(["size=smoke", f"out={out}"]) == 0, capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "## Failed parts\n\nNone." in report
    for part in reproduce.PARTS:
        assert (out / part.name / "0" / "summary.json").exists(), part.name
        assert f"| {part.name} | " in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "`dlfp-train -m" in line]
    assert len(rows) == len([c for c in reproduce.CLAIMS if "smoke" in c.sizes])
    assert not [row for row in rows if "not measured" in row or "| failed |" in row]
    assert "| cifar_recipe | All-CNN-T parameters | 1.37M | " in report
    fast = out / "cifar_fast" / "0"  # trained on every training image: no validation split
    metrics = read_summary(fast)["metrics"]
    assert metrics["steps"] == 8 and not any(k.startswith("val/") for k in metrics)
    for figure in ("loss.png", "lr.png", "confusion.png", "augmentations.png"):
        assert (fast / "plots" / figure).is_file()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert len(figures) == sum(len(p.figures) for p in reproduce.PARTS), figures


def test_a_failed_part_is_listed_and_the_parts_needing_it_are_skipped(tmp_path: Path, capsys) -> None:
    out = tmp_path / "repro"
    broken = reproduce.Part("mnist_cnn", {"smoke": ["experiment=mnist_cnn", "train.batch_size=0"]})
    parts = {p.name: p for p in reproduce.PARTS}
    outcomes = [reproduce.run_part(broken, "smoke", out), reproduce.run_part(parts["ddpm"], "smoke", out)]
    report = reproduce.write_report(outcomes, "smoke", out, 1.0).read_text()
    assert "- **mnist_cnn**: " in report and "train.batch_size=0 must be >= 1" in report
    assert "- **ddpm**: skipped: needs the run of mnist_cnn, vae, which failed" in report


@pytest.mark.parametrize("argv, message", [
    (["size=huge"], "size=huge is not one of smoke, cpu, gpu"),
    (["parts=mnist,nope"], "unknown ['nope']"),
    (["sise=smoke"], "unknown argument 'sise=smoke'"),
    (["out=/proc/x"], "out=/proc/x cannot be created"),
])
def test_bad_arguments_are_one_line(argv: list[str], message: str, capsys) -> None:
    assert reproduce.main(argv) == 1
    assert message in capsys.readouterr().err


def test_an_out_folder_holding_a_parts_runs_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    done = tmp_path / "repro" / "mnist" / "0" / "summary.json"  # an earlier reproduction's job
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    assert reproduce.main([f"out={tmp_path / 'repro'}", "parts=mnist,vae"]) == 1
    assert "already holds the runs of mnist; choose another out=" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "repro").iterdir()) == ["mnist"]  # no report, no log


def test_the_quality_model_row_says_which_split_its_accuracy_is_on() -> None:
    """The smoke size's mnist5k has no test split: its row read "test accuracy" above a
    validation accuracy."""
    claim = next(c for c in reproduce.CLAIMS if c.part == "mnist_cnn")
    assert "test accuracy" not in claim.claim and "held-out" in claim.claim
    assert claim.measure([{"metrics": {"val/accuracy": 0.9712}}]) == "97.12% (val/accuracy)"
    both = {"test/accuracy": 0.9954, "val/accuracy": 0.99}
    assert claim.measure([{"metrics": both}]) == "99.54% (test/accuracy)"
