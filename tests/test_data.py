"""Dataset loading: the embedded mnist5k, IDX folders, corrupt files and the offline error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config, without_hydra

from dlfp.data import load_dataset, mnist
from dlfp.data.images import ImageData, Split, stratified_holdout
from dlfp.data.loader import Loader, image_loaders
from dlfp.data.mnist5k import load_mnist5k
from dlfp.data.transforms import RandomCrop, build_transforms
from dlfp.errors import DlfpError


def test_mnist5k_is_500_real_digits_per_class_with_a_fixed_stratified_split() -> None:
    data = load_mnist5k(val_size=1000, split_seed=0)
    assert data.train.x.shape == (4000, 1, 28, 28) and data.train.x.dtype == torch.uint8
    assert data.val.x.shape == (1000, 1, 28, 28) and data.test is None
    assert torch.bincount(data.train.y).tolist() == [400] * 10
    assert torch.bincount(data.val.y).tolist() == [100] * 10
    assert 0.1 < data.mean[0] < 0.2 and 0.25 < data.std[0] < 0.4  # MNIST-like statistics
    again = load_mnist5k(val_size=1000, split_seed=0)
    assert torch.equal(again.val.x, data.val.x)
    other = load_mnist5k(val_size=1000, split_seed=1)
    assert not torch.equal(other.val.y, data.val.y) or not torch.equal(other.val.x, data.val.x)


def test_stratified_holdout_is_exact_and_disjoint() -> None:
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, held = stratified_holdout(labels, 10, seed=3)
    assert len(held) == 10 and len(keep) == 90
    assert not set(keep) & set(held)
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _fake_mnist(folder: Path, gz: bool, n_train: int = 60, n_test: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.tile(np.arange(10, dtype=np.uint8), n_train // 10),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.tile(np.arange(10, dtype=np.uint8), n_test // 10),
    }
    folder.mkdir(parents=True)
    for key, stem in mnist.FILES.items():
        _write_idx(folder / (stem + (".gz" if gz else "")), arrays[key], gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_reads_an_idx_folder(tmp_path: Path, gz: bool) -> None:
    arrays = _fake_mnist(tmp_path / "MNIST" / "raw", gz)
    data = mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)
    assert len(data.train) == 50 and len(data.val) == 10 and len(data.test) == 20
    assert torch.equal(data.test.x[:, 0], torch.from_numpy(arrays["test_images"]))
    assert torch.bincount(data.val.y).tolist() == [1] * 10
    restored = torch.cat([data.train.x, data.val.x]).flatten(1).sum(1).sort().values
    original = torch.from_numpy(arrays["train_images"]).flatten(1).long().sum(1).sort().values
    assert torch.equal(restored, original)


def test_corrupt_idx_file_is_named(tmp_path: Path) -> None:
    _fake_mnist(tmp_path / "MNIST" / "raw", gz=False)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DlfpError, match="t10k-images-idx3-ubyte is truncated or corrupt"):
        mnist.load_mnist("mnist", root=str(tmp_path), download=False, val_size=10)


def test_missing_mnist_with_failed_download_explains_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    class NoNetworkMNIST:
        """Writes a partial file, then fails like a download without network."""

        def __init__(self, root: str, train: bool, download: bool) -> None:
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            (raw / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", NoNetworkMNIST)
    root = tmp_path / "data"
    with pytest.raises(DlfpError) as info:
        mnist.load_mnist("mnist", root=str(root), download=True)
    msg = str(info.value)
    assert "download failed" in msg and "no network" in msg
    assert str(root / "MNIST" / "raw") in msg and "t10k-labels-idx1-ubyte" in msg
    assert "dataset=mnist5k" in msg
    leftovers = [p for p in root.rglob("*") if p.is_file()]
    assert leftovers == []


def test_loader_batches_cover_an_epoch_once_and_normalise() -> None:
    data = load_mnist5k()
    loader = Loader(data.val, 64, shuffle=True, seed=1, transforms=build_transforms(["standardize"], data))
    batches = list(loader.epoch(0))
    assert len(batches) == len(loader) == 1000 // 64
    seen = torch.cat([b["y"] for b in batches])
    assert len(seen) == 15 * 64
    xb = batches[0]["x"]
    assert xb.dtype == torch.float32 and xb.shape == (64, 1, 28, 28)
    assert abs(float(xb.mean())) < 0.3  # roughly standardised
    expected = (data.val.x[:1].float() / 255 - data.mean[0]) / data.std[0]
    first = next(iter(Loader(data.val, 64, shuffle=False, transforms=loader.transforms).epoch(0)))
    assert torch.allclose(first["x"][:1], expected, atol=1e-5)
    assert torch.equal(torch.cat([b["y"] for b in loader.epoch(0)]), seen)  # same epoch, same order
    assert not torch.equal(torch.cat([b["y"] for b in loader.epoch(1)]), seen)
    assert torch.equal(next(iter(loader.epoch(0, start=3)))["y"], batches[3]["y"])  # resumable mid-epoch


def test_loader_takes_any_named_fields_and_keeps_a_single_batch_in_order() -> None:
    points = Split(x=torch.arange(10.0).unsqueeze(1), y=torch.arange(10.0).unsqueeze(1) * 2)
    whole = next(iter(Loader(points, 10, shuffle=True, seed=3).epoch(5)))
    assert torch.equal(whole["x"], points.x) and torch.equal(whole["y"], points.y)
    ragged = list(Loader(points, 4, shuffle=True, seed=3, drop_last=False).epoch(0))
    assert [len(b["x"]) for b in ragged] == [4, 4, 2]
    assert torch.equal(torch.cat([b["y"] for b in ragged]), 2 * torch.cat([b["x"] for b in ragged]))
    assert sorted(torch.cat([b["x"] for b in ragged]).squeeze(1).tolist()) == list(range(10))


def test_two_ranks_partition_each_epoch() -> None:
    split = Split(x=torch.arange(103))
    shards = [Loader(split, 5, shuffle=True, seed=7, rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 1):
        orders = [s.order(epoch).tolist() for s in shards]
        assert len(orders[0]) == len(orders[1]) == 51  # equal shards: one row of 103 left out
        assert not set(orders[0]) & set(orders[1])
        single = Loader(split, 5, shuffle=True, seed=7).order(epoch).tolist()
        assert sorted(orders[0] + orders[1]) == sorted(single[:102])
        seen = [int(v) for s in shards for b in s.epoch(epoch) for v in b["x"]]
        assert len(seen) == len(set(seen)) == 2 * len(shards[0]) * 5
    assert shards[0].order(0).tolist() != shards[0].order(1).tolist()


def test_random_transforms_repeat_per_batch_and_change_across_batches() -> None:
    images = Split(x=torch.rand(16, 1, 6, 6), y=torch.zeros(16, dtype=torch.long))
    augment = build_transforms([{"name": "random_crop", "padding": 2}, "hflip"], key="dataset.augment")
    loader = Loader(images, 4, shuffle=True, seed=0, transforms=augment)
    first = [b["x"] for b in loader.epoch(0)]
    again = [b["x"] for b in loader.epoch(0)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert torch.equal(next(iter(loader.epoch(0, start=2)))["x"], first[2])  # same on resume
    plain = [b["x"] for b in Loader(images, 4, shuffle=True, seed=0).epoch(0)]
    assert any(not torch.equal(a, b) for a, b in zip(first, plain))
    assert all(a.shape == b.shape for a, b in zip(first, plain))
    with pytest.raises(DlfpError, match="'blur', which is not a transform"):
        build_transforms(["blur"])


def test_the_dataset_section_holds_the_transforms_and_its_loader_is_built_without_them() -> None:
    cfg = without_hydra(compose_config(["experiment=cifar_fast", "dataset=cifar_synthetic",
                                        "dataset.n_train=20", "dataset.val_size=10", "dataset.n_test=10",
                                        "train.batch_size=4"]))
    data = load_dataset(cfg.dataset)  # load_cifar_synthetic takes neither transforms nor augment
    assert len(data.train) == 20
    train, evals = image_loaders(data, cfg, "cpu")
    assert [type(t).__name__ for t in train.transforms] == ["HorizontalFlip", "RandomCrop", "Standardize"]
    assert {split: [type(t).__name__ for t in loader.transforms] for split, loader in evals.items()} == {
        "val": ["Standardize"], "test": ["Standardize"]}


def _images(side: int, channels: int = 3) -> ImageData:
    split = Split(x=torch.randint(0, 256, (4, channels, side, side), dtype=torch.uint8),
                  y=torch.zeros(4, dtype=torch.long))
    return ImageData("tiny", split, split, None, ["a"], (0.5,) * 3, (0.25,) * 3)


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "random_crop", "padding": 8}, "augment[0].padding=8 must be below the image size, 8x8 in"),
    ({"name": "random_crop", "padding": 9, "padding_mode": "reflect"}, "padding=9 must be below the image"),
    ({"name": "hflip", "field": "y"}, "dataset.augment[0].field=y must name an image field of dataset tiny"),
    ({"name": "hflip", "p": "abc"}, "dataset.augment[0].p=abc must be a number >= 0 and <= 1"),
    ({"name": "random_crop", "padding": 2.7}, "dataset.augment[0].padding=2.7 must be an integer >= 0"),
    ({"name": "hflip", "fieldx": 1}, "dataset.augment[0].fieldx is not an option of hflip"),
    ({"name": "color_jitter"}, "dataset.augment[0]: color_jitter needs colour images (3 channels"),
])
def test_a_transform_that_cannot_work_on_the_images_is_one_error_naming_its_option(entry, message) -> None:
    with pytest.raises(DlfpError) as info:
        build_transforms([entry], _images(8, channels=1), key="dataset.augment")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_transform_options_are_read_with_their_schema_types_and_defaults() -> None:
    crop, flip = build_transforms([{"name": "random_crop", "padding": "3", "padding_mode": "reflect"},
                                   {"name": "hflip", "p": 1}], _images(8))
    assert (crop.padding, crop.mode, flip.p, flip.alternate) == (3, "reflect", 1.0, False)
    default_crop, = build_transforms(["random_crop"])
    assert default_crop.padding == RandomCrop().padding == 4  # one default, the schema's
    x = torch.rand(2, 1, 5, 5)
    unpadded, = build_transforms([{"name": "random_crop", "padding": 0}], _images(8))
    assert torch.equal(unpadded({"x": x}, torch.Generator().manual_seed(0))["x"], x)  # padding 0: a no-op


def test_train_size_takes_a_stratified_seeded_subset_for_every_loader() -> None:
    full = load_mnist5k()
    part = load_mnist5k(train_size=400, subset_seed=1)
    assert len(part.train) == 400 and torch.bincount(part.train.y).tolist() == [40] * 10
    assert torch.equal(part.val.y, full.val.y)  # validation untouched
    assert not torch.equal(load_mnist5k(train_size=400, subset_seed=2).train.y, part.train.y) or \
        not torch.equal(load_mnist5k(train_size=400, subset_seed=2).train.x, part.train.x)


def test_missing_data_from_the_cli_is_one_line_without_traceback(tmp_path: Path) -> None:
    from conftest import run_cli

    proc = run_cli(["dataset=mnist", f"paths.data_dir={tmp_path}/empty", "dataset.download=false",
                    f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "error: mnist files not found" in proc.stderr and "dataset=mnist5k" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "summary.json").exists()
    assert "mnist files not found" in (tmp_path / "run" / "error.txt").read_text()
