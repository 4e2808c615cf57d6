r"""One dispatch for the INNA family: which path runs an update, over which groups of tensors.

An :class:`Update` describes one member of the family (INNA, INNAprop, and the Keras backend's INNAprop, which
counts steps per optimizer): its readable reference, its ``torch._foreach_*`` form and its C loop. :func:`run` is
the whole functional entry of every member (:func:`inna.torch.functional.inna`,
:func:`inna.torch.innaprop_functional.innaprop`, the Keras torch backend's multi-tensor step): it checks the call,
takes GradScaler's inputs (:mod:`inna.torch._amp`), runs the update on the ``state_dtype`` master copies where there
are some, picks the path and groups the tensors by device and dtype, once.

=====================================  ==============================  ==========================================
call                                    CPU (a C compiler found)        other devices, or no C loop
=====================================  ==============================  ==========================================
``fused=True``                          the C loop                      the reference compiled by ``torch.compile``
default (``foreach=None, fused=None``)  the C loop                      ``foreach`` (plain dense tensors)
``foreach=True``                        ``foreach``                     ``foreach``
``foreach=False``, ``differentiable``   the reference                   the reference
inside ``torch.compile``                the reference, traced           the reference, traced
=====================================  ==============================  ==========================================

When ``fused=True`` cannot run the C loop on CPU tensors (no C compiler, a dtype it does not serve, tensor
subclasses) or some tensors cannot be addressed by it (layouts), a once-only warning says why and what runs
instead.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _cbuild, _compiled
from ._amp import amp_prologue
from ._fused import _PLAIN_SET as _PLAIN
from ._fused import GRAD, plain_cpu
from ._warn import warn_once

__all__ = ["Update", "as_real", "c_loop_applies", "choose_path", "group_by_device_and_dtype", "run", "run_fused"]

_DTYPE, _DEVICE, _IS_CPU = Tensor.dtype.__get__, Tensor.device.__get__, Tensor.is_cpu.__get__


class Update(NamedTuple):
    """One member of the family, as the dispatch runs it: its paths are functions of ``module``, looked up by name
    at every call (one place to swap a path, as the tests do). Each takes the lists in the order of ``lists``
    (parameters first, gradients second), then the lr, then the hyperparameters as keywords."""

    #: the optimizer's name, in messages
    name: str
    #: the names of its lists, in messages
    lists: tuple[str, ...]
    #: the module that holds the functions named below
    module: str
    #: the readable reference, one tensor at a time: ``foreach=False``, ``differentiable``, what torch.compile
    #: traces (an lr Tensor stays a Tensor there)
    reference: str
    #: ``torch._foreach_*`` kernels on one (device, dtype) group, lr a float
    foreach: str
    #: the fused path over all lists, with ``grad_scale``, ``found_inf`` and ``warn`` keywords: :func:`run_fused`
    fused: str
    #: the C loop on one group of plain CPU tensors: ``c_loop(library, lists, lr, hyper, grad_scale, found_inf)``,
    #: returning why some tensors ran the reference instead (None when the loop took them all)
    c_loop: Callable[..., str | None]

    def path(self, which: str) -> Callable[..., None]:
        """The function of ``module`` named by the field ``which`` ("reference", "foreach" or "fused")."""
        return getattr(sys.modules[self.module], getattr(self, which))


def run(
    update: Update,
    lists: Sequence[list[Tensor]],
    *,
    lr: float | Tensor,
    hyper: dict[str, Any],
    masters: list[Tensor | None] | None = None,
    foreach: bool | None = None,
    fused: bool | None = None,
    differentiable: bool = False,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    """Apply one step of ``update`` in place to ``lists`` (see the module docstring for the path taken)."""
    _check_call(update, lists, foreach, fused, differentiable)
    if not lists[0]:
        return
    skip, grad_scale, found_inf = amp_prologue(lists[GRAD], masters, fused, grad_scale, found_inf)
    if skip:
        return
    targets, target_grads = _master_targets(lists[0], lists[GRAD], masters)
    work = [targets, target_grads, *lists[2:]]
    compiling = torch.compiler.is_compiling()
    explicit = fused is True  # asked for: say so when it cannot be honoured
    fused, foreach = choose_path(targets, foreach, fused, differentiable)
    if fused:
        update.path("fused")(*work, lr, grad_scale=grad_scale, found_inf=found_inf, warn=explicit, **hyper)
    elif foreach and not compiling:
        lr_, foreach_fn = _lr_value(lr, keep_tensor=False), update.path("foreach")
        for group in group_by_device_and_dtype(*work):
            foreach_fn(*group, lr_, **hyper)
    else:
        # traced by torch.compile, a Tensor lr stays a Tensor (no host sync, no recompilation), as it does when it
        # requires grad
        keep = compiling or (isinstance(lr, Tensor) and lr.requires_grad)
        update.path("reference")(*work, _lr_value(lr, keep_tensor=keep), **hyper)
    _write_back(lists[0], targets, masters)


def _check_call(
    update: Update, lists: Sequence[list[Tensor]], foreach: bool | None, fused: bool | None, differentiable: bool
) -> None:
    if len({len(ts) for ts in lists}) > 1:
        names = ", ".join(update.lists[:-1]) + f" and {update.lists[-1]}"
        lengths = ", ".join(str(len(ts)) for ts in lists)
        raise ValueError(f"{update.name}: {names} must have the same length, got {lengths}")
    if foreach and fused:
        raise RuntimeError(f"{update.name}: `fused` and `foreach` cannot both be True")
    if differentiable and (foreach or fused):
        raise RuntimeError(f"{update.name}: `differentiable=True` is only supported by the single-tensor path")


def choose_path(
    params: list[Tensor], foreach: bool | None, fused: bool | None, differentiable: bool
) -> tuple[bool, bool]:
    """``(fused, foreach)`` for a call given the user's ``foreach`` and ``fused``.

    The default (both None) on CPU is the C loop, when this machine has it for every dtype at hand; otherwise (other
    devices, ``differentiable``, inside ``torch.compile``) it is foreach where foreach applies, else the reference.
    """
    if foreach is None and fused is None and not differentiable and not torch.compiler.is_compiling():
        fused = c_loop_applies(params)
    if foreach is None and not fused:
        foreach = not differentiable and all(type(t) in _foreach_types() for t in params)
    return bool(fused), bool(foreach)


def c_loop_applies(params: list[Tensor]) -> bool:
    """Every tensor is a plain CPU tensor and the C loop serves each of their dtypes here."""
    if not plain_cpu(params):
        return False
    dtypes = {d.to_real() for d in set(map(_DTYPE, params))}  # complex tensors run as their real views
    return all(_cbuild.library(dtype) is not None for dtype in dtypes)


def _foreach_types() -> tuple[type, ...]:
    # torch.distributed.tensor appends DTensor to this list when imported; read it at call time.
    from torch.optim.optimizer import _foreach_supported_types

    return tuple(_foreach_supported_types)


def group_by_device_and_dtype(*lists: list[Tensor], real: bool = False) -> list[list[list[Tensor]]]:
    """The lists split by the device and dtype of the first list's tensors (one group, copied, in the common case
    where they all share them); with ``real``, complex tensors as their real views (``torch.view_as_real``)."""
    if _same_device_and_dtype(lists[0]):
        groups = [[list(ts) for ts in lists]]
    else:
        by_key: dict[tuple[torch.device, torch.dtype], list[list[Tensor]]] = defaultdict(lambda: [[] for _ in lists])
        for items in zip(*lists):
            for out, item in zip(by_key[(items[0].device, items[0].dtype)], items):
                out.append(item)
        groups = list(by_key.values())
    if real:
        groups = [[as_real(ts) for ts in group] if group[0][0].is_complex() else group for group in groups]
    return groups


def _same_device_and_dtype(tensors: list[Tensor]) -> bool:
    """Whether the ``tensors`` all share the first one's device and dtype (C-level iteration: this runs every step
    over every parameter)."""
    if not tensors:
        return True
    dtype, device = tensors[0].dtype, tensors[0].device
    if set(map(_DTYPE, tensors)) != {dtype}:
        return False
    if device.type == "cpu":
        return all(map(_IS_CPU, tensors))
    return set(map(_DEVICE, tensors)) == {device}


def as_real(tensors: list[Tensor]) -> list[Tensor]:
    """Complex tensors as their real views (``torch.view_as_real``), the others as they are."""
    return [torch.view_as_real(t) if t.is_complex() else t for t in tensors]


def run_fused(
    update: Update,
    lists: Sequence[list[Tensor]],
    lr: float | Tensor,
    hyper: dict[str, Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
    warn: bool,
) -> None:
    """The fused path, per (device, dtype) group: the C loop on CPU where this machine has it, else the reference
    compiled by torch.compile; ``warn``: say once when the C loop cannot take CPU tensors, and why."""
    reference = update.path("reference")
    if torch.compiler.is_compiling():
        # inside a graph being compiled: inductor fuses the reference as it is
        _compiled.guarded(reference, lists, (_lr_value(lr, True),), grad_scale, found_inf, GRAD, hyper)
        return
    for group in group_by_device_and_dtype(*lists, real=True):
        first = group[0][0]
        on_cpu = first.is_cpu and (grad_scale is None or grad_scale.is_cpu)
        plain = set(map(type, group[0])) <= _PLAIN  # one device per group: the types are what is left to check
        lib = _cbuild.library(first.dtype) if on_cpu and plain else None
        if lib is not None:
            why = update.c_loop(lib, group, _lr_value(lr, keep_tensor=False), hyper, grad_scale, found_inf)
            if why and warn:
                warn_once(f"{update.name}(fused=True): {why}; those tensors ran the eager reference (same arithmetic)")
            continue
        if warn and on_cpu:
            _warn_compiled(update, group[0])
        _compiled.run(reference, group, (_lr_value(lr, keep_tensor=True),), hyper, GRAD, grad_scale, found_inf)


def _warn_compiled(update: Update, params: list[Tensor]) -> None:
    if not plain_cpu(params):
        kinds = sorted({type(t).__name__ for t in params} - {"Tensor", "Parameter"})
        why = f"the tensors are {', '.join(kinds)}, not plain tensors"
    else:
        why = _cbuild.unavailable_reason(params[0].dtype)
        if why == "INNA_CPU_KERNEL=0":
            return  # asked for
    warn_once(
        f"{update.name}(fused=True): the C loop cannot run here ({why}); the reference compiled by "
        "torch.compile runs instead"
    )


def _lr_value(lr: float | Tensor, keep_tensor: bool) -> float | Tensor:
    if isinstance(lr, Tensor):
        return lr.reshape(()) if keep_tensor else lr.item()
    return lr


def _master_targets(
    params: list[Tensor], grads: list[Tensor], masters: list[Tensor | None] | None
) -> tuple[list[Tensor], list[Tensor]]:
    """What the update runs on: each parameter, or its master copy (with the gradient upcast) where it has one."""
    if masters is None or masters.count(None) == len(masters):
        return params, grads
    for p, m in zip(params, masters):
        if m is not None:
            # Adopt, element by element, what was written into the parameter outside the optimizer since the last
            # step (model.load_state_dict, an EMA swap, ...): no host sync, one extra pass.
            m.copy_(torch.where(p == m.to(p.dtype), m, p.to(m.dtype)))
    targets = [p if m is None else m for p, m in zip(params, masters)]
    return targets, [g if m is None else g.to(m.dtype) for g, m in zip(grads, masters)]


def _write_back(params: list[Tensor], targets: list[Tensor], masters: list[Tensor | None] | None) -> None:
    """Round the updated master copies into their low-precision parameters."""
    if targets is not params and masters is not None:
        for p, m in zip(params, masters):
            if m is not None:
                p.copy_(m)
