r"""The C loop over a group of CPU tensors of one dtype: one ``ctypes`` call with arrays of data pointers.

:func:`elementwise_update` runs one of the library's updates (:mod:`inna.torch._cbuild`, source
``kernels/inna_kernels.c``) over lists of tensors, the i-th tensors of the lists belonging together (a parameter,
its gradient, its state). The loop visits every element of every tensor once, split evenly over
``torch.get_num_threads()`` OpenMP threads; its per-call cost is a few microseconds plus well under a microsecond
per tensor of Python (data pointers and the checks below, ``map()`` over torch's C getters).

What it refuses, checked every call: lists whose tensors differ from the first list's in byte size, dtype or device
(a functional caller's lists; the loop must never read or write past a tensor's end) and writes autograd must see
(a leaf that requires grad, with grad mode on) run the eager reference for the whole group; tensors that are not
one dense block in the same layout as their gradient and state (a strided slice) run it for themselves. The
reference is the same arithmetic, so the step's result does not change. The loop's writes bump the tensors'
autograd version counters (``torch.autograd.graph.increment_version``), as eager in-place updates do.

GradScaler's fused route: the kernel unscales the gradients by ``float(1 / double(scale))``, the scaler's own
inverse, writes them back unscaled, and writes nothing when ``found_inf`` is nonzero; neither is read on the host.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Sequence
from itertools import chain
from typing import NamedTuple

import torch
from torch import Tensor

from ._amp import unscale_and_check
from ._cbuild import Library, library

__all__ = [
    "INNAPROP_KERNEL",
    "INNA_KERNEL",
    "CKernel",
    "advance_counters",
    "c_kernel_available",
    "elementwise_update",
    "plain_cpu",
]

_PLAIN_SET = frozenset((Tensor, torch.nn.Parameter))
#: Tensor attribute getters for map(): the per-step checks over every tensor iterate in C (about 50 ns a tensor)
_DTYPE, _IS_CPU = Tensor.dtype.__get__, Tensor.is_cpu.__get__
_NBYTES, _REQUIRES_GRAD = Tensor.nbytes.__get__, Tensor.requires_grad.__get__

#: The position of the gradients in every update's lists.
GRAD = 1


class CKernel(NamedTuple):
    """One of the library's updates: its function's name and the list positions it writes (besides the
    gradients, which it writes back unscaled under GradScaler's fused route)."""

    function: str
    writes: tuple[int, ...]


#: (theta, g, phase) -> theta, phase
INNA_KERNEL = CKernel("inna_update", (0, 2))
#: (theta, g, v, phase) -> theta, v, phase
INNAPROP_KERNEL = CKernel("innaprop_update", (0, 2, 3))

#: Runs the eager reference on sub-lists of a group, with their per-tensor values.
Fallback = Callable[[list[list[Tensor]], list[float]], None]


def c_kernel_available(
    reference: Callable[..., None], arity: tuple[int, int], dtype: torch.dtype, static: dict
) -> bool:
    """Whether the C loop serves an update (its ``reference``, with ``arity`` = (lists, scalars) and hyperparameters
    ``static``) on tensors of ``dtype`` here, building or loading the library at first use. One build per dtype
    serves INNA and INNAprop with every hyperparameter set, so only ``dtype`` matters."""
    return library(dtype) is not None


def plain_cpu(tensors: Sequence[Tensor]) -> bool:
    """Every tensor is a plain (not a subclass, whose data pointer may not name its memory: DTensor) CPU tensor."""
    return set(map(type, tensors)) <= _PLAIN_SET and all(map(_IS_CPU, tensors))


def elementwise_update(
    kernel: CKernel,
    lib: Library,
    lists: Sequence[list[Tensor]],
    scalars: Sequence[float],
    *,
    per_tensor: Sequence[float] | None = None,
    decay_on: bool,
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
    fallback: Fallback,
) -> str | None:
    """Apply ``kernel`` in place to ``lists`` (plain CPU tensors, the first list all of one dtype); return why some
    tensors ran ``fallback`` instead (None when the C loop took them all).

    ``scalars`` and ``per_tensor`` (one value per tensor) are the kernel's doubles, ``decay_on`` its decay switch
    (see the C source)."""
    if not _addressable(lists, lists[0][0].dtype):
        if not unscale_and_check(lists[GRAD], grad_scale, found_inf):
            fallback([list(ts) for ts in lists], _values(per_tensor, range(len(lists[0]))))
        return "its lists differ in size, dtype or device, or autograd records the update"
    if all(map(Tensor.is_contiguous, chain.from_iterable(lists))):
        dense = None  # the common case: one dense layout (shapes agree by contract)
    else:
        dense = [all(_dense_like(t, items[0]) for t in items) for items in zip(*lists)]
    if dense is None or all(dense):
        _call(kernel, lib, lists, scalars, per_tensor, decay_on, grad_scale, found_inf)
        return None
    fast = [i for i, d in enumerate(dense) if d]
    slow = [i for i, d in enumerate(dense) if not d]
    if fast:
        fast_values = None if per_tensor is None else _values(per_tensor, fast)
        _call(kernel, lib, _take(lists, fast), scalars, fast_values, decay_on, grad_scale, found_inf)
    slow_lists = _take(lists, slow)
    if not unscale_and_check(slow_lists[GRAD], grad_scale, found_inf):
        fallback(slow_lists, _values(per_tensor, slow))
    return "some tensors are not one dense block in the layout of their gradient and state"


def _values(per_tensor: Sequence[float] | None, index: Sequence[int]) -> list[float]:
    return [0.0] * len(index) if per_tensor is None else [per_tensor[i] for i in index]


def _take(lists: Sequence[list[Tensor]], index: list[int]) -> list[list[Tensor]]:
    return [[ts[i] for i in index] for ts in lists]


def _call(kernel, lib, lists, scalars, per_tensor, decay_on, grad_scale, found_inf) -> None:
    ptrs = array.array("q", map(Tensor.data_ptr, chain.from_iterable(zip(*lists))))
    numels = array.array("q", map(Tensor.numel, lists[0]))
    values = array.array("d", scalars)
    per = None if per_tensor is None else array.array("d", per_tensor)
    gs = None if grad_scale is None else grad_scale.detach().to("cpu", torch.float32).reshape(())
    fi = None if found_inf is None else found_inf.detach().to("cpu", torch.float32).reshape(())
    getattr(lib, kernel.function)(
        len(lists[0]),
        numels.buffer_info()[0],
        ptrs.buffer_info()[0],
        None if per is None else per.buffer_info()[0],
        values.buffer_info()[0],
        int(decay_on),
        None if gs is None else gs.data_ptr(),
        None if fi is None else fi.data_ptr(),
        torch.get_num_threads(),
    )
    # the writes bypassed autograd: bump the version counters, so a graph that saved these tensors before the
    # step fails at backward as it does after an eager in-place update
    written = (*kernel.writes, GRAD) if gs is not None else kernel.writes
    torch.autograd.graph.increment_version(list(chain.from_iterable(lists[i] for i in written)))


def _addressable(lists: Sequence[list[Tensor]], dtype: torch.dtype) -> bool:
    """Every tensor of every list is a CPU tensor of ``dtype`` with as many bytes as the first list's at its
    position, and no write needs autograd (an in-place update of a leaf that requires grad, with grad mode on, is
    an error eagerly)."""
    nbytes = array.array("q", map(_NBYTES, lists[0]))
    if any(array.array("q", map(_NBYTES, ts)) != nbytes for ts in lists[1:]):
        return False
    others = list(chain.from_iterable(lists[1:]))
    if not all(map(_IS_CPU, others)) or set(map(_DTYPE, others)) != {dtype}:
        return False
    return not (torch.is_grad_enabled() and any(map(_REQUIRES_GRAD, chain.from_iterable(lists))))


def _dense_like(t: Tensor, ref: Tensor) -> bool:
    """``t`` and ``ref`` share shape and strides and cover one dense block of memory without overlap, so the loop
    can visit them in memory order, element for element."""
    if t.stride() != ref.stride() or t.shape != ref.shape:
        return False
    if t.is_contiguous():
        return True
    expected = 1
    dims = sorted(((size, stride) for size, stride in zip(t.shape, t.stride()) if size != 1), key=lambda d: d[1])
    for size, stride in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def advance_counters(lib: Library, counters: list[Tensor], skip: Tensor | None = None) -> list[float] | None:
    """Read per-parameter step counters and add 1 to each (nothing when ``skip`` is nonzero) in one C call.

    ``counters`` are 0-dim float32 CPU tensors (INNAprop's ``state["step"]``); ``skip`` is GradScaler's
    ``found_inf`` on the CPU. Returns the counts before the step, or None (and changes nothing) when some counter
    or ``skip`` is of another kind: the caller then does it with torch. On 400 parameters this is 20 µs instead of
    the 0.5 ms of ``torch._foreach_add_`` over 400 0-dim tensors plus a ``torch.stack`` to read them.
    """
    if skip is not None and not (skip.is_cpu and skip.dtype == torch.float32 and skip.numel() == 1):
        return None
    if not plain_cpu(counters) or set(map(_DTYPE, counters)) != {torch.float32}:
        return None
    if set(map(Tensor.numel, counters)) != {1}:
        return None
    ptrs = array.array("q", map(Tensor.data_ptr, counters))
    before = array.array("d", bytes(8 * len(counters)))
    lib.advance_counters(
        len(counters), ptrs.buffer_info()[0], before.buffer_info()[0], None if skip is None else skip.data_ptr()
    )
    return before.tolist()
