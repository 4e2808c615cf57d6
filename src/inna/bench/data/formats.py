"""The official file formats of the image data sets, read into numpy arrays and checked: IDX (MNIST,
Fashion-MNIST) and the CIFAR "python version" batches.

Numpy only; where the files are looked for, and how they become a :class:`~inna.bench.data.dataset.Dataset`, is
:mod:`inna.bench.data.sources`' business. Every problem is a :class:`~inna.bench.errors.DatasetFileError` naming
the file and what is wrong.

**Nothing read here runs code.** A CIFAR batch is a pickle; it is read by :class:`CifarUnpickler`, which resolves
only the globals that the official format (and numpy's own ways of pickling an array) needs: numpy's array and
dtype reconstructors, numpy scalars, and ``_codecs.encode`` (how Python 3's protocol 2 stores bytes). A pickle
that names any other global (``os.system``, ``builtins.eval``, ...) is refused before that global is even looked
up, with an error naming the file and the global.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetFileError

__all__ = [
    "CIFAR_GLOBALS",
    "IDX_FILES",
    "CifarUnpickler",
    "check_idx_split",
    "check_labels",
    "cifar_arrays",
    "find_idx",
    "read_cifar_batch",
    "read_idx",
    "why",
]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def why(err: BaseException) -> str:
    """``Type: message`` on one line (some errors, tarfile's, span several)."""
    return f"{type(err).__name__}: " + " ".join(str(err).split())


def check_labels(labels: np.ndarray, n: int, classes: int, where: str, what: str) -> None:
    """Labels must be a 1-D integer array of ``n`` class indices in ``[0, classes)``."""
    if labels.ndim != 1:
        raise DatasetFileError(f"{where}: expected labels of shape (N,), got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DatasetFileError(f"{where}: labels must be integers, got {labels.dtype.name}")
    if len(labels) != n:
        raise DatasetFileError(f"{where}: {len(labels)} labels for {n} {what}")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)]
        raise DatasetFileError(f"{where}: label {int(bad[0])} is outside [0, {classes}) "
                               f"({len(bad)} such labels)")  # fmt: skip


# --------------------------------------------------------------------------------------------------- IDX (MNIST)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzipped (``.gz``) or not.

    The header is parsed (magic ``0x0000`` + type code + number of dimensions, then one big-endian uint32 per
    dimension), so this reads any IDX file, not only the 28×28 ones.
    """
    path = Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise DatasetFileError(f"{path} is not a valid gzip file ({why(err)})") from None
    else:
        raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetFileError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - offset < count * dtype.itemsize:
        raise DatasetFileError(f"{path} is truncated: header says {dims}, file has {len(raw) - offset} data bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


#: The official IDX file names of each (split, part).
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def find_idx(directory: Path, stem: str) -> Path | None:
    # the official names, gzipped or not, and the "train-images.idx3-ubyte" spelling some mirrors use
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def check_idx_split(images: np.ndarray, labels: np.ndarray, ipath: Path, lpath: Path) -> None:
    """One split's IDX images must be uint8 ``(N, H, W)`` with ``N`` labels in ``[0, 10)``."""
    if images.ndim != 3:
        raise DatasetFileError(f"{ipath}: expected images of shape (N, H, W), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise DatasetFileError(f"{ipath}: images must be uint8 pixels (IDX type 0x08), got {images.dtype.name}; "
                               "the loader scales pixels by 1/255 and does not guess other encodings")  # fmt: skip
    check_labels(labels, len(images), 10, str(lpath), f"images in {ipath.name}")


# --------------------------------------------------------------------------------------------------- CIFAR


def _numpy_global(*candidates: str) -> Any:
    """The first importable ``module:name`` of ``candidates`` (numpy 2 moved ``numpy.core`` to ``numpy._core``)."""
    for candidate in candidates:
        module, name = candidate.split(":")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates} exists in this numpy")


def _reconstruct() -> Any:
    return _numpy_global("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray:_reconstruct")


def _scalar() -> Any:
    return _numpy_global("numpy._core.multiarray:scalar", "numpy.core.multiarray:scalar")


def _frombuffer() -> Any:
    return _numpy_global("numpy._core.numeric:_frombuffer", "numpy.core.numeric:_frombuffer")


def _codecs_encode() -> Any:
    import codecs

    return codecs.encode


#: (module, name) → a function returning the object: the only globals a CIFAR batch may name.
CIFAR_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _codecs_encode,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside :data:`CIFAR_GLOBALS`."""


class CifarUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`CIFAR_GLOBALS` (bytes keys, as the official files,
    written by Python 2, have them)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(io.BytesIO(raw), encoding="bytes")

    def find_class(self, module: str, name: str) -> Any:
        make = CIFAR_GLOBALS.get((module, name))
        if make is None:
            raise RefusedGlobal(f"{module}.{name}")
        return make()

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal(f"persistent id {pid!r:.40}")


def read_cifar_batch(where: str, raw: bytes) -> dict[bytes, object]:
    """The dict of one CIFAR python batch (``raw``, read from ``where``), unpickled by :class:`CifarUnpickler`."""
    try:
        batch = CifarUnpickler(raw).load()
    except RefusedGlobal as err:
        raise DatasetFileError(f"{where}: refused, not unpickled: the pickle imports {err}, which a CIFAR python "
                               "batch never does (only numpy arrays, lists, bytes and numbers are accepted)"
                               ) from None  # fmt: skip
    except Exception as err:  # UnpicklingError, EOFError ("truncated"), ValueError, ... on a damaged file
        raise DatasetFileError(f"{where} is not a readable CIFAR python batch (a pickle): "
                               f"{why(err)}") from None  # fmt: skip
    if not isinstance(batch, dict) or b"data" not in batch:
        keys = sorted(batch)[:5] if isinstance(batch, dict) else type(batch).__name__
        raise DatasetFileError(f"{where}: not a CIFAR python batch (expected a dict with b'data', got {keys})")
    return batch


def cifar_arrays(
    members: dict[str, tuple[str, bytes]], names: list[str], label_key: bytes, classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels int64) of the named batches, checked: uint8 ``data`` of shape
    (N, 3072), one label in ``[0, classes)`` per image."""
    data, labels = [], []
    for n in names:
        where, raw = members[n]
        batch = read_cifar_batch(where, raw)
        if label_key not in batch:
            raise DatasetFileError(f"{where}: the batch has no {label_key!r} key (keys: {sorted(batch)})")
        x = np.asarray(batch[b"data"])
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DatasetFileError(f"{where}: b'data' must be uint8 of shape (N, 3072), got {x.dtype.name} "
                                   f"of shape {x.shape}")  # fmt: skip
        try:
            y = np.asarray(batch[label_key])
        except (TypeError, ValueError) as err:
            raise DatasetFileError(f"{where}: {label_key!r} is not a list of labels ({err})") from None
        check_labels(y, len(x), classes, where, "images")
        data.append(x.reshape(-1, 3, 32, 32))
        labels.append(y.astype(np.int64))
    return np.concatenate(data), np.concatenate(labels)
