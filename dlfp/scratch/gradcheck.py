"""Check hand-written gradients against central finite differences, in float64.

Every entry of every parameter (and of the input) is nudged by +-h in place and the scalar function
re-evaluated: numeric = (f(x+h) - f(x-h)) / 2h. For a layer the scalar is f = sum(layer(x) * R) with
a fixed random R, so the upstream gradient fed to ``backward`` is R; for the whole network it is the
mean softmax cross-entropy.

**Relative error** (one number per tensor): max_i |a_i - n_i| / max(max_i (|a_i| + |n_i|), tiny),
with a the analytic and n the numeric gradient. The worst absolute disagreement is divided by the
scale of that tensor's gradient rather than entry by entry, because an entry-wise ratio is
ill-conditioned: a finite difference carries roundoff of about eps*|f|/h ~ 1e-10 in float64, which
is a large fraction of an entry whose true gradient happens to be ~1e-8, although the gradient is
right. Against the tensor's scale, a correct backward gives ~1e-9 or less, and a wrong one (a
missing transpose, a wrong sign, a dropped term) gives ~1e-1.

Finite differences are wrong where a ReLU input lies within h of 0 (the kink): callers use fixed
seeds and inputs away from the kink for the ReLU alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dlfp.scratch.layers import Layer
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network

TOLERANCE = 1e-6  # the bar for float64
STEP = 1e-6  # h: truncation error ~h^2 and roundoff ~eps/h are both far below the tolerance here


@dataclass
class GradCheck:
    """The result for one tensor of one checked object."""

    target: str  # the layer or network checked
    tensor: str  # parameter name, or "input"
    shape: tuple[int, ...]
    rel_error: float
    abs_error: float
    checked: int  # entries compared (all, unless a sample was asked for)

    @property
    def ok(self) -> bool:
        return self.rel_error < TOLERANCE


def relative_error(analytic: np.ndarray, numeric: np.ndarray, tiny: float = 1e-30) -> float:
    """max |a - n| over the tensor divided by max(|a| + |n|) over the tensor (see the module docstring)."""
    diff = np.abs(analytic - numeric).max(initial=0.0)
    scale = (np.abs(analytic) + np.abs(numeric)).max(initial=0.0)
    return float(diff / max(scale, tiny))


def numeric_gradient(
    f: Callable[[], float], x: np.ndarray, h: float = STEP, entries: np.ndarray | None = None
) -> np.ndarray:
    """d f / d x by central differences at ``entries`` (flat indices; None = all), perturbing x in place."""
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numeric_gradient needs a contiguous array it can perturb in place")
    indices = np.arange(flat.size) if entries is None else entries
    grad = np.empty(len(indices))
    for j, i in enumerate(indices):
        keep = flat[i]
        flat[i] = keep + h
        up = f()
        flat[i] = keep - h
        down = f()
        flat[i] = keep
        grad[j] = (up - down) / (2 * h)
    return grad


def _compare(target: str, tensor: str, value: np.ndarray, analytic: np.ndarray, f: Callable[[], float],
             h: float, sample: int | None, rng: np.random.Generator) -> GradCheck:
    entries = None
    if sample is not None and sample < value.size:
        entries = np.sort(rng.choice(value.size, size=sample, replace=False))
    numeric = numeric_gradient(f, value, h, entries)
    picked = analytic.reshape(-1) if entries is None else analytic.reshape(-1)[entries]
    return GradCheck(target, tensor, tuple(value.shape), relative_error(picked, numeric),
                     float(np.abs(picked - numeric).max(initial=0.0)), len(numeric))


def _require_float64(*arrays: np.ndarray) -> None:
    for a in arrays:
        if a.dtype != np.float64:
            raise ValueError(f"gradient checks run in float64 (got {a.dtype}); float32 roundoff swamps h")


def check_layer(layer: Layer, x: np.ndarray, *, rng: np.random.Generator, h: float = STEP,
                sample: int | None = None, target: str | None = None) -> list[GradCheck]:
    """Every parameter of ``layer`` and its input, with f = sum(layer(x) * R) for a fixed random R."""
    x = np.array(x, dtype=np.float64)  # our own contiguous copy, perturbed in place
    _require_float64(x, *layer.params.values())
    upstream = rng.standard_normal(layer.forward(x).shape)
    f = lambda: float(np.vdot(layer.forward(x), upstream))
    layer.forward(x)
    grad_x = layer.backward(upstream.copy(), input_grad=True)
    analytic = {k: g.copy() for k, g in layer.grads.items()}
    name = target or layer.name or type(layer).__name__
    rows = [_compare(name, key, value, analytic[key], f, h, sample, rng)
            for key, value in layer.params.items()]
    rows.append(_compare(name, "input", x, grad_x, f, h, sample, rng))
    return rows


def check_loss(logits: np.ndarray, labels: np.ndarray, *, h: float = STEP) -> list[GradCheck]:
    """The gradient of the mean softmax cross-entropy with respect to the logits."""
    logits = np.array(logits, dtype=np.float64)
    loss = SoftmaxCrossEntropy()
    f = lambda: loss.forward(logits, labels)
    f()
    analytic = loss.backward().copy()
    return [_compare("SoftmaxCrossEntropy", "logits", logits, analytic, f, h, None, np.random.default_rng())]


def check_network(net: Network, x: np.ndarray, labels: np.ndarray, *, rng: np.random.Generator,
                  h: float = STEP, sample: int | None = None) -> list[GradCheck]:
    """Every parameter of the whole network and its input, through the mean cross-entropy loss."""
    x = np.array(x, dtype=np.float64)
    _require_float64(x, *(p for _, p, _ in net.parameters()))
    loss = SoftmaxCrossEntropy()
    f = lambda: loss.forward(net.forward(x), labels)
    f()
    grad_x = net.backward(loss.backward(), input_grad=True)
    rows = [_compare("network", name, value, grad.copy(), f, h, sample, rng)
            for name, value, grad in net.parameters()]
    rows.append(_compare("network", "input", x, grad_x, f, h, sample, rng))
    return rows


def format_table(rows: Sequence[GradCheck]) -> str:
    """A fixed-width table, one row per tensor, with the verdict against ``TOLERANCE``."""
    header = ("target", "tensor", "shape", "entries", "max rel error", "max abs error", f"< {TOLERANCE:g}")
    body = [(r.target, r.tensor, "x".join(map(str, r.shape)), str(r.checked), f"{r.rel_error:.2e}",
             f"{r.abs_error:.2e}", "ok" if r.ok else "FAIL") for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
