"""The fast CIFAR-10 recipe's parts: FastNet and its whitening, the lookahead average (against a
written-out loop, and across a resume), test-time augmentation against a NumPy reflection, the
BatchNorm-shift optimiser group, and a tiny run of ``experiment=cifar_fast``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, crash_and_resume, read_summary, run_inprocess, without_hydra
from omegaconf import OmegaConf
from torch import nn

from dlfp.config.checks import validate
from dlfp.config.model import FastNetConfig
from dlfp.engine.ema import Lookahead
from dlfp.errors import DlfpError
from dlfp.models import model_from_schema
from dlfp.tasks.classify import predict

TINY_FAST = ["experiment=cifar_fast", "dataset=cifar_synthetic", "dataset.n_train=64", "dataset.val_size=0",
             "dataset.n_test=20", "hardware=cpu", "hardware.threads=1", "model.widths=[8,16,16]",
             "train.batch_size=16", "train.eval_batch_size=20"]


def test_fastnet_shapes_and_frozen_parameters() -> None:
    model = model_from_schema("fastnet")
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert "whiten.weight" in frozen and "groups.0.norm1.weight" in frozen
    assert "whiten.bias" not in frozen and "groups.0.norm1.bias" not in frozen
    first = model.groups[1].conv1.weight  # 64 -> 256: its first 64 filters start as identities
    assert torch.equal(first[:64, :, 1, 1], torch.eye(64)) and first[:64, :, 0].abs().sum() == 0


WHITENING = "the whitening conv leaves image_size - whiten_kernel + 1 pixels a side"
BAD_VALUES = [  # (overrides, what the one error line must say), as in tests/test_reliability.py
    (["experiment=cifar_fast", "model.whiten_kernel=32"],
     f"model.image_size=32, model.whiten_kernel=32, model.widths=[64, 256, 256]: {WHITENING}"),
    (["experiment=cifar_fast_cpu", "model.whiten_kernel=26"], "whiten_kernel=26, model.widths=[64, 128"),
    (["experiment=cifar_fast", "model.widths=[8,8,8,8,8]"], "model.widths=[8, 8, 8, 8, 8]: " + WHITENING),
    (["experiment=cifar_fast", "model.image_size=8"], "model.image_size=8, model.whiten_kernel=2"),
    (["experiment=cifar_fast", "model.whiten_kernel=0"], "model.whiten_kernel=0 must be >= 1"),
    (["experiment=cifar_fast", "model.bn_momentum=2"], "model.bn_momentum=2.0 must be > 0 and <= 1"),
    (["experiment=cifar_resnet18", "model.depth=20"], "model.depth=20: must be 18, 34 or 50"),
    (["experiment=cifar_allcnn", "model.c2=0"], "model.c2=0 must be >= 1"),
    (["experiment=cifar_allcnn", "model.dropout=1"], "model.dropout=1.0 must be >= 0 and < 1"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_a_cifar_model_that_cannot_fit_is_refused_before_any_data_loads(overrides, message) -> None:
    with pytest.raises(DlfpError) as info:
        validate(without_hydra(compose_config(overrides)))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("kernel", "widths"), [(25, [4, 4, 4]), (17, [4, 4, 4, 4])])
def test_the_whiten_kernel_rule_admits_exactly_the_kernels_that_fit(kernel: int, widths: list[int]) -> None:
    """The largest kernel the rule admits runs on 32x32 images; one more leaves a max-pool no pixels."""
    [rule] = FastNetConfig.RULES
    assert rule.check(32, kernel, widths) and not rule.check(32, kernel + 1, widths)
    x = torch.randn(2, 3, 32, 32)
    assert model_from_schema("fastnet", widths=widths, whiten_kernel=kernel)(x).shape == (2, 10)
    with pytest.raises(RuntimeError):
        model_from_schema("fastnet", widths=widths, whiten_kernel=kernel + 1)(x)
    with pytest.raises(DlfpError, match="model.image_size=32 but the training images are 16x16; set "
                                        "model.image_size=16"):
        model_from_schema("fastnet", widths=widths).fit_to_data(torch.randn(4, 3, 16, 16))


def test_the_whitening_bias_trains_for_its_first_epochs_only(tmp_path: Path) -> None:
    """As in airbench: the bias moves during the first whiten_bias_epochs epochs, then stays put."""
    from dlfp.engine.checkpoint import load_checkpoint

    overrides = [*TINY_FAST, "train.epochs=4", "model.whiten_bias_epochs=2", "train.checkpoint_every=1"]
    run_inprocess(overrides, tmp_path / "run")
    bias = lambda name: load_checkpoint(tmp_path / "run" / "checkpoints" / name)["update"]["model"][
        "whiten.bias"]  # noqa: E731
    last, before = bias("last.pt"), bias("last.prev.pt")  # after epochs 4 and 3
    assert torch.equal(last, before) and last.abs().sum() > 0


def test_whitening_statistics_come_from_a_random_sample_of_every_class() -> None:
    """A folder-read dataset is stored class by class: the first 5,000 images would be airplanes."""
    from omegaconf import OmegaConf

    from dlfp.data.images import ImageData, Split
    from dlfp.tasks.classify import fitting_inputs

    y = torch.arange(10).repeat_interleave(20)
    x = y.view(-1, 1, 1, 1).expand(-1, 3, 4, 4).to(torch.uint8).contiguous()
    data = ImageData(name="sorted", train=Split(x=x, y=y), val=None, test=Split(x=x, y=y),
                     classes=[str(i) for i in range(10)], mean=(0.0,) * 3, std=(1.0,) * 3)
    cfg = OmegaConf.create({"seed": 0, "dataset": {"transforms": []}})
    chosen = fitting_inputs(data, cfg, "cpu", n=50)
    assert len(chosen) == 50 and len(chosen[:, 0, 0, 0].unique()) == 10


def test_whitening_filters_decorrelate_the_datas_patches() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(3, 3)
    smooth = nn.functional.avg_pool2d(torch.randn(400, 3, 34, 34), 3, stride=1)  # correlated neighbours
    images = torch.einsum("ij,njhw->nihw", mixing, smooth)
    model = model_from_schema("fastnet")
    model.fit_to_data(images, eps=1e-9)
    with torch.no_grad():
        out = nn.functional.conv2d(images, model.whiten.weight)[:, :12]  # v, then -v
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = flat.T @ flat / len(flat)
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])


def test_lookahead_matches_a_written_out_loop() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    average = {k: v.clone() for k, v in reference.items()}
    lookahead = Lookahead(model, decay=0.8, every=2, total_steps=7)
    for step in range(1, 8):
        with torch.no_grad():  # a stand-in for an optimiser step
            for p, q in zip(model.parameters(), reference.values()):
                noise = torch.randn_like(p)
                p.add_(noise)
                q.add_(noise)
        lookahead.update(step)
        if step == 7:
            lookahead.finish(step)  # the last update pulls too, though 7 is no multiple of 2
        # the first pull starts the average (d = 0); the last one merges update 7 into it
        pulls = {2: [0.0], 4: [0.8 * (4 / 7) ** 3], 6: [0.8 * (6 / 7) ** 3], 7: [0.8]}.get(step, [])
        for d in pulls:
            for k in average:
                average[k] = d * average[k] + (1 - d) * reference[k]
                reference[k] = average[k].clone()
        for k, v in model.state_dict().items():
            assert torch.allclose(v, reference[k], atol=1e-6), (step, k)
    assert all(torch.equal(v, lookahead.average[k]) for k, v in model.state_dict().items())


def test_flip_translate_averages_the_views_reflected_as_numpy_pads() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    x = torch.randn(2, 3, 8, 8)
    net(x)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect"))
    views = [x, padded[..., :8, :8], padded[..., 2:, 2:]]
    with torch.no_grad():
        pair = [0.5 * (net(v) + net(v.flip(-1))) for v in views]
        assert torch.allclose(predict(net, x, "flip"), pair[0], atol=1e-6)
        assert torch.allclose(predict(net, x, "flip_translate"),
                              0.5 * pair[0] + 0.25 * (pair[1] + pair[2]), atol=1e-6)
        assert torch.equal(predict(net, x, "none"), net(x))


def test_a_crashed_lookahead_run_resumes_exactly(tmp_path: Path) -> None:
    """The lookahead average is checkpointed: crashed mid-epoch and resumed from the last epoch's
    checkpoint, the run ends with the metrics and records of one that ran straight through."""
    resumed, straight = crash_and_resume([*TINY_FAST, "train.epochs=6"], tmp_path, crash_after=14)
    assert read_summary(resumed)["metrics"] == read_summary(straight)["metrics"]
    assert (resumed / "metrics.jsonl").read_text() == (straight / "metrics.jsonl").read_text()


def test_the_fast_recipes_optimizer_and_schedule_are_the_papers_per_mean_loss() -> None:
    """airbench states lr 11.5 and weight decay 0.0153 per 1024 summed examples with momentum 0.85;
    per mean batch loss that is lr 1.5 and 0.002 decay of each weight per step at the peak."""
    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "experiment" / "cifar_fast.yaml")
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    lr_sum, decay_per_step = 11.5 / kilostep, 0.0153 * 1024 / kilostep
    assert cfg.optimizer.lr == pytest.approx(lr_sum * 1024, rel=1e-3)
    assert cfg.optimizer.lr * cfg.optimizer.weight_decay == pytest.approx(decay_per_step, rel=1e-3)
    (norms,) = cfg.optimizer.routes  # the BatchNorm shifts: the same decay per step at 64x the lr
    assert norms.params.module == "norm"
    assert cfg.optimizer.lr * norms.lr_scale * norms.weight_decay == pytest.approx(decay_per_step, rel=1e-3)
    assert cfg.train.lookahead_decay == pytest.approx(0.95**5, rel=1e-4)
    start, end = 1 / cfg.schedule.div_factor, 1 / cfg.schedule.div_factor / cfg.schedule.final_div_factor
    assert (start, end) == (pytest.approx(0.2), pytest.approx(0.07, rel=1e-3))


def test_the_cpu_recipe_is_the_fast_recipe_with_airbench93s_widths_and_more_epochs() -> None:
    """experiment=cifar_fast_cpu changes the net's widths and the epoch count, nothing else."""
    def plain(name: str) -> dict:
        cfg = compose_config([f"experiment={name}"])
        return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))

    fast, cpu = plain("cifar_fast"), plain("cifar_fast_cpu")
    assert (cpu["model"]["widths"], cpu["train"]["epochs"]) == ([64, 128, 128], 15)
    for cfg in (fast, cpu):
        del cfg["experiment_name"], cfg["model"]["widths"], cfg["train"]["epochs"]
    assert cpu == fast


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cifar_fast_trains_on_cuda_with_bf16_and_channels_last(tmp_path: Path) -> None:
    cpu = [a for a in TINY_FAST if not a.startswith("hardware")]
    summary = run_inprocess([*cpu, "hardware=cuda", "hardware.compile=false", "train.epochs=2"],
                            tmp_path / "run")
    assert summary["device"] == "cuda" and 0 <= summary["metrics"]["test/accuracy"] <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augmentation_on_cuda_matches_the_cpu_given_the_same_parameters() -> None:
    from dlfp.data.transforms import ColorJitter, HorizontalFlip, RandomCrop

    x = torch.rand(64, 3, 32, 32)
    offsets = torch.randint(0, 9, (2, 64))
    crop = RandomCrop(4, "reflect")
    assert torch.allclose(crop.apply(x.cuda(), offsets.cuda()).cpu(), crop.apply(x, offsets))
    flips = torch.rand(64) < 0.5
    assert torch.equal(HorizontalFlip.apply(x.cuda(), flips.cuda()).cpu(), HorizontalFlip.apply(x, flips))
    b, c, first = ColorJitter(0.2, 0.2).params(64, None, torch.device("cpu"))
    assert torch.allclose(ColorJitter.apply(x.cuda(), b.cuda(), c.cuda(), first.cuda()).cpu(),
                          ColorJitter.apply(x, b, c, first), atol=1e-6)


def test_alternating_flip_shows_each_image_both_ways_in_consecutive_epochs() -> None:
    from dlfp.data.images import Split
    from dlfp.data.loader import Loader
    from dlfp.data.transforms import HorizontalFlip

    n = 64
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1) * torch.tensor([1.0, -1.0]).view(1, 1, 1, 2)
    loader = Loader(Split(x=x, y=torch.zeros(n, dtype=torch.long)), 16, shuffle=True, seed=3,
                    transforms=[HorizontalFlip(alternate=True)])

    def flipped(epoch: int, start: int = 0) -> dict[int, bool]:  # image i is (i, -i); mirrored, (-i, i)
        return {int(abs(b[0, 0, 0])): bool(b[0, 0, 0] < 0)
                for batch in loader.epoch(epoch, start) for b in batch["x"]}

    first, second, third = flipped(0), flipped(1), flipped(2)
    assert len(first) == n and 0.3 < sum(first.values()) / n < 0.7
    # image 0 is (0, -0) both ways, so it is left out
    assert all(second[i] != first[i] and third[i] == first[i] for i in range(1, n))
    resumed = flipped(1, start=2)  # a resumed epoch flips as the uninterrupted one did
    assert len(resumed) == n // 2 and all(resumed[i] == second[i] for i in resumed if i)
