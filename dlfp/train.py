"""``dlfp-train``: compose the config with Hydra, check it against the schemas, hand it to the runner.

    dlfp-train experiment=mnist_nn_torch optimizer.lr=0.05 hardware=cpu
    dlfp-train -m experiment=regression sweep=regression_n hydra/launcher=joblib

Nothing imports this module: the runner, tasks and engine below it run without Hydra's app.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dlfp import rundir
from dlfp.config import CONF_DIR, register_configs
from dlfp.config.overrides import absent_section_problem, moved_key_problem
from dlfp.engine import distributed
from dlfp.errors import DlfpError

log = logging.getLogger("dlfp")
register_configs()


def _group_listing() -> str:
    """`--help` text: each config group under conf/ and its options (schemas left out)."""
    lines = []
    for group in sorted(p for p in Path(CONF_DIR).iterdir() if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        lines.append(f"  {group.name + ':':<12} {', '.join(options)}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("dlfp_groups", _group_listing, replace=True)


# ${start:...}: this run's start time, under torchrun rank 0's, so that every rank resolves the
# same run directory (Hydra's ${now:} differs between processes: lightning-hydra-template #393).
# Cached in the config: Hydra copies the sweep's resolver cache into every job's config, so jobs in
# other processes (joblib, submitit) resolve the sweep directory the parent made, not their own time.
OmegaConf.register_new_resolver("start", lambda pattern: distributed.start_time().strftime(pattern),
                                replace=True, use_cache=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """The Hydra entry point; returns the objective metric so sweepers can optimise it.

    A single run that fails on a user error exits with that one message. In a multirun a failed
    job is logged and recorded, and the sweep goes on: Hydra's sweepers would otherwise stop at the
    first failure, before the end-of-sweep report (``hydra.callbacks``) that lists it as failed.
    """
    from dlfp.runner import run_experiment  # torch and the tasks load after --help and --cfg

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if distributed.ranks_from_environment().is_main:
        rundir.clear_failure(run_dir)
    try:
        summary = run_experiment(cfg, run_dir, list(hydra_cfg.overrides.task))
    except Exception as e:
        rundir.record_failure(run_dir, e)
        if hydra_cfg.mode == RunMode.RUN:
            if isinstance(e, DlfpError):
                sys.exit(f"error: {e}")
            raise
        log.error("job failed: %s: %s", type(e).__name__, e)
        return None
    value = summary["metrics"].get(cfg.objective)
    if value is None and summary["metrics"]:  # (data-parallel ranks other than 0 report none)
        log.warning("objective %r is not among the metrics %s", cfg.objective,
                    sorted(summary["metrics"]))
    return value


def cli() -> None:
    """The console script: a YAML file under conf/ that does not parse, or an override of a key that
    moved to another section, is named in one line (Hydra would print a long traceback or a
    multi-line refusal), then Hydra's main takes over. Under torchrun the ranks other than
    0 leave the run directory to rank 0: no ``.hydra/`` copy, no ``train.log``, warnings only."""
    problem = (yaml_problem(Path(CONF_DIR)) or moved_key_problem(sys.argv[1:])
               or absent_section_problem(sys.argv[1:]))
    if problem:
        sys.exit(f"error: {problem}")
    try:
        ranks = distributed.ranks_from_environment()
    except DlfpError as e:
        sys.exit(f"error: {e}")
    if not ranks.is_main:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    try:
        main()
    finally:
        distributed.leave()


def yaml_problem(conf_dir: Path) -> str | None:
    """The first YAML syntax error under ``conf_dir``, as 'file line L, column C: problem'."""
    import yaml  # PyYAML, which Hydra and OmegaConf parse with

    for path in sorted(conf_dir.rglob("*.yaml")):
        try:
            yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            return f"{path}{where}: {e.problem or e.context}; fix the YAML syntax there"
        except yaml.YAMLError as e:
            return f"{path}: {e}"
    return None


if __name__ == "__main__":
    cli()
