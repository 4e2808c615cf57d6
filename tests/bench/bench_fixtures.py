"""Writers of small data files in the official formats (IDX, CIFAR python pickles) for the loader tests."""

from __future__ import annotations

import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """An IDX file: 0, 0, type 0x08 (uint8), ndim, then big-endian dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def make_idx_dir(root: Path, n_train: int = 40, n_test: int = 20, compress: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{split}-labels-idx1-ubyte", labels, compress)
    return root


def _cifar_batch(rng: np.random.Generator, n: int, classes: int, fine: bool) -> dict[bytes, object]:
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(i % classes) for i in range(n)]
    if fine:
        return {b"data": data, b"fine_labels": labels, b"coarse_labels": [v // 5 for v in labels],
                b"filenames": [b"x.png"] * n}  # fmt: skip
    return {b"data": data, b"labels": labels, b"batch_label": b"fixture", b"filenames": [b"x.png"] * n}


def make_cifar10_dir(root: Path, per_batch: int = 10, n_test: int = 20, archive: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(rng, per_batch, 10, False)))
    (folder / "test_batch").write_bytes(pickle.dumps(_cifar_batch(rng, n_test, 10, False)))
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    return root


def make_cifar100_dir(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train").write_bytes(pickle.dumps(_cifar_batch(rng, n_train, 100, True)))
    (folder / "test").write_bytes(pickle.dumps(_cifar_batch(rng, n_test, 100, True)))
    return root
