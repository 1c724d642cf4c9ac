"""The NumPy-from-scratch network: gradients, equivalence with PyTorch, init, and its experiment."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_config, read_summary, run_cli, run_inprocess
from threadpoolctl import threadpool_limits
from torch import nn

from dlfp.data.loader import Loader
from dlfp.data.mnist5k import load_mnist5k
from dlfp.data.transforms import build_transforms
from dlfp.engine.hardware import Hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.errors import DlfpError
from dlfp.models import model_from_schema
from dlfp.scratch.gradcheck import TOLERANCE, check_layer, check_loss, check_network, relative_error
from dlfp.scratch.layers import Flatten, Linear, PatchEmbedding, ReLU
from dlfp.scratch.loss import SoftmaxCrossEntropy
from dlfp.scratch.network import Network, build_patch_mlp
from dlfp.scratch.sgd import SGD
from dlfp.scratch.twin import (
    STEP_TOLERANCE,
    TRAINING_TOLERANCE,
    check_equivalence,
    copy_from_torch,
    rel_diff,
    torch_twin,
)
from dlfp.tasks import scratch_nn

TINY_NUMPY = [
    "experiment=mnist_nn_numpy", "train.steps=60", "train.eval_every=20", "train.log_every=10",
    "train.checkpoint_every=20", "train.eval_batch_size=500",
]
SMALL_ARCH = dict(in_channels=2, image_size=8, patch_size=4, embed_channels=3, hidden=[6, 5], num_classes=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny products: one thread is fastest and immune to other processes loading the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def mnist_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """The first 100 batches of 32 the mnist_nn runs train on, as float64."""
    data = load_mnist5k("mnist5k")
    loader = Loader(data.train, 32, shuffle=True, seed=0, transforms=build_transforms(["standardize"], data))
    return [(b["x"].numpy().astype(np.float64), b["y"].numpy()) for b in loader.epoch(0)][:100]


def away_from_kink(x: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    return np.where(np.abs(x) < margin, np.copysign(margin, x), x)


# ---- layers agree with PyTorch's ----


@pytest.mark.parametrize(("dtype", "channels", "patch"), [
    (np.float64, 2, 4),  # generic patch copy
    (np.float32, 1, 4),  # 16-byte patch rows moved as one item
    (np.float32, 3, 2),  # 8-byte patch rows
])
def test_patch_embedding_equals_conv2d_forward_and_backward(dtype, channels, patch) -> None:
    rng = np.random.default_rng(1)
    layer = PatchEmbedding(channels, 5, patch, rng=rng, dtype=dtype)
    conv = torch.nn.Conv2d(channels, 5, patch, stride=patch).to(getattr(torch, np.dtype(dtype).name))
    conv.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.params.items()})
    x = rng.standard_normal((4, channels, 3 * patch, 2 * patch)).astype(dtype)
    upstream = rng.standard_normal((4, 5, 3, 2)).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out_t = conv(xt)
    out_t.backward(torch.from_numpy(upstream))
    out = layer.forward(x)
    grad_x = layer.backward(upstream)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    assert out.shape == tuple(out_t.shape) and out.dtype == dtype
    # flattening both must give the same vector: (C, H, W) order, as PatchMLP's flatten(1)
    assert rel_diff(out.reshape(4, -1), out_t.detach().flatten(1).numpy()) < tol
    assert rel_diff(grad_x, xt.grad.numpy()) < tol
    assert rel_diff(layer.grads["weight"], conv.weight.grad.numpy()) < tol
    assert rel_diff(layer.grads["bias"], conv.bias.grad.numpy()) < tol


def test_softmax_cross_entropy_is_stable_for_huge_logits_and_matches_torch() -> None:
    logits = np.array([[1e4, 0.0, -1e4], [3.0, 1.0, 2.0], [-800.0, -800.0, -799.0]])
    labels = np.array([1, 0, 2])
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, labels)
    grad = loss_fn.backward()
    lt = torch.from_numpy(logits).requires_grad_()
    expected = F.cross_entropy(lt, torch.from_numpy(labels))
    expected.backward()
    assert math.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    assert rel_diff(grad, lt.grad.numpy()) < 1e-12
    with pytest.raises(RuntimeError, match="forward first"):
        loss_fn.backward()


@pytest.mark.parametrize("bad", [-1, 3, 100])
def test_labels_outside_the_classes_are_refused_as_torch_refuses_them(bad: int) -> None:
    logits, labels = np.zeros((2, 3)), np.array([0, bad])
    with pytest.raises(IndexError):  # what PyTorch does with the same labels
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        SoftmaxCrossEntropy().forward(logits, labels)


def test_unnamed_layers_get_unique_names_and_duplicates_are_refused() -> None:
    rng = np.random.default_rng(0)
    net = Network([Linear(3, 3, rng=rng, dtype=np.float64), ReLU(), Linear(3, 3, rng=rng, dtype=np.float64)],
                  np.float64)
    names = [name for name, _, _ in net.parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as nn.Sequential names them
    assert set(net.state_dict()) == set(names)  # nothing dropped
    twin = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3)).double()
    assert list(twin.state_dict()) == names
    sgd = SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _, _, grad in net.parameters():
        grad[...] = 1.0
    sgd.step()
    assert set(sgd.buffers) == set(names)  # one momentum buffer per parameter, none shared
    a, b = Linear(3, 3, rng=rng, dtype=np.float64), Linear(3, 3, rng=rng, dtype=np.float64)
    a.name = b.name = "fc"
    with pytest.raises(ValueError, match=r"layer names must be unique, but \['fc'\]"):
        Network([a, ReLU(), b], np.float64)


# ---- gradients against finite differences (float64, < 1e-6) ----


def _layer_cases(rng: np.random.Generator):
    yield PatchEmbedding(2, 3, 4, rng=rng, dtype=np.float64), rng.standard_normal((3, 2, 8, 12))
    yield Flatten(), rng.standard_normal((2, 3, 2, 2))
    yield Linear(7, 5, rng=rng, dtype=np.float64), rng.standard_normal((4, 7))
    yield ReLU(), away_from_kink(rng.standard_normal((4, 9)))


@pytest.mark.parametrize("case", range(4), ids=["embedding", "flatten", "linear", "relu"])
def test_each_layer_passes_the_gradient_check(case: int) -> None:
    rng = np.random.default_rng(2)
    layer, x = list(_layer_cases(rng))[case]
    rows = check_layer(layer, x, rng=rng)
    assert {r.tensor for r in rows} == {*layer.params, "input"}
    assert all(r.checked == int(np.prod(r.shape)) for r in rows)
    worst = max(r.rel_error for r in rows)
    assert worst < TOLERANCE, rows


@pytest.mark.parametrize(("make", "shape", "dtype"), [
    (lambda rng, dt: PatchEmbedding(1, 3, 7, rng=rng, dtype=dt), (2, 1, 7, 7), np.float64),  # a view
    (lambda rng, dt: PatchEmbedding(1, 3, 7, rng=rng, dtype=dt), (2, 1, 14, 14), np.float64),
    (lambda rng, dt: PatchEmbedding(1, 3, 4, rng=rng, dtype=dt), (2, 1, 8, 8), np.float32),  # item rows
    (lambda rng, dt: Linear(6, 4, rng=rng, dtype=dt), (3, 6), np.float64),  # kept the caller's array itself
    (lambda rng, dt: Flatten(), (2, 3, 2), np.float64),
    (lambda rng, dt: ReLU(), (4, 5), np.float64),
], ids=["embedding_7x7_patch_7", "embedding_14x14_patch_7", "embedding_patch_4", "linear", "flatten", "relu"])
def test_a_layer_does_not_depend_on_its_input_after_forward(make, shape, dtype) -> None:
    """Zeroing the caller's input between forward and backward must change nothing."""
    rng = np.random.default_rng(4)
    layer, x = make(rng, dtype), rng.standard_normal(shape).astype(dtype)
    upstream = rng.standard_normal(layer.forward(x.copy()).shape).astype(dtype)
    expected_input_grad = layer.backward(upstream)
    expected = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward(x)
    x[...] = 0
    assert np.array_equal(layer.backward(upstream), expected_input_grad)
    for name, grad in layer.grads.items():
        assert np.array_equal(grad, expected[name]), name


def test_the_loss_does_not_depend_on_its_labels_after_forward() -> None:
    logits, labels = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]), np.array([0, 2])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels.copy())
    expected = loss.backward()
    loss.forward(logits, labels)
    labels[...] = 1
    assert np.array_equal(loss.backward(), expected)


def test_loss_passes_the_gradient_check() -> None:
    rng = np.random.default_rng(3)
    (row,) = check_loss(3 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6))
    assert row.rel_error < TOLERANCE


def test_whole_network_passes_the_gradient_check_every_entry() -> None:
    rng = np.random.default_rng(4)
    net = build_patch_mlp(**SMALL_ARCH, rng=rng, dtype=np.float64)
    rows = check_network(net, rng.standard_normal((3, 2, 8, 8)), rng.integers(0, 4, 3), rng=rng)
    assert [r.tensor for r in rows] == [name for name, _, _ in net.parameters()] + ["input"]
    assert max(r.rel_error for r in rows) < TOLERANCE, rows


def test_study_network_passes_the_gradient_check_on_sampled_entries() -> None:
    rng = np.random.default_rng(5)
    net = build_patch_mlp(rng=rng, dtype=np.float64)  # 28x28 -> 7x7x8 -> 256 -> 10
    rows = check_network(net, rng.standard_normal((2, 1, 28, 28)), rng.integers(0, 10, 2), rng=rng, sample=40)
    assert max(r.rel_error for r in rows) < TOLERANCE, rows


def test_gradient_check_catches_a_wrong_backward() -> None:
    class SkewedWeightGrad(Linear):
        def backward(self, grad_out, input_grad=True):
            grad_in = super().backward(grad_out, input_grad)
            self.grads["weight"] *= 1.01  # a 1% error in one gradient
            return grad_in

    rng = np.random.default_rng(6)
    layer = SkewedWeightGrad(4, 3, rng=rng, dtype=np.float64)
    rows = check_layer(layer, rng.standard_normal((5, 4)), rng=rng)
    by_tensor = {r.tensor: r.rel_error for r in rows}
    assert by_tensor["weight"] > 1e-3 and by_tensor["bias"] < TOLERANCE


def test_gradient_check_refuses_float32() -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="float64"):
        check_layer(Linear(3, 2, rng=rng, dtype=np.float32), np.ones((2, 3)), rng=rng)


def test_relative_error_is_scaled_by_the_tensor_not_by_each_entry() -> None:
    analytic = np.array([1.0, 1e-9])
    assert relative_error(analytic, analytic + np.array([0.0, 1e-10])) < 1e-9  # roundoff on a tiny entry
    assert relative_error(analytic, -analytic) == pytest.approx(1.0)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


# ---- equivalence with the PyTorch twin (float64) ----


def test_float64_equivalence_with_pytorch_one_batch_and_100_sgd_steps(mnist_batches) -> None:
    report = check_equivalence(mnist_batches, lr=0.1, seed=0)
    assert report.steps == 100
    assert max(report.logits, report.loss, *report.grads.values()) < STEP_TOLERANCE, report.lines()
    assert set(report.grads) == {name for name, _ in model_from_schema("patch_mlp").named_parameters()}
    assert report.training_losses < TRAINING_TOLERANCE, report.lines()
    assert report.losses[-1] < 0.5 * report.losses[0]  # it really trained
    assert report.passed


def test_weights_copy_both_ways_by_name() -> None:
    net = build_patch_mlp(**SMALL_ARCH, rng=np.random.default_rng(8), dtype=np.float64)
    model = torch_twin(net)
    assert next(model.parameters()).dtype == torch.float64
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    copy_from_torch(model, net)
    for name, value, _ in net.parameters():
        np.testing.assert_array_equal(value, model.state_dict()[name].numpy())


@pytest.mark.parametrize(("momentum", "nesterov", "weight_decay"), [(0.0, False, 0.0), (0.9, False, 1e-2),
                                                                    (0.9, True, 5e-4)])
def test_sgd_update_equals_torch_sgd(momentum, nesterov, weight_decay) -> None:
    rng = np.random.default_rng(9)
    net = build_patch_mlp(**SMALL_ARCH, rng=rng, dtype=np.float64)
    model = torch_twin(net)
    sgd = SGD(net.parameters(), 0.05, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim == 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.05, momentum=momentum, nesterov=nesterov)
    torch_params = dict(model.named_parameters())
    for _ in range(4):
        for name, _, grad in net.parameters():
            grad[...] = rng.standard_normal(grad.shape)
            torch_params[name].grad = torch.from_numpy(grad.copy())
        sgd.step()
        optimizer.step()
    for name, value, _ in net.parameters():
        assert rel_diff(value, torch_params[name].detach().numpy()) < 1e-14


# ---- float32, initialisation ----


def test_float32_network_stays_float32_and_agrees_with_float64() -> None:
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((16, 1, 28, 28)), rng.integers(0, 10, 16)
    nets = {dt: build_patch_mlp(rng=np.random.default_rng(0), dtype=dt) for dt in (np.float32, np.float64)}
    results = {}
    for dt, net in nets.items():
        loss_fn = SoftmaxCrossEntropy()
        logits = net.forward(x)
        loss = loss_fn.forward(logits, y)
        net.backward(loss_fn.backward())
        assert logits.dtype == dt and all(p.dtype == dt and g.dtype == dt for _, p, g in net.parameters())
        results[dt] = (logits.copy(), loss, {n: g.copy() for n, _, g in net.parameters()})
    (l32, loss32, g32), (l64, loss64, g64) = results[np.float32], results[np.float64]
    assert rel_diff(l32, l64) < 1e-5 and loss32 == pytest.approx(loss64, rel=1e-5)
    assert all(rel_diff(g32[n], g64[n]) < 1e-4 for n in g64)

    net, loss_fn = nets[np.float32], SoftmaxCrossEntropy()
    sgd = SGD(net.parameters(), 0.1)
    losses = []
    for _ in range(30):  # a fixed batch: plain SGD must drive its loss down
        losses.append(loss_fn.forward(net.forward(x), y))
        net.backward(loss_fn.backward())
        sgd.step()
    assert losses[-1] < 0.1 * losses[0]
    assert all(p.dtype == np.float32 for _, p, _ in net.parameters())


def test_init_follows_pytorch_default_bounds_and_statistics() -> None:
    net = build_patch_mlp(rng=np.random.default_rng(11), dtype=np.float64)
    torch.manual_seed(11)
    reference = dict(model_from_schema("patch_mlp").named_parameters())
    fan_in = {"embed": 16, "classifier.0": 392, "classifier.2": 256}
    for name, value, _ in net.parameters():
        bound = 1 / math.sqrt(fan_in[name.rsplit(".", 1)[0]])
        theirs = reference[name].detach().numpy()
        assert value.shape == theirs.shape
        assert np.abs(value).max() <= bound and np.abs(theirs).max() <= bound
        if value.size >= 1000:  # uniform on [-b, b]: mean 0, std b/sqrt(3), extremes near +-b
            assert abs(value.mean()) < 0.05 * bound
            assert value.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)
            assert value.std() == pytest.approx(theirs.std(), rel=0.03)
            assert np.abs(value).max() > 0.99 * bound


def test_init_is_seeded() -> None:
    def weights(seed: int) -> np.ndarray:
        return build_patch_mlp(rng=np.random.default_rng(seed)).state_dict()["classifier.0.weight"]

    np.testing.assert_array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(4))


# ---- the experiment ----


@pytest.fixture
def no_plots(monkeypatch):
    """In-process runs that check numbers, not figures, skip the ~1 s of matplotlib per run."""
    from dlfp.tasks import classify

    for task in (scratch_nn, classify):
        monkeypatch.setattr(task, "plot_classification", lambda *args, **kwargs: [])


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_mnist_nn_numpy_through_the_cli(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli([*TINY_NUMPY, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    summary = read_summary(run_dir)
    assert summary["experiment"] == "mnist_nn_numpy" and summary["task"] == "scratch_nn"
    assert summary["device"] == "cpu" and "train_seconds" in summary["timings"]
    assert list(summary["metrics"]) == ["steps", "parameters", "val/loss", "val/error", "val/accuracy"]
    assert summary["metrics"]["steps"] == 60 and summary["metrics"]["val/accuracy"] > 0.5
    assert summary["metrics"]["parameters"] == 103_314  # the torch twin's count (test_train_e2e)
    records = _records(run_dir)
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 20, 40, 60]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [10, 20, 30, 40, 50, 60]
    assert all(set(r) == {"step", "epoch", "split", "loss", "lr"} and r["lr"] == 0.1 for r in train)
    for name in ("loss", "error", "lr", "confusion"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
    with np.load(run_dir / "checkpoints" / "last.npz", allow_pickle=False) as ckpt:
        assert int(ckpt["step"]) == 60 and "update/params/embed.weight" in ckpt.files
        assert json.loads(str(ckpt["model_config"]))["hidden"] == [256]


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path: Path, no_plots) -> None:
    a = run_inprocess(TINY_NUMPY, tmp_path / "a")["metrics"]
    b = run_inprocess(TINY_NUMPY, tmp_path / "b")["metrics"]
    c = run_inprocess([*TINY_NUMPY, "seed=1"], tmp_path / "c")["metrics"]
    assert a == b and a != c
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()


def test_records_line_up_with_the_torch_run(tmp_path: Path, no_plots) -> None:
    torch_run = [*TINY_NUMPY[1:], "experiment=mnist_nn_torch", "hardware=cpu"]
    numpy_summary = run_inprocess(TINY_NUMPY, tmp_path / "numpy")
    torch_summary = run_inprocess(torch_run, tmp_path / "torch")
    assert list(numpy_summary["metrics"]) == list(torch_summary["metrics"])

    def shape(run_dir: Path) -> list[tuple]:
        return [(r["step"], r["epoch"], r["split"], tuple(sorted(r))) for r in _records(run_dir)]

    assert shape(tmp_path / "numpy") == shape(tmp_path / "torch")


def test_resumed_run_ends_identical_to_an_uninterrupted_one(tmp_path: Path, no_plots) -> None:
    straight = run_inprocess(TINY_NUMPY, tmp_path / "straight")["metrics"]
    run_inprocess([*TINY_NUMPY, "train.steps=40"], tmp_path / "resumed")  # stops at a checkpoint
    resumed = run_inprocess([*TINY_NUMPY, "resume=true"], tmp_path / "resumed")["metrics"]
    assert resumed == straight
    later = [r for r in _records(tmp_path / "resumed") if r["step"] > 40]
    assert later == [r for r in _records(tmp_path / "straight") if r["step"] > 40]


def test_diverging_run_stops_with_a_clear_error(tmp_path: Path, no_plots) -> None:
    with pytest.raises(DlfpError, match="NaN or infinite by update"):
        run_inprocess([*TINY_NUMPY, "optimizer.lr=1e30"], tmp_path / "run")


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer=adam", "SGD only"),
    ("model.num_classes=7", "model.num_classes=10"),
    ("model.image_size=32", "model.image_size=28"),
])
def test_unsupported_settings_are_refused_by_name(
    tmp_path: Path, no_plots, override: str, message: str
) -> None:
    with pytest.raises(DlfpError, match=message):
        run_inprocess([*TINY_NUMPY, override], tmp_path / "run")


def test_a_gpu_device_is_refused(tmp_path: Path) -> None:
    cfg = compose_config(TINY_NUMPY)
    gpu = Hardware(device=torch.device("cuda"), amp_dtype=None, compile=False, channels_last=False)
    run = Run(cfg=cfg, dir=tmp_path, hw=gpu, metrics=MetricLog(tmp_path / "metrics.jsonl"))
    with pytest.raises(DlfpError, match="CPU only.*hardware=cpu"):
        scratch_nn.run(cfg, run)
