"""CIFAR-10: the models and their parameter counts, augmentation against torchvision's, the data
sources and their cache, the errors, and tiny runs of each experiment on the generated data."""

from __future__ import annotations

import gzip
import io
import json
import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_DATA, read_summary, run_cli, run_inprocess
from torch import nn

from dlfp.data import cifar
from dlfp.data.transforms import ColorJitter, HorizontalFlip, RandomCrop
from dlfp.errors import DlfpError
from dlfp.models import model_from_schema

# ---- models ------------------------------------------------------------------------------------


def test_allcnn_t_has_the_studys_1_37m_conv_weights() -> None:
    model = model_from_schema("allcnn_t")
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv == 1_368_480
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_resnet_counts_equal_torchvisions_with_the_cifar_stem(depth: int) -> None:
    import torchvision

    reference = getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
    reference.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    reference.maxpool = nn.Identity()
    ours = model_from_schema("resnet", depth=depth)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(reference)
    shapes = lambda m: sorted(tuple(p.shape) for p in m.parameters())  # noqa: E731
    assert shapes(ours) == shapes(reference)
    assert ours(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_zero_initialised_blocks_start_as_identities_and_preactivation_runs() -> None:
    model = model_from_schema("resnet", zero_init_residual=True).eval()
    block = model.blocks[0]  # 64 -> 64, no downsampling
    x = torch.relu(torch.randn(2, 64, 8, 8))
    torch.testing.assert_close(block(x), x)
    pre = model_from_schema("resnet", preact=True)
    assert pre(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_param_count_script_prints_every_model(capsys: pytest.CaptureFixture) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import param_count
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    param_count.main(["allcnn_t", "resnet18", "fastnet"])
    out = capsys.readouterr().out
    assert "1,368,480" in out and "11,173,962" in out
    assert "fastnet       1,972,792    1,971,352" in out  # the whitening filters and BN scales are frozen


# ---- augmentation, per image, against torchvision ------------------------------------------------


def test_batched_augmentation_equals_torchvision_per_image() -> None:
    from torchvision.transforms.v2 import functional as tvf

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=gen)
    flip, crop, jitter = HorizontalFlip(), RandomCrop(4, padding_mode="reflect"), ColorJitter(0.2, 0.2)
    mirrored = flip.params(12, gen, x.device)
    offsets = crop.params(12, gen, x.device)
    b, c, brightness_first = jitter.params(12, gen, x.device)
    ours = jitter.apply(crop.apply(flip.apply(x, mirrored), offsets), b, c, brightness_first)
    assert mirrored.any() and not mirrored.all() and brightness_first.any() and not brightness_first.all()
    for i in range(12):
        img = tvf.horizontal_flip(x[i]) if mirrored[i] else x[i]
        top, left = int(offsets[0, i]), int(offsets[1, i])
        img = tvf.crop(tvf.pad(img, [4], padding_mode="reflect"), top, left, 32, 32)
        bright, contrast = float(b[i]), float(c[i])
        if brightness_first[i]:
            img = tvf.adjust_contrast(tvf.adjust_brightness(img, bright), contrast)
        else:
            img = tvf.adjust_brightness(tvf.adjust_contrast(img, contrast), bright)
        torch.testing.assert_close(ours[i], img, atol=1e-6, rtol=0)


# ---- data sources, cache, errors ----------------------------------------------------------------


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def _image_folder(root: Path, per_class: int = 2) -> Path:
    from PIL import Image

    for split, offset in (("train", 0), ("test", 100)):
        for k, name in enumerate(cifar.CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for j, image in enumerate(_images(per_class, offset + 10 * k)):
                Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{j:04d}.png")
    return root


def test_image_folder_archive_is_decoded_once_into_a_cache_rebuilt_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _image_folder(tmp_path / "tree")
    archive = tmp_path / "data" / "cifar10.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "test", arcname="test")
    data = cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 10, 20)
    bird = torch.from_numpy(_images(2, 100 + 10 * cifar.CLASSES.index("bird"))[1])
    assert any(torch.equal(img, bird) for img in data.test.x)  # PNG round trip: exact pixels
    caches = list(archive.parent.glob(".dlfp-cache-*"))
    assert len(caches) == 1
    decoded = []
    monkeypatch.setattr(cifar, "_decode", lambda source: decoded.append(source))
    again = cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    assert decoded == [] and torch.equal(again.train.x, data.train.x)  # read from the cache
    monkeypatch.undo()
    caches[0].write_bytes(b"damaged")  # a damaged cache is rebuilt, never trusted
    assert torch.equal(cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10).test.x,
                       data.test.x)
    with tarfile.open(archive, "w:gz") as tar:  # a changed source gets a new cache
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "train", arcname="test")
    changed = cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    assert len(changed.test) == 20 and len(list(archive.parent.glob(".dlfp-cache-*"))) == 2


def test_python_batches_are_read_without_unpickling_anything_else(tmp_path: Path) -> None:
    folder = tmp_path / cifar.BATCHES
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"data": _images(10, i).reshape(10, -1), b"labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch))
    data = cifar.load_cifar10(str(tmp_path), download=False, val_size=10)
    assert (len(data.train), len(data.test)) == (40, 10)
    assert torch.equal(data.test.x, torch.from_numpy(_images(10, 5)))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    for cache in tmp_path.glob(".dlfp-cache-*"):
        cache.unlink()
    refused = r"test_batch is damaged \(UnpicklingError: builtins.print is not allowed"
    with pytest.raises(DlfpError, match=refused):
        cifar.load_cifar10(str(tmp_path), download=False, val_size=10)


def test_missing_damaged_and_unexpected_data_are_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(DlfpError) as info:
        cifar.load_cifar10(str(tmp_path / "empty"), download=False)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "cifar10-jpeg.tar.gz" in message
    assert "dataset=cifar_synthetic" in message and "download=false" in message
    truncated = tmp_path / "t" / "cifar10.tar.gz"
    truncated.parent.mkdir()
    tree = _image_folder(tmp_path / "tree", per_class=1)
    with tarfile.open(truncated, "w:gz") as tar:
        tar.add(tree / "train", arcname="train")
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DlfpError, match="cifar10.tar.gz is a damaged or truncated archive"):
        cifar.load_cifar10(str(tmp_path / "t"), download=False)
    (tree / "train" / "cat" / "0000.png").write_bytes(b"not an image")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cifar10").symlink_to(tree)
    with pytest.raises(DlfpError, match="0000.png in .* is not a readable image"):
        cifar.load_cifar10(str(tmp_path / "c"), download=False)
    (tree / "train" / "cat" / "0000.png").unlink()
    (tree / "train" / "unicorn").mkdir()
    (tree / "train" / "unicorn" / "0000.png").write_bytes(b"x")
    with pytest.raises(DlfpError, match="not CIFAR-10's splits or classes: unicorn"):
        cifar.load_cifar10(str(tmp_path / "c"), download=False)


def _tar_gz(tree: Path, damage=lambda tar_bytes: tar_bytes) -> bytes:
    """The tree as a .tar.gz, its tar bytes passed through ``damage`` before compression."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tree / "train", arcname="train")
        tar.add(tree / "test", arcname="test")
    return gzip.compress(damage(buffer.getvalue()))


def _bad_last_header(tar_bytes: bytes) -> bytes:
    """The last member's header checksum garbled: tarfile takes it for the end of the archive."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        last = tar.getmembers()[-1].offset
    damaged = bytearray(tar_bytes)
    damaged[last + 148:last + 156] = b"9999999\0"
    return bytes(damaged)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize(("damage", "says"), [
    (lambda tree: _tar_gz(tree, _bad_last_header), "a damaged member header after"),
    (lambda tree: _tar_gz(tree)[:-4], "Compressed file ended before the end-of-stream marker"),
    (lambda tree: _flip(_tar_gz(tree), -8), "CRC check failed"),  # the trailer's CRC
], ids=["bad-header-mid-archive", "truncated", "crc-mismatch"])
def test_a_damaged_archive_is_refused_not_read_in_part(tmp_path: Path, damage, says: str) -> None:
    """Each damage leaves every class with images and tarfile reading on, so only reading the stream
    to its end (the zeros after the last member, gzip's length and CRC) finds it."""
    archive = tmp_path / "data" / "cifar10.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(damage(_image_folder(tmp_path / "tree")))
    message = f"cifar10.tar.gz is a damaged or truncated archive \\({says}"
    with pytest.raises(DlfpError, match=message) as info:
        cifar.load_cifar10(str(archive.parent), download=False, val_size=10)
    assert str(info.value).endswith("replace it with an intact copy") and "\n" not in str(info.value)
    assert list(archive.parent.iterdir()) == [archive]  # nothing cached


def test_a_source_missing_a_class_in_either_split_is_refused(tmp_path: Path) -> None:
    tree = _image_folder(tmp_path / "data" / "cifar10")
    for split, name in (("train", "cat"), ("test", "truck")):
        removed = tree / split / name
        kept = removed.rename(tmp_path / "aside")
        with pytest.raises(DlfpError, match=f"cifar10 \\({split}\\): 18 images, none of class {name} "):
            cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
        kept.rename(removed)
    assert not list((tmp_path / "data").glob(".dlfp-cache-*"))


def _drop_last(arrays: dict) -> None:
    arrays["train_x"], arrays["train_y"] = arrays["train_x"][:-1], arrays["train_y"][:-1]


@pytest.mark.parametrize(("corrupt", "says"), [
    (lambda a: a.update(train_x=a["train_x"].astype(np.float32)), "images of dtype float32"),
    (lambda a: a.update(test_y=a["test_y"].astype(np.float64)), "labels of dtype float64"),
    (lambda a: a.update(train_y=np.where(a["train_y"] == 3, 12, a["train_y"])), "labels from 0 to 12"),
    (lambda a: a.update(train_x=a["train_x"][:, :1]), "images of shape (20, 1, 32, 32)"),
    (lambda a: a.update(test_y=np.where(a["test_y"] == 9, 0, a["test_y"])), "none of class truck"),
    (_drop_last, "not the counts its name states"),
], ids=["float-images", "float-labels", "label-out-of-range", "shape", "missing-class", "counts"])
def test_a_cache_failing_any_check_is_rebuilt_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                             corrupt, says: str) -> None:
    _image_folder(tmp_path / "data" / "cifar10")
    with caplog.at_level(logging.INFO, logger="dlfp.data.cifar"):
        data = cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    assert "20 training and 20 test images, all 10 classes" in caplog.text
    [cache] = (tmp_path / "data").glob(".dlfp-cache-*")
    assert cache.name.startswith(".dlfp-cache-cifar10-") and cache.name.endswith("-20-20.npz")
    with np.load(cache) as saved:
        arrays = dict(saved)
    corrupt(arrays)
    with cache.open("wb") as f:
        np.savez(f, **arrays)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dlfp.data.cifar"):
        again = cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(str(cache)) and says in warning and warning.endswith("; rebuilding it")
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.test.y, data.test.y)
    caplog.clear()
    cifar.load_cifar10(str(tmp_path / "data"), download=False, val_size=10)
    assert caplog.text == ""  # rebuilt once, trusted after


# ---- the experiments, tiny, on the generated data ------------------------------------------------

TINY_CIFAR = ["dataset=cifar_synthetic", "dataset.n_train=16", "dataset.val_size=10", "dataset.n_test=10",
              "hardware=cpu", "hardware.threads=1", "train.batch_size=8", "train.eval_batch_size=10"]


@pytest.mark.parametrize("experiment", [  # ResNet-34: BasicBlocks as in 18 (its counts are tested above)
    "cifar_resnet18", pytest.param("cifar_resnet34", marks=pytest.mark.slow), "cifar_resnet50"])
def test_each_resnet_experiment_runs_end_to_end(tmp_path: Path, experiment: str) -> None:
    """In process, one batch per epoch (the deep ResNets are slow even on 32x32 images). All-CNN-T
    runs through the CLI in the lr sweep below and in dlfp-reproduce's smoke run (test_reproduce)."""
    run_dir = tmp_path / "run"
    overrides = [f"experiment={experiment}", *TINY_CIFAR, "train.epochs=2"]
    run_inprocess([*overrides, "dataset.n_train=10", "train.batch_size=10"], run_dir)
    steps = 2
    summary = read_summary(run_dir)
    assert summary["metrics"]["steps"] == steps and 0 <= summary["metrics"]["test/accuracy"] <= 1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # every epoch, and none at step 0 (the recipe's train.eval_at_start=false)
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1.0, 2.0]
    assert [r["epoch"] for r in records if r["split"] == "test"] == [1.0, 2.0]
    lrs = [r["lr"] for r in records if r["split"] == "train"]
    assert lrs == [0.1, 0.1]  # the study's multistep schedule is at its first stage
    assert (run_dir / "plots" / "confusion.png").is_file()
    assert (run_dir / "plots" / "augmentations.png").stat().st_size > 10_000


def test_a_resumed_run_with_augmentation_ends_identical(tmp_path: Path) -> None:
    run = ["experiment=cifar_allcnn", *TINY_CIFAR, "model.c1=8", "model.c2=16", "dataset.n_train=32"]
    straight = run_inprocess([*run, "train.epochs=4"], tmp_path / "straight")
    run_inprocess([*run, "train.epochs=2"], tmp_path / "split")
    resumed = run_inprocess([*run, "train.epochs=4", "resume=true"], tmp_path / "split")
    assert resumed["metrics"] == straight["metrics"]
    assert ((tmp_path / "split" / "metrics.jsonl").read_text()
            == (tmp_path / "straight" / "metrics.jsonl").read_text())


@pytest.mark.slow
def test_the_real_cifar10_archive_loads(tmp_path: Path) -> None:
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not present")
    (tmp_path / "cifar10-jpeg.tar.gz").symlink_to(archive)
    data = cifar.load_cifar10(str(tmp_path), download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (45_000, 5_000, 10_000)
    assert torch.bincount(data.test.y).tolist() == [1000] * 10
    [cache] = tmp_path.glob(".dlfp-cache-*")
    assert cache.name.endswith("-50000-10000.npz")


@pytest.mark.slow
def test_the_real_archive_with_64_bytes_flipped_mid_way_is_refused(tmp_path: Path) -> None:
    """Read as far as tarfile goes, this copy gave 5,749 images of 2 classes and trained on them."""
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not present")
    damaged = bytearray(archive.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = bytes(b ^ 0xFF for b in damaged[middle:middle + 64])
    (tmp_path / "cifar10-jpeg.tar.gz").write_bytes(damaged)
    with pytest.raises(DlfpError, match="cifar10-jpeg.tar.gz is a damaged or truncated archive"):
        cifar.load_cifar10(str(tmp_path), download=False)
    assert [p.name for p in tmp_path.iterdir()] == ["cifar10-jpeg.tar.gz"]


def test_evaluating_a_split_the_dataset_lacks_is_one_clear_error(tmp_path: Path) -> None:
    message = r"classify.eval_splits names \['test'\], but dataset mnist5k has only \['val'\]"
    with pytest.raises(DlfpError, match=message):
        run_inprocess(["train.steps=2", "classify.eval_splits=[val,test]"], tmp_path / "run")


def test_tiny_lr_schedule_sweep_writes_its_table_and_figure(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    """The sweep with 2 of its 3 peak lrs and 2 of its 3 schedules (its lists overridden: 4 jobs)."""
    proc = run_cli(["-m", "experiment=cifar_allcnn", "sweep=cifar_lr", *TINY_CIFAR, "model.c1=4",
                    "model.c2=8", "train.epochs=2", "hydra/launcher=basic", "optimizer.lr=0.05,0.2",
                    "schedule=cifar_step,onecycle", f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0
    table = (sweep / "sweep_summary.md").read_text()
    for lr in ("0.05", "0.2"):
        for schedule in ("cifar_step", "onecycle"):
            assert f"| {lr} | {schedule} |" in table
    assert "4 jobs, 4 finished, 0 failed, 0 missing" in table
    assert (sweep / "val_accuracy_vs_epoch.png").stat().st_size > 10_000
