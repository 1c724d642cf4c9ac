"""SVMs on raw pixels vs Gabor features (mnist_svm) and the study table (mnist_compare)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, read_summary, run_inprocess, without_hydra
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError
from scipy.signal import correlate2d

from dlfp.config.checks import config_problems
from dlfp.data import Split
from dlfp.data.downsample import area_downsample
from dlfp.data.images import stratified_subset
from dlfp.errors import DlfpError
from dlfp.features.gabor import gabor_bank, gabor_features, gabor_kernel
from dlfp.tasks.compare import compose_experiment
from dlfp.tasks.svm import build_bank, build_classifier, to_unit_images

SVM_TINY = ["experiment=mnist_svm", "hardware=cpu", "dataset.train_size=500"]


def grating(theta: float, wavelength: float, size: int = 14, phase: float = 0.0) -> torch.Tensor:
    """cos stripes whose intensity varies along direction theta (x = columns, y = rows)."""
    coords = torch.arange(size, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / wavelength + phase)


# ---- Gabor bank -------------------------------------------------------------------------------------


def test_bank_has_every_combination_zero_mean_unit_norm() -> None:
    bank = gabor_bank(4, [3.0, 6.0], [0.0, 90.0], kernel_size=7, image_size=14)
    assert bank.kernels.shape == (16, 7, 7)
    assert bank.params[:4] == [(0.0, 3.0, 0.0), (0.0, 3.0, 90.0), (0.0, 6.0, 0.0), (0.0, 6.0, 90.0)]
    assert sorted({p[0] for p in bank.params}) == [0.0, 45.0, 90.0, 135.0]
    k = bank.kernels.double()
    assert torch.allclose(k.sum(dim=(1, 2)), torch.zeros(16, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(k.flatten(1).norm(dim=1), torch.ones(16, dtype=torch.float64), atol=1e-6)
    # even phase is symmetric about the centre, odd phase antisymmetric
    even, odd = bank.kernels[0], bank.kernels[1]
    assert torch.allclose(even, even.flip(0, 1), atol=1e-6)
    assert torch.allclose(odd, -odd.flip(0, 1), atol=1e-6)


@pytest.mark.parametrize("wavelength", [3.0, 6.0])
def test_filter_at_theta_responds_most_to_a_grating_at_theta(wavelength: float) -> None:
    orientations = 8
    bank = gabor_bank(orientations, [wavelength], [0.0, 90.0], kernel_size=9, image_size=14)
    thetas = [math.pi * i / orientations for i in range(orientations)]
    images = torch.stack([grating(t, wavelength, phase=0.7) for t in thetas]).unsqueeze(1).float()
    energy = gabor_features(images, bank, pool_grid=1, nonlinearity="energy")  # (8 gratings, 8 filters)
    assert energy.shape == (orientations, orientations)
    assert energy.argmax(dim=1).tolist() == list(range(orientations))
    # and the preference is strong: the orthogonal filter sees under a fifth of the matched energy
    for i in range(orientations):
        assert energy[i, (i + orientations // 2) % orientations] < 0.2 * energy[i, i]


def test_features_equal_an_independent_per_image_correlation_and_pooling() -> None:
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((3, 1, 14, 14))).float()
    bank = gabor_bank(3, [4.0], [0.0, 90.0], kernel_size=5, image_size=14)
    got = gabor_features(images, bank, pool_grid=7, nonlinearity="abs", chunk=2)  # chunks too
    expected = []
    for img in images[:, 0].double().numpy():
        per_filter = []
        for kernel in bank.kernels.double().numpy():
            response = np.abs(correlate2d(img, kernel, mode="same"))  # zero padding, centred
            per_filter.append(response.reshape(7, 2, 7, 2).mean(axis=(1, 3)).ravel())
        expected.append(np.concatenate(per_filter))
    assert got.shape == (3, 6 * 49)
    np.testing.assert_allclose(got.numpy(), np.stack(expected), rtol=1e-5, atol=1e-6)


def test_nonlinearities_give_the_documented_sizes_and_relations() -> None:
    images = torch.rand(5, 1, 14, 14)
    bank = gabor_bank(8, [3.0, 6.0], [0.0, 90.0], kernel_size=9, image_size=14)
    energy = gabor_features(images, bank, 4, "energy")
    absolute = gabor_features(images, bank, 4, "abs")
    relu = gabor_features(images, bank, 4, "relu")
    assert (energy.shape[1], absolute.shape[1], relu.shape[1]) == (256, 512, 1024)
    # relu keeps the positive and negative halves apart: together they are |r|
    half = relu.shape[1] // 2
    torch.testing.assert_close(relu[:, :half] + relu[:, half:], absolute)


def test_default_config_gives_a_compact_256_dim_vector() -> None:
    cfg = compose_config(["experiment=mnist_svm"])
    bank = build_bank(cfg.features, image_size=14)
    feats = gabor_features(torch.rand(2, 1, 14, 14), bank, cfg.features.pool_grid,
                           cfg.features.nonlinearity.value)
    assert len(bank) == 32 and feats.shape == (2, 256)


def test_single_kernel_follows_the_formula() -> None:
    k = gabor_kernel(5, theta=0.0, wavelength=4.0, phase=0.0, sigma=2.0)
    c = torch.arange(5, dtype=torch.float64) - 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    raw = torch.exp(-(x**2 + y**2) / 8) * torch.cos(2 * math.pi * x / 4)
    raw = raw - raw.mean()
    torch.testing.assert_close(k, raw / raw.norm())


# ---- downsampling and the training subset -----------------------------------------------------------


def test_downsampling_is_the_2x2_area_average_on_0_to_1() -> None:
    img = torch.tensor([[0, 255, 10, 20],
                        [255, 0, 30, 40],
                        [100, 100, 0, 0],
                        [100, 100, 0, 255]], dtype=torch.uint8).view(1, 1, 4, 4)
    expected = torch.tensor([[127.5, 25.0], [100.0, 63.75]]).view(1, 1, 2, 2)
    torch.testing.assert_close(area_downsample(img), expected)
    torch.testing.assert_close(to_unit_images(img, 2), expected / 255)
    assert to_unit_images(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 2).shape == (2, 1, 14, 14)
    with pytest.raises(DlfpError, match="svm.downsample=3 does not divide the 28x28"):
        to_unit_images(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), 3)


def test_training_subset_is_stratified_seeded_and_bounded() -> None:
    y = torch.arange(10).repeat_interleave(100)
    split = Split(x=torch.arange(1000).view(-1, 1, 1, 1).to(torch.uint8), y=y)
    a, b, c = (stratified_subset(split, 200, seed=s) for s in (0, 0, 1))
    assert len(a) == 200 and torch.bincount(a.y).tolist() == [20] * 10
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert stratified_subset(split, None, seed=0) is split
    with pytest.raises(DlfpError, match=r"dataset.train_size=1001 is larger than the training split \(1000"):
        stratified_subset(split, 1001, seed=0)


# ---- config errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["features.kernel_size=15"], "features.kernel_size=15 is larger than the 14x14 images"),
        (["features.sigma=0"], "features.sigma=0.0 must be positive"),
        (["features.wavelengths=[3.0,-1.0]"], "features.wavelengths must all be positive"),
        (["features.orientations=0"], "the Gabor bank is empty"),
        (["features.phases=[]"], "the Gabor bank is empty"),
        (["features.kernel_size=8"], "features.kernel_size=8 must be odd"),
    ],
)
def test_a_gabor_bank_that_cannot_work_is_refused_by_name(overrides: list[str], message: str) -> None:
    cfg = compose_config(["experiment=mnist_svm", *overrides])
    with pytest.raises(DlfpError, match=message):
        build_bank(cfg.features, image_size=14)


def test_train_size_larger_than_the_dataset_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(DlfpError, match=r"dataset.train_size=4001 is larger than the training split \(4000"):
        run_inprocess([*SVM_TINY, "dataset.train_size=4001"], tmp_path / "run")


@pytest.mark.parametrize("override", ["features.orientatons=4", "svm.CC=1"])
def test_typo_in_svm_sections_names_the_key(override: str) -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as info:
        compose_config(["experiment=mnist_svm", override])
    assert override.split(".")[1].split("=")[0] in f"{info.value} {info.value.__cause__}"


@pytest.mark.parametrize("override", ["features.kernel_size=big", "svm.approx=exact"])
def test_wrong_type_in_svm_sections_names_the_key(override: str) -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as info:
        compose_config(["experiment=mnist_svm", override])
    assert override.split("=")[0] in f"{info.value} {info.value.__cause__}"


@pytest.mark.parametrize(("overrides", "message"), [
    (["svm.gamma=wide"], "svm.gamma=wide: must be 'scale', 'auto' or a positive number"),
    (["svm.approx=rbf_sampler", "svm.kernel=poly"],
     "svm.approx=rbf_sampler, svm.kernel=poly: rbf_sampler approximates the rbf kernel only"),
])
def test_svm_settings_are_checked_by_the_schema_before_any_data(overrides: list[str], message: str) -> None:
    problems = config_problems(without_hydra(compose_config(["experiment=mnist_svm", *overrides])))
    assert len(problems) == 1 and problems[0].startswith(message)


# ---- classifiers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("approx", ["none", "nystroem", "rbf_sampler"])
def test_every_svm_variant_separates_rings_a_linear_model_cannot(approx: str) -> None:
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, 600)
    radius = np.where(np.arange(600) % 2 == 0, 1.0, 3.0) + rng.normal(0, 0.2, 600)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    y = (np.arange(600) % 2).astype(int)
    cfg = compose_config(["experiment=mnist_svm", f"svm.approx={approx}", "svm.n_components=200"]).svm
    pipe = build_classifier(cfg, x[:400], seed=0)
    pipe.fit(x[:400], y[:400])
    assert (pipe.predict(x[400:]) == y[400:]).mean() > 0.95
    linear = build_classifier(compose_config(["experiment=mnist_svm", "svm.kernel=linear"]).svm, x, 0)
    assert (linear.fit(x[:400], y[:400]).predict(x[400:]) == y[400:]).mean() < 0.75


# ---- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """In process: dlfp-reproduce's smoke run (tests/test_reproduce.py) runs the SVMs through the CLI."""
    run_dir = tmp_path_factory.mktemp("svm") / "run"
    run_inprocess(SVM_TINY, run_dir)
    return run_dir


def test_mnist_svm_end_to_end(svm_run: Path) -> None:
    summary = read_summary(svm_run)
    m = summary["metrics"]
    assert m["train_size"] == 500
    assert (m["raw/dims"], m["gabor/dims"]) == (196, 256)
    # 500 training digits, scored on mnist5k's 1,000 validation digits: both far above chance
    assert m["raw/accuracy"] > 0.75 and m["gabor/accuracy"] > 0.75
    assert m["gabor_gain/accuracy"] == pytest.approx(m["gabor/accuracy"] - m["raw/accuracy"])
    for features in ("raw", "gabor"):
        assert {f"{features}/fit_seconds", f"{features}/predict_seconds"} <= set(summary["timings"])
    for plot in ("gabor_filters.png", "confusion_raw_vs_gabor.png"):
        assert (svm_run / "plots" / plot).stat().st_size > 10_000
    results = (svm_run / "results.md").read_text()
    assert "| raw pixels | 196 |" in results and "| Gabor features | 256 |" in results
    assert "500 training images, scored on the val split" in results


def test_mnist_compare_tabulates_each_method_and_reruns_the_svm_identically(
    svm_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "compare"
    summary = run_inprocess([
        "experiment=mnist_compare", "hardware=cpu", "compare.experiments=[mnist_svm,mnist_nn_torch]",
        'compare.overrides.mnist_svm=["dataset.train_size=500"]',
        "train.steps=40", "train.eval_every=20", "train.log_every=10", "train.checkpoint_every=20",
    ], run_dir)
    with (run_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["SVM raw", "SVM Gabor", "PyTorch NN"]
    assert {r["split"] for r in rows} == {"val"}
    assert "| SVM Gabor |" in (run_dir / "results.md").read_text()
    assert (run_dir / "plots" / "val_error_networks.png").is_file()
    nn = read_summary(run_dir / "mnist_nn_torch")
    assert nn["metrics"]["steps"] == 40  # the forwarded train.steps reached the network
    # sub-runs go through the same runner as dlfp-train: the same summary.json
    assert set(nn) == set(summary) and "train.steps=40" in nn["overrides"]
    assert float(rows[2]["accuracy"]) == nn["metrics"]["val/accuracy"]
    # same seed and subset as the CLI run: the SVM numbers are identical
    alone = read_summary(svm_run)["metrics"]
    m = summary["metrics"]
    assert m["svm_raw/accuracy"] == alone["raw/accuracy"]
    assert m["svm_gabor/accuracy"] == alone["gabor/accuracy"]


def test_compare_forwards_only_the_overrides_an_experiment_has() -> None:
    cfg, _ = compose_experiment("mnist_nn_torch", ["features.pool_grid=2", "seed=3"], [])
    assert cfg.seed == 3 and "features" not in cfg  # groups it does not use are absent
    forwarded = ["features.pool_grid=2", "seed=3", "train.steps=5"]
    svm, overrides = compose_experiment("mnist_svm", forwarded, ["dataset.train_size=7"])
    assert (svm.features.pool_grid, svm.seed, svm.dataset.train_size) == (2, 3, 7)
    assert not {"train", "optimizer", "schedule"} & set(svm)  # nothing trains: absent
    assert overrides == ["experiment=mnist_svm", "features.pool_grid=2", "seed=3", "dataset.train_size=7"]
    with pytest.raises(DlfpError, match="cannot compose experiment nope"):
        compose_experiment("nope", [], [])


def test_default_compare_lists_the_four_methods_experiments() -> None:
    cfg = compose_config(["experiment=mnist_compare"])
    assert list(cfg.compare.experiments) == ["mnist_svm", "mnist_nn_numpy", "mnist_nn_torch"]
    assert OmegaConf.to_container(cfg.compare.labels) == {"mnist_nn_numpy": "NumPy NN",
                                                          "mnist_nn_torch": "PyTorch NN"}
