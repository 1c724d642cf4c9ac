"""``dlfp-report <multirun dir>``: one table over a sweep's jobs, with failed and missing jobs listed.

    dlfp-report outputs/multirun/regression/2026-01-01/12-00-00

Every job directory's ``summary.json`` gives its metrics; its ``.hydra/overrides.yaml`` says which
swept values it ran with, so a job that crashed, was killed or left a corrupt summary still shows
up (as failed). The sweep's own ``multirun.yaml`` says which jobs were meant to run, so jobs that
never started show up as missing. Jobs are grouped by the swept keys other than ``seed``; each
group's metrics are given as mean ± standard deviation over its finished trials.

Writes into the sweep directory: ``sweep_summary.csv`` (one row per group), ``sweep_jobs.csv``
(one row per job, with its status and the reason it failed), ``sweep_summary.md`` (the table and
the failed/missing jobs) and, for a sweep of the regression experiment over ``dataset.n``,
``delta_vs_n.png`` and ``dataset_example.png``. The sweep configs run it at the end of a multirun
through the :class:`SweepReport` callback.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlfp.engine.distributed import ranks_from_environment
from dlfp.errors import DlfpError

log = logging.getLogger(__name__)

TRIAL_KEY = "seed"  # jobs that differ only in this key are trials of one setting
LABELS = {"dataset.n": "n", "train_mse": "train MSE", "delta_in": "δ_in", "delta_out": "δ_out",
          "steps": "updates"}


@dataclass
class Job:
    num: int
    params: dict[str, str]  # the job's overrides, key -> value as written
    status: str  # "ok", "failed" or "missing"
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why a job counts as failed or missing
    dir: Path | None = None


@dataclass
class Group:
    key: tuple[str, ...]  # the values of the group keys
    jobs: list[Job]

    def count(self, status: str) -> int:
        return sum(job.status == status for job in self.jobs)

    def stats(self, metric: str) -> tuple[float, float | None, int]:
        """Mean, sample standard deviation (None below two trials) and number of trials."""
        values = [job.metrics[metric] for job in self.jobs if job.status == "ok" and metric in job.metrics]
        if not values:
            return math.nan, None, 0
        mean = sum(values) / len(values)
        if len(values) < 2:
            return mean, None, 1
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return mean, math.sqrt(var), len(values)


@dataclass
class Report:
    sweep_dir: Path
    jobs: list[Job]
    group_keys: list[str]
    metrics: list[str]
    groups: list[Group]
    files: list[Path]

    def count(self, status: str) -> int:
        return sum(job.status == status for job in self.jobs)


# ---- collecting the jobs ----


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


def expected_jobs(sweep_dir: Path) -> list[dict[str, str]] | None:
    """The overrides of every job the sweep meant to run (job number = list index), rebuilt from
    ``multirun.yaml`` the way Hydra's basic sweeper expands them; None for other sweepers."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        cfg = OmegaConf.load(path)
        sweeper = cfg.hydra.sweeper
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        arguments = params + list(cfg.hydra.overrides.task)
        overrides = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(overrides, None)
    except Exception as e:  # an unreadable multirun.yaml only costs the "missing" detection
        log.warning("could not expand the sweep in %s (%s); missing jobs are not detected", path, e)
        return None
    return [dict(_split(o) for o in job) for batch in batches for job in batch]


def _read_job(num: int, job_dir: Path, params: dict[str, str] | None) -> Job:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    if params is None and overrides_file.is_file():
        try:
            params = dict(_split(str(o)) for o in OmegaConf.load(overrides_file))
        except Exception:
            params = None
    job = Job(num=num, params=params or {}, status="failed", dir=job_dir)
    summary_file = job_dir / "summary.json"
    error_file = job_dir / "error.txt"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
            metrics = {k: float(v) for k, v in summary["metrics"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            job.reason = f"summary.json is unreadable ({type(e).__name__}: {e})"
        else:
            job.status, job.metrics = "ok", metrics
    elif error_file.is_file():
        job.reason = error_file.read_text().strip().splitlines()[0] if error_file.stat().st_size else "error"
    else:
        job.reason = "no summary.json: the job crashed, was killed, or is still running"
    return job


def collect_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep, found on disk or expected from the sweep's definition."""
    expected = expected_jobs(sweep_dir) or []
    found = {int(p.name): p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()}
    jobs = []
    for num in sorted(set(found) | set(range(len(expected)))):
        params = expected[num] if num < len(expected) else None
        if num in found:
            jobs.append(_read_job(num, found[num], params))
        else:
            jobs.append(Job(num=num, params=params or {}, status="missing",
                            reason="no job directory: the job never started"))
    return jobs


# ---- grouping and tables ----


def _sort_key(values: tuple[str, ...]) -> tuple:
    out = []
    for v in values:
        try:
            out.append((0, float(v), ""))
        except ValueError:
            out.append((1, 0.0, v))
    return tuple(out)


def summarize(sweep_dir: Path) -> Report:
    if not sweep_dir.is_dir():
        raise DlfpError(f"{sweep_dir} is not a directory; give the multirun directory "
                        "(outputs/multirun/<experiment>/<date>/<time>)")
    jobs = collect_jobs(sweep_dir)
    if not jobs:
        raise DlfpError(f"{sweep_dir} holds no job directories (0/, 1/, ...) and no multirun.yaml: "
                        "is it a multirun directory?")
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.params if k not in keys]
    group_keys = [k for k in keys if k != TRIAL_KEY and len({j.params.get(k, "") for j in jobs}) > 1]
    metrics: list[str] = []
    for job in jobs:
        metrics += [m for m in job.metrics if m not in metrics]
    by_key: dict[tuple[str, ...], list[Job]] = {}
    for job in jobs:
        by_key.setdefault(tuple(job.params.get(k, "") for k in group_keys), []).append(job)
    groups = [Group(k, by_key[k]) for k in sorted(by_key, key=_sort_key)]
    return Report(sweep_dir, jobs, group_keys, metrics, groups, files=[])


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value == 0 or 1e-3 <= abs(value) < 1e3:
        return f"{value:.3g}"
    if 1e3 <= abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.2e}"


def _cell(group: Group, metric: str) -> str:
    mean, std, _ = group.stats(metric)
    return _fmt(mean) if std is None else f"{_fmt(mean)} ± {_fmt(std)}"


def _label(key: str) -> str:
    return LABELS.get(key, key)


def write_tables(report: Report) -> list[Path]:
    d = report.sweep_dir
    summary_csv, jobs_csv, md = d / "sweep_summary.csv", d / "sweep_jobs.csv", d / "sweep_summary.md"
    with summary_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*report.group_keys, "trials_ok", "failed", "missing",
                    *[f"{m}_{s}" for m in report.metrics for s in ("mean", "std")]])
        for g in report.groups:
            stats = [v for m in report.metrics for v in g.stats(m)[:2]]
            w.writerow([*g.key, g.count("ok"), g.count("failed"), g.count("missing"),
                        *["" if v is None or math.isnan(v) else repr(v) for v in stats]])
    param_keys = list(dict.fromkeys(k for job in report.jobs for k in job.params))
    with jobs_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "status", *param_keys, *report.metrics, "reason"])
        for job in report.jobs:
            w.writerow([job.num, job.status, *[job.params.get(k, "") for k in param_keys],
                        *[repr(job.metrics[m]) if m in job.metrics else "" for m in report.metrics],
                        job.reason])
    md.write_text(markdown(report))
    return [summary_csv, jobs_csv, md]


def markdown(report: Report) -> str:
    ok, failed, missing = report.count("ok"), report.count("failed"), report.count("missing")
    name = _experiment_name(report.sweep_dir) or report.sweep_dir.name
    lines = [
        f"# Sweep summary: {name}",
        "",
        f"`{report.sweep_dir}`: {len(report.jobs)} jobs, {ok} finished, {failed} failed, "
        f"{missing} missing. Each cell: mean ± sample standard deviation over the finished trials "
        f"({TRIAL_KEY}s) of that setting.",
        "",
    ]
    head = [_label(k) for k in report.group_keys] + [_label(m) for m in report.metrics]
    head += ["trials ok", "failed", "missing"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in report.groups:
        cells = list(g.key) + [_cell(g, m) for m in report.metrics]
        cells += [f"{g.count('ok')}/{len(g.jobs)}", str(g.count("failed")), str(g.count("missing"))]
        lines.append("| " + " | ".join(cells) + " |")
    bad = [job for job in report.jobs if job.status != "ok"]
    if bad:
        lines += ["", "## Failed or missing jobs", ""]
        shown = report.group_keys + [TRIAL_KEY]
        for job in bad:
            params = " ".join(f"{k}={job.params[k]}" for k in shown if k in job.params)
            lines.append(f"- job {job.num} ({params}): {job.status}: {job.reason}")
    return "\n".join(lines) + "\n"


def _experiment_name(sweep_dir: Path) -> str | None:
    path = sweep_dir / "multirun.yaml"
    try:
        cfg = OmegaConf.load(path) if path.is_file() else None
        if cfg is None:
            return None
        if OmegaConf.is_interpolation(cfg, "experiment_name"):  # the default: the experiment file's name
            return OmegaConf.select(cfg, "hydra.runtime.choices.experiment")
        return str(cfg.experiment_name)
    except Exception:
        return None


# ---- figures of the regression sweep ----


def regression_figures(report: Report) -> list[Path]:
    """delta_vs_n.png and dataset_example.png, when the sweep runs over dataset.n."""
    if report.group_keys != ["dataset.n"] or not {"delta_in", "delta_out"} <= set(report.metrics):
        return []
    from dlfp.viz.regression import plot_delta_vs_n

    rows = [(float(g.key[0]), g) for g in report.groups if g.count("ok")]
    if not rows:
        return []
    curves = {}
    for metric, where in (("delta_in", "inside the training inputs' range"),
                          ("delta_out", "with the extrapolation beyond it")):
        stats = [g.stats(metric) for _, g in rows]
        curves[f"{_label(metric)}: {where}"] = ([s[0] for s in stats], [s[1] for s in stats])
    trials = [g.stats("delta_in")[2] for _, g in rows]
    files = [plot_delta_vs_n(report.sweep_dir / "delta_vs_n.png", [n for n, _ in rows], curves,
                             title="largest error of the fit against training set size " + _spread(trials))]
    example = _dataset_example(report, [g for _, g in rows])
    return files + ([example] if example else [])


def _spread(trials: list[int]) -> str:
    """What the points and bands of a figure are, given the finished seeds behind each point:
    a ± std is promised only where there are two or more."""
    low, high = min(trials), max(trials)
    if high < 2:
        return "(one seed per point: no spread)"
    seeds = f"{low}" if low == high else f"{low}–{high}"
    if low >= 2:
        return f"(mean ± std over {seeds} seeds)"
    return f"(mean over {seeds} seeds; ± std where 2 or more)"


def validation_curves(report: Report) -> list[Path]:
    """val_accuracy_vs_epoch.png: per setting, its first finished trial's validation accuracy
    against epoch, when the jobs record curves (the classifier experiments). Jobs evaluated only
    once (``train.eval_every`` longer than the run) draw none: the table has those numbers."""
    from dlfp.engine.metrics import MetricLog
    from dlfp.viz.curves import plot_curves

    series = {}
    for group in report.groups:
        ok = sorted((j for j in group.jobs if j.status == "ok"), key=lambda j: j.params.get(TRIAL_KEY, ""))
        if not ok:
            continue
        val = [r for r in MetricLog(ok[0].dir / "metrics.jsonl").records("val") if "accuracy" in r]
        if val:
            series[", ".join(f"{k}={v}" for k, v in zip(report.group_keys, group.key))] = val
    if max((len(records) for records in series.values()), default=0) < 2:
        if series:
            log.info("val_accuracy_vs_epoch.png not drawn: one evaluation per job (lower train.eval_every "
                     "for curves)")
        return []
    return [plot_curves(series, "accuracy", report.sweep_dir / "val_accuracy_vs_epoch.png", x="epoch",
                        title="validation accuracy per setting (first trial)", ylabel="accuracy")]


def _dataset_example(report: Report, groups: list[Group]) -> Path | None:
    """The training set of the middle n's first finished trial, regenerated from its config."""
    group = groups[len(groups) // 2]
    job = min((j for j in group.jobs if j.status == "ok"), key=lambda j: j.params.get(TRIAL_KEY, ""))
    try:
        import torch

        from dlfp.data import load_dataset
        from dlfp.eval.grid_errors import Grid
        from dlfp.viz.regression import plot_dataset

        cfg = OmegaConf.load(job.dir / ".hydra" / "config.yaml")
        data = load_dataset(cfg.dataset)
        grid = Grid(data.x_low, data.x_high, float(cfg.regression.extrapolate_to),
                    int(cfg.regression.grid_points), torch.device("cpu")).x
        return plot_dataset(report.sweep_dir / "dataset_example.png", grid.squeeze(1),
                            data.target(grid).squeeze(1), data.x.squeeze(1), data.y.squeeze(1),
                            support=(data.x_low, data.x_high),
                            title=f"a training set: n={data.n}, {TRIAL_KEY} {cfg.seed} (job {job.num}), "
                                  f"noise std {data.noise_std:g}")
    except Exception as e:  # a figure is not worth losing the table over
        log.warning("dataset_example.png not drawn: %s: %s", type(e).__name__, e)
        return None


# ---- entry points ----


def write_report(sweep_dir: Path) -> Report:
    """Collect the jobs, write the tables and figures; returns what it found and wrote."""
    report = summarize(Path(sweep_dir))
    report.files = write_tables(report) + regression_figures(report) + validation_curves(report)
    return report


def _describe(report: Report) -> str:
    return (f"{len(report.jobs)} jobs: {report.count('ok')} finished, {report.count('failed')} failed, "
            f"{report.count('missing')} missing; wrote "
            + ", ".join(str(p.name) for p in report.files) + f" in {report.sweep_dir}")


class SweepReport(Callback):
    """Hydra callback: write the report when a multirun ends, print the table, and exit with
    status 1 if any job failed or is missing (after the report is written)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not ranks_from_environment().is_main:  # data-parallel jobs: rank 0 writes the report
            return
        report = write_report(Path(str(config.hydra.sweep.dir)))
        print(markdown(report), flush=True)
        log.info("sweep report: %s", _describe(report))
        bad = report.count("failed") + report.count("missing")
        if bad:
            sys.exit(f"error: {bad} of {len(report.jobs)} jobs failed or are missing; they are listed "
                     f"in {report.sweep_dir / 'sweep_summary.md'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dlfp-report", description="Summarise a dlfp multirun directory into "
        "sweep_summary.csv / .md (mean ± std over seeds, failed and missing jobs) and its figures.")
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory holding 0/, 1/, ...")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.sweep_dir)
    except DlfpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(markdown(report))
    print(_describe(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
