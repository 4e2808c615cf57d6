"""``--devices``: one local worker per device, each pinned to its own.

A worker for ``cuda:N`` gets ``CUDA_VISIBLE_DEVICES`` set to that one GPU before torch initialises CUDA, and
trains on ``cuda:0``, which is then that GPU: a worker cannot touch (or allocate a context on) another worker's
device. ``N`` counts the GPUs this process sees: when ``CUDA_VISIBLE_DEVICES`` is already set (``2,3``, say),
``cuda:1`` is the physical GPU ``3``, as torch numbers them here. A ``cpu`` entry is a worker that sees no GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["WorkerSlot", "parse_devices", "worker_slots"]


@dataclass(frozen=True)
class WorkerSlot:
    """One worker's pinning: the environment it starts with and the device its runs use."""

    label: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str, cuda_count: int | None = None) -> list[str]:
    """``auto`` (every visible GPU) or a comma-separated list of ``cuda:N``/``cuda``/``cpu`` → device names.

    Checked against the GPUs torch sees (``cuda_count``, counted when not given): an index out of range or
    ``auto`` without a GPU is a ``ValueError`` naming the entry.
    """
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise ValueError(f"--devices {text!r}: no device given (expected auto, or e.g. cuda:0,cuda:1)")
    if entries == ["auto"]:
        count = _cuda_count() if cuda_count is None else cuda_count
        if count == 0:
            raise ValueError("--devices auto: no CUDA device is visible to torch (use --workers N on a CPU)")
        return [f"cuda:{i}" for i in range(count)]
    out = []
    for e in entries:
        if e == "cpu":
            out.append(e)
            continue
        index = "0" if e == "cuda" else e.removeprefix("cuda:")
        if not e.startswith("cuda") or not index.isdigit():
            raise ValueError(f"--devices: invalid device {e!r} (expected cuda:N, cuda, cpu, or auto alone)")
        count = _cuda_count() if cuda_count is None else cuda_count
        if int(index) >= count:
            raise ValueError(f"--devices: {e} does not exist here: torch sees {count} CUDA device(s)")
        out.append(f"cuda:{int(index)}")
    return out


def worker_slots(devices: Sequence[str], environ: dict[str, str] | None = None) -> list[WorkerSlot]:
    """One :class:`WorkerSlot` per device (see the module docstring); ``environ`` is this process's environment
    (``os.environ`` when not given), whose ``CUDA_VISIBLE_DEVICES`` maps ``cuda:N`` to a physical GPU."""
    environ = dict(os.environ) if environ is None else environ
    visible = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    slots = []
    for d in devices:
        if d == "cpu":
            slots.append(WorkerSlot("cpu", "cpu", {"CUDA_VISIBLE_DEVICES": ""}))
            continue
        index = int(d.removeprefix("cuda:"))
        if visible and index >= len(visible):
            raise ValueError(f"--devices: {d} is not among CUDA_VISIBLE_DEVICES={','.join(visible)}")
        physical = visible[index] if visible else str(index)
        slots.append(WorkerSlot(d, "cuda:0", {"CUDA_VISIBLE_DEVICES": physical}))
    return slots
