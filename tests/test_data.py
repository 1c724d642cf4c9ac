"""Dataset loading: the embedded mnist5k, IDX folders, corrupt files and the offline error."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from dlfp.data import mnist
from dlfp.data.images import stratified_holdout
from dlfp.data.loader import InMemoryLoader
from dlfp.data.mnist5k import load_mnist5k
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
    loader = InMemoryLoader(data.val, 64, data.mean, data.std, shuffle=True, seed=1)
    batches = list(loader.epoch(0))
    assert len(batches) == len(loader) == 1000 // 64
    seen = torch.cat([y for _, y in batches])
    assert len(seen) == 15 * 64
    xb, _ = batches[0]
    assert xb.dtype == torch.float32 and xb.shape == (64, 1, 28, 28)
    assert abs(float(xb.mean())) < 0.3  # roughly standardised
    assert torch.equal(torch.cat([y for _, y in loader.epoch(0)]), seen)  # same epoch, same order
    assert not torch.equal(torch.cat([y for _, y in loader.epoch(1)]), seen)
    assert torch.equal(next(iter(loader.epoch(0, start=3)))[1], batches[3][1])  # resumable mid-epoch


def test_missing_data_from_the_cli_is_one_line_without_traceback(tmp_path: Path) -> None:
    from conftest import run_cli

    proc = run_cli(["dataset=mnist", f"paths.data_dir={tmp_path}/empty", "dataset.download=false",
                    f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "error: mnist files not found" in proc.stderr and "dataset=mnist5k" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "summary.json").exists()
    assert "mnist files not found" in (tmp_path / "run" / "error.txt").read_text()
