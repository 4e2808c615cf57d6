"""Data sets for the benchmark, loaded from local files only (never a download at run time).

* :mod:`~inna.bench.data.dataset`: :class:`Dataset`, a classification set held in memory, and its seeded draws;
* :mod:`~inna.bench.data.formats`: the official file formats (IDX, the CIFAR python batches), read and checked;
  nothing read there runs code (CIFAR's pickles go through an unpickler that resolves numpy's array types only);
* :mod:`~inna.bench.data.sources`: where each set comes from (Debian's package, ``--data-dir``, the ``bench``
  extra's packages, text files) and how its files become a :class:`Dataset`;
* :mod:`~inna.bench.data.registry`: names → loaders (:data:`DATASETS`), :func:`load_dataset`,
  :func:`dataset_available`.

Every file is checked as it is read, and a damaged one is a :class:`~inna.bench.errors.DatasetFileError` that
names it and says what is wrong: a bad gzip stream, a truncated or foreign file, a pickle that is not a CIFAR
batch (or names a global outside the format), missing keys, wrong shapes, a label count different from the image
count, labels outside ``[0, classes)``. Images must be stored as uint8 pixels (IDX type ``0x08``, CIFAR's uint8
``data``), the official formats: the loaders divide by 255, so images stored as other types are refused rather
than guessed at.
"""

from __future__ import annotations

from ..errors import DatasetFileError, DatasetNotFoundError
from .dataset import Dataset
from .formats import read_idx
from .registry import DATASETS, dataset_available, is_text_dataset, load_dataset
from .sources import (
    FASHION_MNIST_SYSTEM_DIR,
    TEXT_BLOCK,
    TEXT_PREFIX,
    TEXT_VAL_FRACTION,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_mnist1d,
    load_mnist5k,
    load_stdlib_text,
    load_text_dataset,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIR",
    "TEXT_BLOCK",
    "TEXT_PREFIX",
    "TEXT_VAL_FRACTION",
    "Dataset",
    "DatasetFileError",
    "DatasetNotFoundError",
    "dataset_available",
    "is_text_dataset",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "load_mnist5k",
    "load_stdlib_text",
    "load_text_dataset",
    "read_idx",
]
