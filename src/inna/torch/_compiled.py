r"""The fused path's compiled route: an update's readable reference compiled by ``torch.compile`` over a group.

CUDA and other devices take it (inductor fuses the reference into one pass per tensor), as does a CPU without the
C loop. It compiles once per group of parameter identities and hyperparameter set; the scalars (lr) travel as
0-dim device tensors, so a new value never recompiles and nothing syncs with the host: the step can be captured
in a CUDA graph. With GradScaler's ``grad_scale`` and ``found_inf`` the gradients are unscaled in the graph and
``torch.where`` keeps every tensor as it was when ``found_inf`` is nonzero (no host read). The result equals the
eager reference to round-off, not bitwise: inductor fuses and reorders.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._amp import inverse_scale
from ._cbuild import LOCK, stats

__all__ = ["guarded", "run"]

#: Compiled kernels, most recently used last, keyed by the reference, its hyperparameters and the group's parameter
#: identities. Each has its own copy of the driver's code object, hence its own dynamo cache (many optimizers in
#: one process never pile graphs onto one code object and hit the recompile limit); dynamo's guards still check
#: every layout, so a reused identity can only cost a recompilation, never a wrong result.
_COMPILED: OrderedDict[tuple, Callable[..., None]] = OrderedDict()
_MAX_COMPILED = 64


def guarded(
    reference: Callable[..., None],
    lists: Sequence[list[Tensor]],
    scalars: Sequence[Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
    grad_index: int | None,
    static: dict[str, Any],
) -> None:
    """The reference with the scaler's fused route, written with no host sync (what torch.compile traces)."""
    if grad_scale is None and found_inf is None:
        reference(*lists, *scalars, **static)
        return
    work = [[t.clone() for t in ts] for ts in lists]
    if grad_scale is not None and grad_index is not None:
        inv = inverse_scale(grad_scale)
        work[grad_index] = [g.mul_(inv) for g in work[grad_index]]
    reference(*work, *scalars, **static)
    keep = None if found_inf is None else found_inf.reshape(()) != 0
    for ts, ws in zip(lists, work):
        for t, w in zip(ts, ws):
            t.copy_(w if keep is None else torch.where(keep, t, w))


def _compiled(key: tuple) -> Callable[..., None]:
    with LOCK:
        kernel = _COMPILED.get(key)
        if kernel is None:
            ref = guarded
            clone = types.FunctionType(ref.__code__.replace(), ref.__globals__, ref.__name__, ref.__defaults__)
            kernel = _COMPILED[key] = torch.compile(clone, fullgraph=True, dynamic=False)
            stats["compiled"] += 1
            while len(_COMPILED) > _MAX_COMPILED:
                _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(key)
        return kernel


def run(
    reference: Callable[..., None],
    lists: Sequence[list[Tensor]],
    scalars: Sequence[Any],
    static: dict[str, Any],
    grad_index: int | None,
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> None:
    """``reference(*lists, *scalars, **static)`` compiled, on one (device, dtype) group."""
    device, dtype = lists[0][0].device, lists[0][0].dtype
    # Inductor drops in-place updates of 0-dim inputs (torch 2.13): hand it 1-element views instead (of every
    # list's: a list of step counters is all 0-dim whatever the parameters' shapes).
    if any(t.dim() == 0 for ts in lists for t in ts):
        lists = [[t.unsqueeze(0) if t.dim() == 0 else t for t in ts] for ts in lists]
    sdtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    scalar_ts = [torch.as_tensor(s, dtype=sdtype, device=device).reshape(()) for s in scalars]
    gs = None if grad_scale is None else grad_scale.to(device, non_blocking=True)
    fi = None if found_inf is None else found_inf.to(device, non_blocking=True)
    key = (reference, tuple(sorted(static.items())), grad_index, gs is not None, fi is not None, *map(id, lists[0]))
    _compiled(key)(reference, lists, scalar_ts, gs, fi, grad_index, static)


def forget() -> None:
    """Drop the compiled kernels (tests and benchmarks)."""
    with LOCK:
        _COMPILED.clear()
