"""The in-memory data set (:class:`Dataset`) and its fixed, seeded draws (subsets, train/test splits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Dataset", "split", "stratified_order"]


@dataclass
class Dataset:
    """A classification data set held in memory as tensors.

    Attributes:
        name: the registry name (``"fashion-mnist"``, ...).
        x_train, x_test: float32 inputs, ``(N, D)`` for vectors, ``(N, C, L)`` for 1-D signals,
            ``(N, C, H, W)`` for images, scaled to [0, 1] for images.
        y_train, y_test: int64 class indices; for a text data set (:func:`load_text_dataset`) ``x`` are int64
            windows of token ids ``(N, block)`` and ``y`` the same windows shifted by one character.
        num_classes: number of classes (the vocabulary size for text).
        info: what identifies the data beyond its name (for text: the corpus source, file list, SHA-256); it
            is written into the suite and run records. Empty for the image and signal sets.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A copy keeping ``train`` training and ``test`` test examples, drawn without replacement, class-stratified
        (for sequence labels, 2-D ``y``: a uniform draw of whole windows), kept in their original order.

        The draw depends only on ``seed`` (not on the global RNG), so every optimizer sees the same subset.
        """
        return Dataset(
            self.name,
            *_take(self.x_train, self.y_train, train, seed, "train"),
            *_take(self.x_test, self.y_test, test, seed + 1, "test"),
            self.num_classes,
            dict(self.info),
        )


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """All indices, in a class-stratified random order (round-robin over per-class shuffled indices)."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    longest = max((len(p) for p in per_class), default=0)
    return np.asarray([idx[i] for i in range(longest) for idx in per_class if i < len(idx)], dtype=np.int64)


def _take(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None or n >= len(y):
        return x, y
    if n <= 0:
        raise ValueError(f"Invalid {what} subset size: {n} (must be a positive integer)")
    if y.ndim == 1:
        order = stratified_order(y.numpy(), seed)
    else:  # sequence targets (text windows): no class to stratify on, a seeded uniform draw of whole windows
        order = np.random.default_rng(seed).permutation(len(y))
    keep = torch.from_numpy(np.sort(order[:n]))
    return x[keep], y[keep]


def split(full: Dataset, n_test: int, seed: int) -> Dataset:
    """Stratified split of ``full.x_train`` into train and test (fixed ``seed``)."""
    order = stratified_order(full.y_train.numpy(), seed)
    test = torch.from_numpy(np.sort(order[:n_test]))
    train = torch.from_numpy(np.sort(order[n_test:]))
    x, y = full.x_train, full.y_train
    return Dataset(full.name, x[train], y[train], x[test], y[test], full.num_classes)
