"""Muon for matrices and filters (dlfp/engine/muon.py): torch's step, a filter as the out × in·k·k
matrix it is in the convolution, and the routing that sends each parameter to one optimizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import compose_config, run_inprocess
from torch import nn

from dlfp.config.overrides import replaced_list_problem
from dlfp.engine.muon import Muon
from dlfp.engine.optim import build_optimizer
from dlfp.errors import DlfpError
from dlfp.models import model_from_schema, rebuild_model

A, B, C = 3.4445, -4.7750, 2.0315  # the quintic's coefficients (torch's and the Muon reference's)


def newton_schulz(g: torch.Tensor, steps: int) -> torch.Tensor:
    """The orthogonalisation written out, in bfloat16 as the Muon reference computes it: the
    quintic X <- aX + (bG + cG²)X with G = XXᵀ, each product fused with its sum as torch fuses it."""
    x = g.bfloat16()
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=B, alpha=C), x, beta=A)
    return x if wide else x.T


def _with_grads(*shapes: tuple[int, ...], seed: int = 0) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    return params


@pytest.mark.parametrize("nesterov", [True, False])
def test_two_steps_equal_the_written_out_newton_schulz_update(nesterov: bool) -> None:
    """A filter (4, 2, 3, 3) steps as the 4 x 18 matrix, a tall matrix (6, 3) by its transpose."""
    lr, momentum, decay, steps = 0.1, 0.9, 0.01, 5
    params = _with_grads((4, 2, 3, 3), (6, 3))
    start = [p.detach().clone() for p in params]
    grads = [[p.grad.clone() for p in params], [torch.randn(p.shape) for p in params]]
    opt = Muon(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay, ns_steps=steps)
    expected, buffers = start, [torch.zeros(p.shape[0], p[0].numel()) for p in params]
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
        following = []
        for i, (w, g) in enumerate(zip(expected, step_grads)):
            matrix = g.reshape(len(g), -1)
            buffers[i] = momentum * buffers[i] + (1 - momentum) * matrix
            direction = (1 - momentum) * matrix + momentum * buffers[i] if nesterov else buffers[i]
            scale = math.sqrt(max(1, matrix.shape[0] / matrix.shape[1]))  # torch's lr adjustment
            update = newton_schulz(direction, steps).float().view(w.shape)
            following.append(w * (1 - lr * decay) - lr * scale * update)
        expected = following
        for p, w in zip(params, expected):
            torch.testing.assert_close(p.detach(), w, atol=2e-3, rtol=1e-2)  # bfloat16 iteration


def test_a_channels_last_filter_steps_in_place_as_a_contiguous_one() -> None:
    """Its matrix view has the columns permuted (out, k, k, in), which Muon's update commutes with."""
    [plain] = _with_grads((8, 3, 3, 3))
    last = nn.Parameter(plain.detach().clone().to(memory_format=torch.channels_last))
    last.grad = plain.grad.clone().to(memory_format=torch.channels_last)
    Muon([plain], lr=0.1).step()
    before = last.detach().clone()
    Muon([last], lr=0.1).step()
    assert last.is_contiguous(memory_format=torch.channels_last) and not torch.equal(last, before)
    torch.testing.assert_close(last.detach(), plain.detach(), atol=2e-3, rtol=1e-2)


def test_renormalize_rescales_each_weight_to_norm_sqrt_out_before_its_step() -> None:
    """airbench94_muon's stand-in for weight decay; with lr 0 only the rescaling acts."""
    params = _with_grads((4, 2, 3, 3), (6, 3))
    Muon(params, lr=0.0, renormalize=True).step()
    for p in params:
        torch.testing.assert_close(p.norm(), torch.tensor(math.sqrt(p.shape[0])))


def test_a_vector_is_refused_in_one_line_naming_the_fix() -> None:
    with pytest.raises(DlfpError, match=r"not a parameter of shape \(4,\); route vectors"):
        Muon(_with_grads((4,)), lr=0.1)


def test_optimizer_muon_routes_each_parameter_to_exactly_one_optimizer() -> None:
    """optimizer=muon: every matrix and filter to Muon, every vector to SGD, none twice or lost."""
    cfg = compose_config(["experiment=mnist_cnn", "optimizer=muon"])
    model = model_from_schema("small_cnn", widths=[4, 8], hidden=16)
    sgd, muon = build_optimizer(cfg.optimizer, model)
    assert type(sgd) is torch.optim.SGD and type(muon) is Muon
    held = [p for opt in (sgd, muon) for group in opt.param_groups for p in group["params"]]
    assert sorted(map(id, held)) == sorted(id(p) for p in model.parameters())  # each exactly once
    assert all(p.ndim >= 2 for group in muon.param_groups for p in group["params"])
    assert all(p.ndim == 1 for group in sgd.param_groups for p in group["params"])


def test_muon_adamw_takes_the_transformer_blocks_matrices_only() -> None:
    cfg = compose_config(["experiment=lm", "optimizer=muon_adamw"])
    model = model_from_schema("transformer", vocab_size=50, d_model=16, heads=2, layers=2, context=8)
    adamw, muon = build_optimizer(cfg.optimizer, model)
    names = {id(p): n for n, p in model.named_parameters()}
    routed = sorted(names[id(p)] for group in muon.param_groups for p in group["params"])
    assert routed == sorted(n for n, p in model.named_parameters() if n.startswith("blocks.") and p.ndim == 2)
    assert type(adamw) is torch.optim.AdamW and "embed.weight" not in routed and "head.weight" not in routed


def test_a_run_trains_with_muon_end_to_end(tmp_path: Path) -> None:
    summary = run_inprocess(["experiment=mnist_nn_torch", "debug=smoke", "hardware.threads=1",
                             "optimizer=muon"], tmp_path / "run")
    assert summary["metrics"]["steps"] == 8 and math.isfinite(summary["metrics"]["val/loss"])


@pytest.mark.parametrize(("overrides", "lost"), [
    (["experiment=cifar_fast", "optimizer=muon"], True),  # cifar_fast's own routes (its BatchNorm rule)
    (["experiment=cifar_allcnn", "optimizer=muon"], False),
    (["experiment=cifar_fast", "optimizer=muon", "optimizer.routes=[{params:{shape:[filter]},"
      "optimizer:{name:muon}}]"], False),  # stated on the command line: what the user asked for
])
def test_an_options_list_the_experiment_replaces_is_refused(overrides: list[str], lost: bool) -> None:
    """Hydra replaces lists: optimizer=muon under cifar_fast would train with no Muon at all."""
    problem = replaced_list_problem(compose_config(overrides), overrides)
    assert (problem is not None) == lost
    if lost:
        assert problem.startswith("optimizer=muon sets optimizer.routes, but experiment cifar_fast replaces")


def test_cifar_fast_muon_splits_the_parameters_as_airbench94_muon() -> None:
    """Muon for the filters (lr 0.24, momentum 0.6, 3 iterations, renormalised); Nesterov SGD for
    the head (0.67 per summed loss of 2,000 = 1,340) and the biases (0.053 x 2,000 = 106), each
    group decaying 0.004 of its weights per step at the peak."""
    cfg = compose_config(["experiment=cifar_fast_muon"])
    model = model_from_schema("fastnet", **{k: cfg.model[k] for k in ("logit_scale", "head_std")})
    sgd, muon = build_optimizer(cfg.optimizer, model)
    filters = {id(p) for p in model.parameters() if p.requires_grad and p.ndim == 4}
    [muon_group] = muon.param_groups
    assert {id(p) for p in muon_group["params"]} == filters
    assert (muon_group["lr"], muon_group["momentum"], muon_group["ns_steps"], muon_group["renormalize"],
            muon_group["weight_decay"]) == (0.24, 0.6, 3, True, 0.0)
    head, biases = sgd.param_groups
    assert head["params"] == [model.head.weight] and all(p.ndim == 1 for p in biases["params"])
    assert head["lr"] * head["weight_decay"] == pytest.approx(0.004, rel=1e-3)
    assert biases["lr"] == pytest.approx(106, rel=1e-3)
    assert biases["lr"] * biases["weight_decay"] == pytest.approx(0.004, rel=1e-3)
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.85
    assert model.head.weight.std().item() == pytest.approx(1.0)  # head_std: rescaled at construction


def test_a_checkpoint_from_before_a_model_argument_existed_rebuilds_with_its_default() -> None:
    """FastNet gained head_std; an older checkpoint's model_config lacks it."""
    model = model_from_schema("fastnet", widths=[8, 16, 16])
    old = {k: v for k, v in model.init_config.items() if k != "head_std"}
    checkpoint = {"model_config": json.dumps(old), "update": {"model": model.state_dict()}}
    rebuilt = rebuild_model(checkpoint)
    assert torch.equal(rebuilt.head.weight, model.head.weight)
