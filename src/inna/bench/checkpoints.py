"""Checkpoints of unfinished runs: ``CHECKPOINT_DIR/<run_id>.pt``, written after every epoch but the last.

A checkpoint holds ``model``, ``optimizer``, ``scheduler`` (state dicts), ``epoch``, ``steps``, ``wall_time``
and ``records`` (the run's records up to that epoch, as JSON lines); it is written to a temporary file and moved
into place with ``os.replace``, so it is either the old one or the new one, never half of one. Before any run
starts, :func:`prepare_checkpoints` (in the process that owns the results file) decides for each pending run
whether its checkpoint can be resumed from:

* a checkpoint that cannot be read, or lacks a field, is **set aside** (renamed ``<run_id>.pt.damaged``, with a
  warning naming it) and the run starts again from epoch 0;
* a checkpoint **ahead of the results** (an epoch saved whose record never reached the results file, which
  happens when the parent dies with its workers, or after ``--repair`` dropped a line) is deleted and the run
  starts again, so no epoch is ever missing from the results.

A checkpoint is read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, so a
checkpoint written by someone else (a shared results directory) cannot run code here; one that tries is refused
and set aside like any damaged one. Remote executors (Slurm, Ray) keep a checkpoint ahead of the results
(``keep_ahead=True``): the run, resumed from it, reports the records it holds.

Restarting is always safe: a run's numbers depend only on its definition, so it writes the same records again.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig

__all__ = ["CheckpointError", "atomic_save", "checkpoint_path", "load_checkpoint", "prepare_checkpoints", "set_aside"]

_FIELDS = ("model", "optimizer", "scheduler", "epoch", "steps", "wall_time", "records")
DAMAGED_SUFFIX = ".damaged"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be resumed from."""


def checkpoint_path(checkpoint_dir: str | os.PathLike[str], run_id: str) -> Path:
    return Path(checkpoint_dir) / f"{run_id}.pt"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace`` onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path``; :class:`CheckpointError` (naming the file) if it is not a valid one."""
    try:
        with warnings.catch_warnings():  # torch warns about a protocol it did not write: a file to refuse anyway
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # what weights_only refuses: a global outside tensors and containers
        first = " ".join(str(err).split())[:300]
        raise CheckpointError(f"{path} is refused, not loaded: it holds more than tensors and plain data, which a "
                              f"run checkpoint never does ({first})") from None  # fmt: skip
    except Exception as err:  # torch.load raises many kinds (EOFError, RuntimeError, ...)
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or any(k not in state for k in _FIELDS):
        raise CheckpointError(f"{path} is not a run checkpoint (expected a dict with {', '.join(_FIELDS)})")
    if not isinstance(state["epoch"], int) or state["epoch"] < 1:
        raise CheckpointError(f"{path} has an invalid epoch {state['epoch']!r}")
    records = state["records"]
    if not isinstance(records, list) or not all(isinstance(line, str) for line in records):
        raise CheckpointError(f"{path} has invalid records (expected a list of JSON lines)")
    return state


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``<name>.damaged`` (replacing an older one) and return the new path."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    os.replace(path, target)
    return target


def prepare_checkpoints(
    pending: Iterable[RunConfig], recorded: Mapping[str, int], checkpoint_dir: str | os.PathLike[str],
    log: Callable[[str], Any], *, keep_ahead: bool = False,
) -> None:  # fmt: skip
    """Set aside damaged checkpoints and delete those ahead of the results (see the module docstring);
    ``recorded`` maps a run to its last recorded epoch (:attr:`~inna.bench.records.RunRecords.last_recorded_epoch`)."""
    for c in pending:
        path = checkpoint_path(checkpoint_dir, c.run_id)
        if not path.is_file():
            continue
        try:
            epoch = load_checkpoint(path)["epoch"]
        except CheckpointError as err:
            aside = set_aside(path)
            log(f"[inna bench] warning: checkpoint {err}; set aside as {aside.name}, run {c.run_id} starts again")
            continue
        if epoch > recorded.get(c.run_id, -1) and not keep_ahead:
            path.unlink()
