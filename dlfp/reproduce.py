"""``dlfp-reproduce size=smoke|cpu|gpu``: every study, each part one Hydra multirun of
``dlfp-train``, then one ``report.md`` with each of the study's claims beside the value measured and
the command that measured it, the parts' figures, and the parts that failed.

    dlfp-reproduce size=smoke                 # every part, tiny: checks the pipeline (about a minute)
    DLFP_DATA=/data dlfp-reproduce size=cpu   # the claims at a size a 2-core CPU finishes (docs/scale.md)
    dlfp-reproduce size=gpu out=repro parts=cifar_recipe,cifar_fast

The parts run one after another, each as its own ``dlfp-train -m`` process into ``<out>/<part>/``
(its output in ``<out>/<part>.log``). A part that fails is listed in the report; the parts after it
still run, except those that need its checkpoint.
"""

from __future__ import annotations

import datetime
import json
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlfp.errors import DlfpError
from dlfp.rundir import run_trace, unusable

SIZES = ("smoke", "cpu", "gpu")
CPU1 = ["hardware=cpu", "hardware.threads=1"]


@dataclass(frozen=True)
class Part:
    """One multirun: ``dlfp-train -m <args[size]> hydra.sweep.dir=<out>/<name>``. ``{out}`` in an
    argument is the output folder (a later part reads an earlier part's checkpoint there)."""

    name: str
    args: dict[str, list[str]]
    figures: tuple[str, ...] = ()  # files of job 0 (or of the sweep folder, "sweep:<file>") to show
    needs: tuple[str, ...] = ()  # parts whose runs this one reads


@dataclass(frozen=True)
class Claim:
    """A claim of the study and how to read the measured value from a part's job summaries."""

    part: str
    claim: str
    study: str  # the study's value, in its words
    measure: Callable[[list[dict[str, Any]]], str]  # the part's job summaries -> the measured value
    reference: str = ""  # the best public number we know, for scale
    sizes: tuple[str, ...] = SIZES  # the sizes whose runs measure it


def metric(*keys: str, job: int = 0, percent: bool = False, digits: int = 4) -> Callable[[list[dict]], str]:
    """The first of ``keys`` in job ``job``'s summary metrics (e.g. test accuracy, else validation);
    with more than one key the value names the one it is, since sizes differ in which they have."""
    def read(jobs: list[dict[str, Any]]) -> str:
        metrics = jobs[job]["metrics"]
        key = next((k for k in keys if k in metrics), keys[0])
        value = metrics[key]
        shown = f"{100 * value:.2f}%" if percent else f"{value:.{digits}g}"
        return shown if len(keys) == 1 else f"{shown} ({key})"
    return read


def largest_iwae(jobs: list[dict[str, Any]]) -> str:
    """The tightest importance-weighted bound the VAE run reports (the largest k)."""
    metrics = jobs[0]["metrics"]
    k = max(int(name.split("_")[-1]) for name in metrics if name.startswith("val/iwae_"))
    return f"{metrics[f'val/iwae_{k}']:.2f} nats (IWAE-{k})"


def delta_ratio(jobs: list[dict[str, Any]]) -> str:
    """δ_out / δ_in of the regression sweep, over its jobs with the largest n."""
    largest = max(j["n"] for j in jobs)
    ratios = [j["metrics"]["delta_out"] / j["metrics"]["delta_in"] for j in jobs if j["n"] == largest]
    seeds = f"{len(ratios)} seed" + ("s" if len(ratios) > 1 else "")
    return f"{sum(ratios) / len(ratios):.3g}× at n = {largest} ({seeds})"


def quality_gap(jobs: list[dict[str, Any]]) -> str:
    """The DDPM's and the VAE's Frechet distances in the quality model's features."""
    m = jobs[0]["metrics"]
    ddpm = next(k for k in m if k.startswith("ddpm_T") and k.endswith("/frechet"))
    return f"Fréchet distance DDPM {m[ddpm]:.4g} vs VAE {m['vae/frechet']:.4g} (lower: closer to real digits)"


def svm_images(n: int) -> str:
    """The comparison's SVMs on ``n`` training images (the networks keep the whole training split)."""
    return f'compare.overrides.mnist_svm=["dataset.train_size={n}"]'


SMOKE_MNIST = [*CPU1, "train.steps=40", "train.eval_every=20", "train.log_every=20",
               "train.checkpoint_every=40", "train.eval_batch_size=500"]
SMOKE_CIFAR = [*CPU1, "dataset=cifar_synthetic", "dataset.n_train=64", "dataset.val_size=16",
               "dataset.n_test=32", "train.batch_size=16", "train.eval_batch_size=32", "train.epochs=1"]

PARTS: tuple[Part, ...] = (
    Part("mnist", {
        "smoke": ["experiment=mnist_compare", *SMOKE_MNIST, svm_images(300)],
        "cpu": ["experiment=mnist_compare", "dataset=mnist", svm_images(10000)],
        "gpu": ["experiment=mnist_compare", "dataset=mnist", svm_images(10000)],
    }, figures=("plots/val_error_networks.png",)),
    Part("regression", {
        "smoke": ["experiment=regression", "sweep=regression_n", "hydra/launcher=basic", "dataset.n=13,100",
                  "seed=0", "train.steps=200", "train.log_every=100", "train.eval_every=100"],
        "cpu": ["experiment=regression", "sweep=regression_n", "seed=0"],
        "gpu": ["experiment=regression", "sweep=regression_n"],
    }, figures=("sweep:delta_vs_n.png",)),
    Part("vae", {
        "smoke": ["experiment=vae", *CPU1, "train.steps=40", "train.eval_every=20",
                  "train.checkpoint_every=40", "vae.eval_mc_samples=4", "vae.iwae_k=[1,10]",
                  "vae.iwae_chunk=5", "vae.num_samples=9", "vae.traversal.steps=3"],
        "cpu": ["experiment=vae", "dataset=mnist"],
        "gpu": ["experiment=vae", "dataset=mnist"],
    }, figures=("plots/samples.png",)),
    Part("cifar_recipe", {
        "smoke": ["experiment=cifar_allcnn", *SMOKE_CIFAR],
        "cpu": ["experiment=cifar_allcnn", "dataset=cifar10", "train.epochs=null", "train.steps=100",
                "train.eval_every=50", "train.checkpoint_every=50"],
        "gpu": ["experiment=cifar_allcnn,cifar_resnet18", "dataset=cifar10", "hardware=cuda"],
    }, figures=("plots/error.png",)),
    Part("cifar_fast", {
        "smoke": ["experiment=cifar_fast", *SMOKE_CIFAR, "dataset.val_size=0", "model.widths=[8,16,16]",
                  "train.epochs=2"],
        "cpu": ["experiment=cifar_fast", "dataset=cifar10", "train.epochs=2", "hardware.threads=2"],
        "gpu": ["experiment=cifar_fast", "dataset=cifar10", "hardware=cuda"],
    }, figures=("plots/error.png",)),
    Part("adversarial", {
        "smoke": ["experiment=cifar_adversarial", *CPU1, "adversarial.checkpoint={out}/cifar_fast/0",
                  "adversarial.n_images=16", "adversarial.gradient_images=2", "adversarial.eps_curve=[2,8]"],
        "cpu": ["experiment=cifar_adversarial", "adversarial.checkpoint={out}/cifar_fast/0"],
        "gpu": ["experiment=cifar_adversarial", "adversarial.checkpoint={out}/cifar_fast/0", "hardware=cuda"],
    }, figures=("plots/accuracy_vs_eps.png",), needs=("cifar_fast",)),
    Part("lm", {
        "smoke": ["experiment=lm", "corpus=generated", "corpus.generated_chars=20000", *CPU1,
                  "model.d_model=32", "model.heads=2", "model.head_dim=null", "model.layers=1",
                  "model.context=16",
                  "train.batch_size=8", "train.steps=20", "train.eval_every=10", "train.log_every=10",
                  "train.checkpoint_every=20", "lm.eval_tokens=512", "lm.sample.new_tokens=12"],
        "cpu": ["experiment=lm_bench", "corpus=shakespeare"],
        "gpu": ["experiment=lm", "corpus=shakespeare", "hardware=cuda"],
    }, figures=("plots/loss.png",)),
    Part("mnist_cnn", {
        "smoke": ["experiment=mnist_cnn", *CPU1, "model.widths=[8,16]", "model.hidden=32",
                  "dataset.train_size=256", "train.epochs=1", "train.batch_size=32"],
        "cpu": ["experiment=mnist_cnn", "dataset=mnist"],
        "gpu": ["experiment=mnist_cnn", "dataset=mnist", "hardware=cuda"],
    }),
    Part("ddpm", {
        "smoke": ["experiment=ddpm", *CPU1, "model.widths=[8,16,16]", "model.groups=4", "model.timesteps=40",
                  "train.steps=12", "train.eval_every=6", "train.log_every=6", "train.checkpoint_every=12",
                  "train.batch_size=16", "schedule.warmup_steps=2", "ddpm.grid_images=8",
                  "ddpm.grid_sampler_steps=5", "ddpm.loss_images=40", "ddpm.loss_buckets=4",
                  "ddpm.quality.classifier={out}/mnist_cnn/0", "ddpm.quality.vae={out}/vae/0",
                  "ddpm.quality.samples=8", "ddpm.quality.ddim_steps=[5]", "ddpm.quality.ddim_etas=[1]",
                  "ddpm.quality.bootstrap=2"],
        "cpu": ["experiment=ddpm", "train.steps=1000", "ddpm.quality.classifier={out}/mnist_cnn/0",
                "ddpm.quality.vae={out}/vae/0", "ddpm.quality.ddim_steps=[50]", "ddpm.quality.ddim_etas=[1]"],
        "gpu": ["experiment=ddpm", "dataset=mnist", "hardware=cuda",
                "ddpm.quality.classifier={out}/mnist_cnn/0", "ddpm.quality.vae={out}/vae/0"],
    }, figures=("plots/samples.png",), needs=("mnist_cnn", "vae")),
)

CLAIMS: tuple[Claim, ...] = (
    Claim("mnist", "SVM on raw 14×14 pixels", "below the Gabor SVM",
          metric("svm_raw/accuracy", percent=True)),
    Claim("mnist", "SVM on Gabor features", "the best MNIST method",
          metric("svm_gabor/accuracy", percent=True)),
    Claim("mnist", "the network from scratch in NumPy", "about 50% accuracy",
          metric("mnist_nn_numpy/accuracy", percent=True), "97.9% (docs/mnist.md, full MNIST)"),
    Claim("mnist", "the same network in PyTorch", "about 65% accuracy",
          metric("mnist_nn_torch/accuracy", percent=True), "97.8% (docs/mnist.md, full MNIST)"),
    Claim("regression", "generalization outside the data's range", "δ_out far above δ_in", delta_ratio),
    Claim("vae", "VAE on binarized 14×14 MNIST: log-likelihood bound", "an ELBO logged every update",
          largest_iwae, "−31.27 nats (IWAE-1000, docs/vae.md)"),
    Claim("cifar_recipe", "All-CNN-T parameters", "1.37M", metric("parameters", digits=7)),
    Claim("cifar_recipe", "All-CNN-T test accuracy (study recipe)", "about 90%",
          metric("test/accuracy", percent=True), "≥ 92% expected on a GPU in 100 epochs"),
    Claim("cifar_recipe", "ResNet-18 test accuracy (study recipe)", "—",
          metric("test/accuracy", job=1, percent=True), "≥ 94.5% expected in 100 epochs", sizes=("gpu",)),
    Claim("cifar_fast", "fast recipe test accuracy", "—", metric("test/accuracy", percent=True),
          "airbench94: 94.0% in 3.3 s on an A100"),
    Claim("adversarial", "FGSM accuracy at ε = 8/255", "about 45%", metric("fgsm/accuracy", percent=True)),
    Claim("lm", "Transformer LM bits per character", "—", metric("val/bpc"),
          "nanoGPT baby GPT on CPU: 2.72 after 276 s"),
    Claim("mnist_cnn", "the quality model's held-out accuracy (test split; validation where the data has "
          "none, as mnist5k)", "—", metric("test/accuracy", "val/accuracy", percent=True),
          "99.54% test (full MNIST, docs/mnist.md)"),
    Claim("ddpm", "DDPM samples against the VAE's", "DDPM sharper and more diverse", quality_gap),
)


@dataclass
class Outcome:
    part: Part
    command: str
    seconds: float
    jobs: list[dict[str, Any]] = field(default_factory=list)  # summaries of the finished jobs
    problem: str | None = None  # why the part failed, if it did


def run_part(part: Part, size: str, out: Path) -> Outcome:
    """The part's multirun: ``dlfp-train -m`` in a process of its own."""
    args = [a.replace("{out}", str(out)) for a in part.args[size]]
    sweep_dir = out / part.name
    argv = ["dlfp-train", "-m", *args, f"hydra.sweep.dir={sweep_dir}"]
    command = " ".join(shlex.quote(a) for a in argv)
    missing = [need for need in part.needs if not (out / need / "0" / "summary.json").exists()]
    if missing:
        return Outcome(part, command, 0.0,
                       problem=f"skipped: needs the run of {', '.join(missing)}, which failed")
    began = time.time()
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{part.name}.log"
    with log.open("w") as output:
        status = subprocess.run([sys.executable, "-m", "dlfp.train", *argv[1:]], stdout=output,
                                stderr=subprocess.STDOUT).returncode
    problem = f"dlfp-train exited with status {status}; see {log}" if status else None
    outcome = Outcome(part, command, time.time() - began)
    errors = []
    for job in sorted(sweep_dir.glob("[0-9]*"), key=lambda p: int(p.name)):
        if (job / "summary.json").exists():
            summary = json.loads((job / "summary.json").read_text())
            summary["n"] = _override(summary, "dataset.n")
            outcome.jobs.append(summary)
        elif (job / "error.txt").exists():
            errors.append(f"job {job.name}: {(job / 'error.txt').read_text().splitlines()[0]}")
    if errors:  # the jobs' own errors say more than the sweep's exit message
        problem = f"{len(errors)} job(s) failed; {errors[0]}"
    outcome.problem = problem or (None if outcome.jobs else "no job finished")
    return outcome


def write_report(outcomes: list[Outcome], size: str, out: Path, seconds: float) -> Path:
    """``report.md`` and ``figures/``: every claim with its measured value and command, then failures."""
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    by_part = {o.part.name: o for o in outcomes}
    lines = [f"# dlfp-reproduce size={size}", "",
             f"{datetime.date.today()}, {platform.machine()} {platform.processor() or ''}".rstrip()
             + f", {len(outcomes)} parts in {seconds / 60:.1f} min. Each part is one Hydra multirun; its "
             "command is in the table, its runs in `<part>/`.", ""]
    if size == "smoke":
        lines += ["**size=smoke checks that every part runs end to end on tiny settings and generated or "
                  "embedded data. Its numbers are not evidence for or against any claim.**", ""]
    lines += ["| part | claim | the study | measured | for scale | command |", "|---|---|---|---|---|---|"]
    for claim in CLAIMS:
        outcome = by_part.get(claim.part)
        if outcome is None or size not in claim.sizes:
            continue
        measured = _measure(claim, outcome)
        lines.append(f"| {claim.part} | {claim.claim} | {claim.study} | {measured} | {claim.reference} | "
                     f"`{outcome.command}` |")
    failed = [o for o in outcomes if o.problem]
    lines += ["", "## Failed parts", ""]
    lines += [f"- **{o.part.name}**: {o.problem} (`{o.command}`)" for o in failed] or ["None."]
    lines += ["", "## Parts", "", "| part | jobs finished | minutes |", "|---|---:|---:|"]
    lines += [f"| {o.part.name} | {len(o.jobs)} | {o.seconds / 60:.2f} |" for o in outcomes]
    shown = []
    for o in outcomes:
        for name in o.part.figures:
            source = out / o.part.name / (name[len("sweep:"):] if name.startswith("sweep:") else f"0/{name}")
            if source.exists():
                target = figures / f"{o.part.name}_{source.name}"
                shutil.copyfile(source, target)
                shown.append(f"![{o.part.name}: {source.stem}](figures/{target.name})")
    lines += ["", "## Figures", "", *shown, ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _measure(claim: Claim, outcome: Outcome) -> str:
    if not outcome.jobs:
        return "failed"
    try:
        return claim.measure(outcome.jobs)
    except (KeyError, IndexError, ZeroDivisionError, ValueError, TypeError) as e:
        return f"not measured ({type(e).__name__}: {e})"


def _override(summary: dict[str, Any], key: str) -> Any:
    for override in summary.get("overrides", []):
        name, _, value = override.partition("=")
        if name == key:
            return int(value) if value.isdigit() else value
    return None


def parse(argv: list[str]) -> dict[str, str]:
    """``size=... out=... parts=a,b``: the Hydra-style key=value arguments."""
    options = {"size": "smoke", "out": "", "parts": ""}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in options:
            raise DlfpError(f"unknown argument {arg!r}; use size=smoke|cpu|gpu, out=DIR, parts=a,b "
                            f"(parts: {', '.join(p.name for p in PARTS)}), or --help")
        options[key] = value
    if options["size"] not in SIZES:
        raise DlfpError(f"size={options['size']} is not one of {', '.join(SIZES)}")
    names = [p.name for p in PARTS]
    unknown = [p for p in options["parts"].split(",") if p and p not in names]
    if unknown:
        raise DlfpError(f"parts={options['parts']}: unknown {unknown}; the parts are {', '.join(names)}")
    return options


def check_out(out: Path, parts: set[str]) -> None:
    """``out`` can take the chosen parts' runs: a folder that can be made, holding none of them yet
    (their sweeps would refuse it, and the report would show the old runs as this one's)."""
    why = unusable(str(out))
    if why:
        raise DlfpError(f"out={out} {why}; name a folder that can be created and written")
    held = [name for name in sorted(parts) if run_trace(out / name) is not None]
    if held:
        raise DlfpError(f"out={out} already holds the runs of {', '.join(held)}; choose another out= "
                        "(or leave it out: outputs/reproduce/<size>/<date>/<time>)")


def usage() -> str:
    """What ``--help`` prints: the arguments, this module's description and the parts."""
    return (f"usage: dlfp-reproduce [size={'|'.join(SIZES)}] [out=DIR] [parts=a,b]\n\n{__doc__.strip()}\n\n"
            f"parts: {', '.join(p.name for p in PARTS)}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(usage())
        return 0
    try:
        options = parse(argv)
        size = options["size"]
        stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
        out = Path(options["out"] or f"outputs/reproduce/{size}/{stamp}").resolve()
        chosen = set(filter(None, options["parts"].split(","))) or {p.name for p in PARTS}
        check_out(out, chosen)
    except DlfpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    print(f"dlfp-reproduce size={size} into {out}", flush=True)
    began, outcomes = time.time(), []
    for part in (p for p in PARTS if p.name in chosen):
        print(f"== {part.name} ==", flush=True)
        outcomes.append(run_part(part, size, out))
    report = write_report(outcomes, size, out, time.time() - began)
    failed = [o.part.name for o in outcomes if o.problem]
    print(f"report: {report}" + (f"; failed parts: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
