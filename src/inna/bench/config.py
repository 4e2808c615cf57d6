"""What defines a training run (:class:`RunConfig`, its ``run_id``) and the seeds derived from it.

A run's identity is (task, data set and subsets, network and width, optimizer options and schedule, γ₀, seed,
epochs, batch size); where it runs (``data_dir``, ``device``) is not part of it. Every random number of the
run comes from seeds derived here from the run's ``seed`` alone (:func:`derive_seed`), never from a global
state, which is half of the determinism contract (the other half, the thread count, is in
:mod:`inna.bench.training`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .optimizers import OptimizerSpec

__all__ = ["RunConfig", "derive_seed", "init_seed"]


def derive_seed(*parts: int) -> int:
    """A 56-bit seed that depends only on ``parts`` (hash-based: nearby inputs give unrelated seeds)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:7], "big")


def init_seed(seed: int) -> int:
    """The torch seed used to initialise the weights: every optimizer starts from the same weights for a seed."""
    return derive_seed(seed, 0)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (and therefore its ``run_id``), plus where to run it.

    ``data_dir`` and ``device`` are not part of the identity: the same run on another machine is the same run.
    """

    task: str
    dataset: str
    model: str
    width: float
    optimizer: OptimizerSpec
    lr: float
    seed: int
    epochs: int
    batch_size: int = 32
    train_subset: int | None = None
    test_subset: int | None = None
    data_dir: str | None = field(default=None, compare=False)
    device: str = field(default="cpu", compare=False)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("data_dir")
        d.pop("device")
        d["optimizer"] = self.optimizer.key()
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """The fields copied into every record of the run, for readers that look at one line."""
        return {"run_id": self.run_id, "task": self.task, "optimizer": self.optimizer.name, "lr": self.lr,
                "seed": self.seed}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizer"] = asdict(self.optimizer)
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        o = dict(d.pop("optimizer"))
        o["grid"] = tuple(o.get("grid", ()))
        return RunConfig(optimizer=OptimizerSpec(**o), **d)
