"""The VAE: data preparation, the loss and its KL, the IWAE bound, the engine's extra terms, end to end."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, compose_config, read_summary, run_cli, run_inprocess
from omegaconf import OmegaConf
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

from dlfp.data.binarized import balanced_indices, binarize, load_binarized
from dlfp.data.images import ImageData, Split
from dlfp.data.loader import Loader
from dlfp.data.mnist import load_mnist
from dlfp.data.mnist5k import load_mnist5k
from dlfp.engine.checkpoint import load_checkpoint
from dlfp.engine.driver import fit
from dlfp.engine.hardware import setup_hardware
from dlfp.engine.metrics import MetricLog
from dlfp.engine.run import Run
from dlfp.engine.updates import TorchUpdate
from dlfp.errors import DlfpError
from dlfp.models.vae import VAE, elbo_terms, gaussian_kl, iwae_bound, negative_elbo

# A few hundred updates on a smaller model: seconds, yet every figure and metric is produced.
TINY_VAE = [
    "experiment=vae", "hardware=cpu", "train.steps=40", "train.eval_every=20",
    "train.checkpoint_every=20", "vae.eval_mc_samples=4", "vae.iwae_k=[1,10]", "vae.iwae_chunk=5",
    "vae.num_samples=9", "vae.traversal.steps=3",
]


def _data_cfg(**changes: object) -> OmegaConf:
    base = {"per_class": 1000, "val_images": 100, "strict_balance": False, "threshold": 128.0,
            "downsample": 2, "selection_seed": 0}
    return OmegaConf.create({**base, **changes})


# ---- data ---------------------------------------------------------------------------------------


def test_downsample_then_binarise_a_hand_made_image() -> None:
    # four 2x2 blocks with means 255, 128 (not above the threshold), 128.5 and 63.75
    image = torch.tensor([[255, 255, 255, 255],
                          [255, 255, 1, 1],
                          [255, 255, 0, 0],
                          [2, 2, 0, 255]], dtype=torch.uint8).view(1, 1, 4, 4)
    rows = binarize(image, factor=2, threshold=128.0)
    assert rows.dtype == torch.float32 and rows.shape == (1, 4)
    assert rows.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    assert binarize(image, factor=2, threshold=60.0).tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert binarize(torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape == (3, 196)


def test_balanced_selection_takes_as_many_per_class_as_every_class_has() -> None:
    labels = np.array([0] * 5 + [1] * 3 + [2] * 4)
    idx, n = balanced_indices(labels, 2, strict=False, seed=0, dataset="toy")
    assert n == 2 and np.bincount(labels[idx]).tolist() == [2, 2, 2]
    assert np.array_equal(idx, balanced_indices(labels, 2, strict=False, seed=0, dataset="toy")[0])
    idx, n = balanced_indices(labels, 4, strict=False, seed=0, dataset="toy")
    assert n == 3 and np.bincount(labels[idx]).tolist() == [3, 3, 3]


def test_strict_balance_with_too_few_images_per_class_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DlfpError) as info:
        run_inprocess([*TINY_VAE, "vae.data.strict_balance=true"], tmp_path / "run")
    msg = str(info.value)
    assert "mnist5k has only 490 training images" in msg and "vae.data.per_class=1000" in msg
    assert "strict_balance=false" in msg and "dataset=mnist" in msg
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before any training


def test_offline_dataset_gives_490_per_digit_and_100_validation_images() -> None:
    cfg = compose_config(["experiment=vae"])
    data = load_binarized(load_mnist5k(val_size=cfg.dataset.val_size), cfg.vae.data)
    assert data.train.shape == (4900, 196) and data.val.shape == (100, 196)
    assert torch.bincount(data.train_labels).tolist() == [490] * 10
    assert set(data.train.unique().tolist()) == {0.0, 1.0} and data.side == 14


def test_real_mnist_gives_1000_per_digit_and_100_validation_images(shared_data: Path) -> None:
    data = load_binarized(load_mnist(root=str(shared_data), download=False, val_size=100), _data_cfg())
    assert data.train.shape == (10000, 196) and data.val.shape == (100, 196)
    assert torch.bincount(data.train_labels).tolist() == [1000] * 10


def test_validation_images_come_from_the_validation_split_only() -> None:
    x = torch.arange(40, dtype=torch.uint8).repeat_interleave(16).view(40, 1, 4, 4) * 6
    y = torch.arange(40) % 2
    data = ImageData("toy", Split(x=x[:30], y=y[:30]), Split(x=x[30:], y=y[30:]), None, ["a", "b"],
                     (0.0,), (1.0,))
    out = load_binarized(data, _data_cfg(per_class=15, val_images=4, threshold=170.0))
    assert len(out.train) == 30 and len(out.val) == 4
    assert out.val.sum() == 4 * 4  # every validation image (values 180..234) is above 170 everywhere
    with pytest.raises(DlfpError, match="val_images=11 must be between 1 and the 10"):
        load_binarized(data, _data_cfg(per_class=15, val_images=11))


# ---- the model, the loss, the bounds ------------------------------------------------------------


def test_architecture_is_the_studys() -> None:
    model = VAE()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(128, 196), (128,), (16, 128), (16,), (128, 8), (128,), (196, 128), (196,)]
    assert isinstance(model.encoder[1], nn.Tanh) and isinstance(model.decoder[1], nn.Tanh)
    mu, logvar = model.encode(torch.zeros(5, 196))
    assert mu.shape == logvar.shape == (5, 8)
    means = model.decode(torch.randn(5, 8))
    assert means.shape == (5, 196) and bool(((means > 0) & (means < 1)).all())


def test_closed_form_kl_matches_a_monte_carlo_estimate_within_one_percent() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    logvar = torch.randn(3, 8, generator=gen, dtype=torch.float64) * 0.8 - 0.5
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    z = q.sample((200_000,))
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    closed = gaussian_kl(mu, logvar)
    assert bool((closed > 1.0).all())  # far from 0, so a relative tolerance means something
    assert torch.allclose(closed, monte_carlo, rtol=0.01)
    assert torch.allclose(closed, kl_divergence(q, p).sum(-1), rtol=1e-12)
    assert gaussian_kl(torch.zeros(2, 8), torch.zeros(2, 8)).tolist() == [0.0, 0.0]


def test_loss_is_the_negative_elbo_per_image_in_nats() -> None:
    torch.manual_seed(3)
    model = VAE()
    x = (torch.rand(6, 196) > 0.6).float()
    torch.manual_seed(11)
    loss, terms = negative_elbo(model, x, samples=2)
    torch.manual_seed(11)  # the same reparameterisation noise, computed independently in float64
    eps = torch.randn(2, 6, 8).double()
    net = model.double()
    mu, logvar = net.encoder(x.double()).chunk(2, dim=-1)
    q = Normal(mu, (0.5 * logvar).exp())
    z = mu + q.scale * eps
    log_px = Bernoulli(probs=torch.sigmoid(net.decoder(z))).log_prob(x.double()).sum(-1).mean(0)
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    elbo = log_px - kl  # one value per image
    assert loss.item() == pytest.approx(-elbo.mean().item(), rel=1e-5)
    assert terms["recon_ll"].item() == pytest.approx(log_px.mean().item(), rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-5)
    assert terms["elbo"].item() == pytest.approx(elbo.mean().item(), rel=1e-5)


def test_the_models_loss_is_the_negative_elbo_with_its_mc_samples() -> None:
    """VAE.loss(batch) is the task's former step loss, negative_elbo(model, x, vae.mc_samples)."""
    torch.manual_seed(3)
    model, x = VAE(mc_samples=3), (torch.rand(6, 196) > 0.6).float()
    torch.manual_seed(11)
    loss, terms = model.loss({"x": x})
    torch.manual_seed(11)
    expected, expected_terms = negative_elbo(model, x, samples=3)
    assert torch.equal(loss, expected)
    assert all(torch.equal(terms[k], expected_terms[k]) for k in ("recon_ll", "kl", "elbo"))
    assert VAE().mc_samples == 1  # without config: the one-draw estimator
    with pytest.raises(ValueError, match="mc_samples"):
        VAE(mc_samples=0)


def test_untrained_zero_network_costs_196_log_2_nats_per_image() -> None:
    model = VAE()
    for p in model.parameters():
        nn.init.zeros_(p)
    loss, terms = negative_elbo(model, (torch.rand(4, 196) > 0.5).float(), samples=2)
    assert loss.item() == pytest.approx(196 * math.log(2), rel=1e-6)  # p = 1/2 per pixel, KL = 0
    assert terms["kl"].item() == 0.0


def test_iwae_chunks_combine_to_the_bound_over_all_samples() -> None:
    torch.manual_seed(0)
    model = VAE().double()
    x = (torch.rand(3, 196) > 0.5).double()
    eps = torch.randn(50, 3, 8, dtype=torch.float64)
    chunked = iwae_bound(model, x, 50, chunk=7, noise=eps)
    mu, logvar = model.encode(x)
    q = Normal(mu, (0.5 * logvar).exp())
    z = mu + q.scale * eps
    log_w = (Bernoulli(logits=model.decode_logits(z)).log_prob(x).sum(-1)
             + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
    direct = torch.log(torch.exp(log_w).mean(0))  # fine in float64 for these magnitudes
    assert torch.allclose(chunked, direct, rtol=1e-10)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """In-process runs set torch's thread count (hardware.threads); give the next test its own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_vae() -> tuple[VAE, torch.Tensor]:
    """A VAE trained for 200 updates on the offline digits, and 100 validation images."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these small layers run fastest on one thread
    torch.manual_seed(0)
    data = load_binarized(load_mnist5k(val_size=100), _data_cfg())
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = Loader(Split(x=data.train), 100, shuffle=True, seed=0)
    step = 0
    for epoch in range(10):
        for batch in loader.epoch(epoch):
            loss, _ = negative_elbo(model, batch["x"], 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == 200:
                torch.set_num_threads(threads)
                return model.eval(), data.val
    raise AssertionError("not reached")


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(trained_vae: tuple[VAE, torch.Tensor]) -> None:
    model, x = trained_vae
    torch.set_num_threads(1)
    budget = 1000  # importance samples per image for every k, so each estimate is as precise

    def iwae(k: int) -> float:  # budget / k independent IWAE-k estimates per image, averaged
        gen = torch.Generator().manual_seed(k)
        return iwae_bound(model, x.repeat(budget // k, 1), k, chunk=k, generator=gen).mean().item()

    with torch.no_grad():
        recon, kl = elbo_terms(model, x, budget, generator=torch.Generator().manual_seed(1))
        elbo = (recon - kl).mean().item()
        bounds = {k: iwae(k) for k in (1, 10, 100)}
    assert bounds[1] == pytest.approx(elbo, abs=0.05)  # k = 1 is the ELBO
    assert elbo < bounds[10] - 0.2 and bounds[10] < bounds[100] - 0.05


# ---- the engine's extra logged terms ------------------------------------------------------------


class _Rows:
    def __len__(self) -> int:
        return 4

    def epoch(self, epoch: int, start: int = 0):
        for i in range(start, 4):
            yield {"x": torch.full((2, 3), float(epoch * 4 + i))}


def _fit(tmp_path: Path, loss) -> list[dict]:
    model = nn.Linear(3, 1)
    model.loss = lambda batch: loss(model, batch["x"])
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the loss stays a known function of x
    train_cfg = OmegaConf.create({"steps": 6, "epochs": None, "log_every": 2, "eval_every": 100,
                                  "checkpoint_every": 100, "grad_clip": None})
    hw = setup_hardware(OmegaConf.create({"device": "cpu", "amp_dtype": None, "compile": False,
                                          "channels_last": False, "threads": None,
                                          "deterministic": True}))
    run = Run(cfg=OmegaConf.create({}), dir=tmp_path, hw=hw, metrics=MetricLog(tmp_path / "m.jsonl"))
    fit(TorchUpdate(model, opt, hw, train_cfg), _Rows(),
        None, run=run, train_cfg=train_cfg)
    return run.metrics.records("train")


def test_extra_terms_of_the_models_loss_are_averaged_into_the_train_records(tmp_path: Path) -> None:
    def loss(net: nn.Module, x: torch.Tensor):
        loss = net(x).pow(2).mean() * 0 + x[0, 0]
        return loss, {"double": 2 * x[0, 0], "square": x[0, 0] ** 2}

    records = _fit(tmp_path / "extra", loss)
    assert [r["step"] for r in records] == [2, 4, 6]
    # batch values 0..5 over the updates; each record averages two of them
    assert [r["loss"] for r in records] == [0.5, 2.5, 4.5]
    assert [r["double"] for r in records] == [1.0, 5.0, 9.0]
    assert [r["square"] for r in records] == [0.5, 6.5, 20.5]

    plain = _fit(tmp_path / "plain", lambda net, x: net(x).pow(2).mean() * 0 + x[0, 0])
    assert [sorted(r) for r in plain] == [["epoch", "loss", "lr", "split", "step"]] * 3
    assert [r["loss"] for r in plain] == [0.5, 2.5, 4.5]


def test_extra_term_named_like_a_record_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clash"):
        _fit(tmp_path, lambda net, x: (net(x).mean(), {"lr": x.mean()}))


# ---- end to end ---------------------------------------------------------------------------------


def test_tiny_vae_run_through_the_cli_writes_plots_summary_and_samples(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_cli([*TINY_VAE, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    summary = read_summary(run_dir)
    metrics = summary["metrics"]
    assert summary["experiment"] == "vae" and summary["objective"] == "val/elbo"
    assert set(metrics) == {"steps", "train_images", "train/elbo", "train/recon_ll", "train/kl",
                            "val/elbo", "val/recon_ll", "val/kl", "val/iwae_1", "val/iwae_10"}
    assert metrics["train_images"] == 4900 and metrics["steps"] == 40
    assert metrics["val/elbo"] == pytest.approx(metrics["val/recon_ll"] - metrics["val/kl"])
    assert -196 * math.log(2) < metrics["val/elbo"] < metrics["val/iwae_10"] < 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 41))  # every update
    assert all({"loss", "recon_ll", "kl", "elbo"} <= set(r) for r in train)
    assert all(r["elbo"] == pytest.approx(-r["loss"]) for r in train)
    assert [r["step"] for r in records if r["split"] == "val"] == [0, 20, 40]
    for name in ("elbo_terms", "train_vs_val_ll", "reconstructions", "samples", "latent_traversal"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000
    log_text = (run_dir / "train.log").read_text()
    assert "490 per digit (4900 images) instead of the requested 1000" in log_text

    out = tmp_path / "drawn" / "samples.png"  # the sampling script, in process
    capsys.readouterr()
    assert _sample_script().main([str(run_dir), "--n", "16", "--out", str(out), "--threshold", "0.5"]) == 0
    assert out.stat().st_size > 1000 and "wrote 16 samples" in capsys.readouterr().out


def _sample_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import vae_sample
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return vae_sample


def test_sampling_rebuilds_the_saved_model_exactly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _sample_script()
    run_dir = tmp_path / "run"
    run_inprocess([*TINY_VAE, "train.steps=5", "model.hidden=16", "vae.mc_samples=3"], run_dir)
    # the checkpoint alone rebuilds the model and its training loss: no config files are needed
    moved = tmp_path / "elsewhere.pt"
    (run_dir / "checkpoints" / "last.pt").rename(moved)
    model = script.load_vae(moved)
    saved = load_checkpoint(moved)["update"]["model"]
    assert model.decoder[0].out_features == 16 and model.mc_samples == 3
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    a, b = script.sample(model, 4, seed=2), script.sample(model, 4, seed=2)
    assert a.shape == (4, 14, 14) and torch.equal(a, b)
    assert set(script.sample(model, 4, seed=2, threshold=0.5).unique().tolist()) <= {0.0, 1.0}
    assert script.main([str(tmp_path)]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_resumed_vae_run_ends_identical_to_a_straight_one(tmp_path: Path) -> None:
    small = [*TINY_VAE, "vae.iwae_k=[10]"]  # checkpoints and evaluations every 20 updates
    straight = run_inprocess([*small, "train.steps=40"], tmp_path / "straight")["metrics"]
    run_inprocess([*small, "train.steps=20"], tmp_path / "split")
    resumed = run_inprocess([*small, "train.steps=40", "resume=true"], tmp_path / "split")["metrics"]
    assert resumed == straight  # so also: the same seed gives the same numbers
    assert ((tmp_path / "split" / "metrics.jsonl").read_text()
            == (tmp_path / "straight" / "metrics.jsonl").read_text())
