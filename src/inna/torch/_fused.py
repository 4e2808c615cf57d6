r"""One fused call per (device, dtype) group for any elementwise optimizer update.

An optimizer's reference update is a function over lists of tensors that applies, tensor by tensor, the same
elementwise arithmetic (adds, multiplies by scalar coefficients, square roots, ...) and writes some of the lists
in place: ``torch.optim``'s ``_single_tensor_*`` convention. :func:`elementwise_update` runs such a reference
over whole parameter groups at the speed of a single pass over memory:

* **On CPU** it traces the reference once (``make_fx`` on one-element tensors, so the trace and the C code do
  not depend on the number or shapes of the tensors), prints the traced ATen graph as a C loop, compiles it
  with the system C compiler into a tiny shared library (about 0.1 s, cached on disk, so later processes load
  it in milliseconds) and calls it once per group through :mod:`ctypes` with arrays of data pointers. The loop
  visits every element of every tensor once, split evenly over ``torch.get_num_threads()`` OpenMP threads.
  Its per-call cost is a few microseconds plus about 1 µs per tensor of Python (data pointers, and the checks
  that every list matches the first in size, dtype and device, so the loop never reads past a tensor's end).
* **On other devices** (CUDA, ...) it compiles the reference over the group with ``torch.compile`` (inductor
  fuses it into one pass per tensor), once per group of parameter identities, with the scalars passed as
  0-dim device tensors: changing them never recompiles and nothing syncs with the host, so the step can be
  captured in a CUDA graph.

Exactness on CPU: the C loop performs the traced operations in their order, each rounded to the dtype torch's
eager kernel rounds it to (float32 and float64 natively; bfloat16 and float16 computed in float32 and rounded
to the storage type after every operation, as eager torch does), with floating-point contraction and fast-math
off; ``addcmul`` is an explicit FMA, as torch's vectorised CPU kernel computes it. Scalars are computed once
per call in double precision, the way Python computes them for the eager reference. For references made of
add, sub, mul, div, neg and addcmul (INNA's update is add, sub and mul only) the result is therefore **bitwise
equal** to running the reference eagerly with Python-float scalars (``tests/pytorch/test_fused_speedpaths.py``
checks it with ``torch.equal`` over many steps, every dtype). Square roots are the exception: torch's vectorised
CPU ``sqrt`` is not correctly rounded (1 ulp off on about 1 % of float32 inputs), the C loop's is, so a
reference with ``sqrt`` agrees to the last bit or so, not bitwise. Tensors the C loop cannot address as one
dense block in the same layout across the lists (a strided slice, a gradient in another layout than its
parameter) take the eager reference itself.

Mixed precision: with ``grad_scale`` (``torch.amp.GradScaler``'s fused route) the gradients are unscaled in the
loop by ``float(1 / double(scale))``, the scaler's own inverse, and written back unscaled, exactly as the
scaler's default route leaves them; with ``found_inf`` nonzero nothing is written. Neither reads a device value
on the host.

Adopting this for another optimizer (INNAprop, ...) takes its reference and one call::

    from ._fused import elementwise_update

    elementwise_update(
        _innaprop_core,                           # reference(*lists, *scalars, **static), writes lists in place
        (params, grads, phases, second_moments),  # the lists, one tensor per parameter in each
        (lr, bias_correction),                    # scalars: Python floats or 0-dim (device) tensors
        static=dict(alpha=alpha, beta=beta, sigma=sigma, eps=eps),  # hashable constants baked into the kernel
        grad_index=1,                             # which list grad_scale unscales (None: no scaling support)
        grad_scale=grad_scale, found_inf=found_inf,
    )

The reference must be a module-level function (its identity keys the caches), take each scalar as a number or a
0-dim tensor, and branch only on ``static`` values (never on tensor values). Complex tensors are handed to it as
their real views (``torch.view_as_real``): correct for updates that treat a complex number as two reals, as
INNA's does. An operation the C printer does not know raises nothing: that reference simply runs compiled by
``torch.compile`` on CPU too (:data:`stats` counts what was built).
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import torch
from torch import Tensor

__all__ = ["c_kernel_available", "elementwise_update", "stats"]

_PLAIN = (Tensor, torch.nn.Parameter)
_PLAIN_SET = frozenset(_PLAIN)
#: Tensor attribute getters for map(): the per-step checks over every tensor iterate in C (about 50 ns a tensor)
_DTYPE, _DEVICE, _IS_CPU = Tensor.dtype.__get__, Tensor.device.__get__, Tensor.is_cpu.__get__
_NBYTES, _REQUIRES_GRAD = Tensor.nbytes.__get__, Tensor.requires_grad.__get__

#: What was built, for tests and benchmarks: "traces" (make_fx traces), "c_builds" (C compilations),
#: "c_loads" (libraries loaded, from a build or the disk cache), "compiled" (torch.compile kernels created).
stats: Counter[str] = Counter()

_LOCK = threading.Lock()


class _Unsupported(Exception):
    """The traced reference uses an operation (or dtype) the C printer does not handle."""


# --------------------------------------------------------------------------------------------------------------
# Tracing the reference and printing it as C
# --------------------------------------------------------------------------------------------------------------

_STORAGE = {torch.float32: "float", torch.float64: "double", torch.bfloat16: "uint16_t", torch.float16: "_Float16"}


def _opmath(dtype: torch.dtype) -> str:
    return "double" if dtype == torch.float64 else "float"


def _literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Unsupported(f"constant {value!r}")
    return f"({float(value).hex()})" if value == value and abs(value) != float("inf") else _special(float(value))


def _special(value: float) -> str:
    return "(0.0/0.0)" if value != value else ("(1.0/0.0)" if value > 0 else "(-1.0/0.0)")


def _round(expr: str, dtype: torch.dtype) -> str:
    if dtype == torch.bfloat16:
        return f"inna_round_bf16({expr})"
    if dtype == torch.float16:
        return f"((float)(_Float16)({expr}))"
    return expr


_PRELUDE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
static inline float inna_bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}
static inline uint16_t inna_float_to_bf16(float f) {  /* round to nearest even, as c10::BFloat16 */
  uint32_t u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static inline float inna_round_bf16(float f) { return inna_bf16_to_float(inna_float_to_bf16(f)); }
"""


def _print_c(
    gm: torch.fx.GraphModule, dtype: torch.dtype, n_roles: int, grad_index: int | None
) -> tuple[str, list[int]]:
    """The C source of ``inna_kernel`` for the traced graph ``gm`` on tensors of ``dtype``, and the roles (list
    positions) it writes."""
    if dtype not in _STORAGE:
        raise _Unsupported(f"dtype {dtype}")
    T = _opmath(dtype)
    aten = torch.ops.aten
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    roles, scalars = placeholders[:n_roles], placeholders[n_roles:]
    names: dict[torch.fx.Node, str] = {}  # node -> C variable holding its current value
    kinds: dict[torch.fx.Node, str] = {}  # "s" (per-call scalar, double) or "e" (per-element, dtype)
    prologue: list[str] = []
    body: list[str] = []
    mutated: set[int] = set()
    for i, node in enumerate(roles):
        names[node], kinds[node] = f"x{i}", "e"
    for i, node in enumerate(scalars):
        names[node], kinds[node] = f"s{i}", "s"

    def operand(a: Any, kind: str) -> str:
        if isinstance(a, torch.fx.Node):
            if kinds[a] == "s":
                return names[a] if kind == "s" else f"(({T}){names[a]})"
            return names[a]
        return _literal(a) if kind == "s" else f"(({T}){_literal(a)})"

    binary = {
        aten.add.Tensor: "+",
        aten.add_.Tensor: "+",
        aten.add.Scalar: "+",
        aten.sub.Tensor: "-",
        aten.sub_.Tensor: "-",
        aten.sub.Scalar: "-",
        aten.mul.Tensor: "*",
        aten.mul_.Tensor: "*",
        aten.mul.Scalar: "*",
        aten.div.Tensor: "/",
        aten.div_.Tensor: "/",
        aten.div.Scalar: "/",
    }
    inplace = {aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor, aten.div_.Tensor, aten.neg_.default}
    inplace |= {aten.sqrt_.default, aten.addcmul_.default, aten.copy_.default}
    counter = 0
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op != "call_function":
            raise _Unsupported(f"{node.op} {node.target}")
        target, args, kwargs = node.target, node.args, dict(node.kwargs)
        val = node.meta.get("val")
        if not isinstance(val, Tensor):
            raise _Unsupported(f"{target} returns {type(val).__name__}")
        tensor_args = [a for a in args if isinstance(a, torch.fx.Node)]
        kind = "e" if any(kinds[a] == "e" for a in tensor_args) else "s"
        if kind == "s" and val.dtype != torch.float64:
            raise _Unsupported(f"scalar computation in {val.dtype}")
        if kind == "e" and (val.dtype != dtype or val.dim() != 1 or val.numel() != 1):
            raise _Unsupported(f"{target} gives {val.dtype} {tuple(val.shape)}")
        for a in tensor_args:
            if kinds[a] == "e" and a.meta["val"].dtype != dtype:
                raise _Unsupported("mixed dtypes")
        ty = "double" if kind == "s" else T

        def o(a: Any, kind: str = kind) -> str:
            return operand(a, kind)

        alpha = kwargs.pop("alpha", 1)
        value = kwargs.pop("value", 1)
        if kwargs:
            raise _Unsupported(f"{target} with {sorted(kwargs)}")
        if alpha != 1:
            # torch's vectorised CPU kernel computes a + alpha*b as an FMA and its scalar tail does not, so no
            # single C expression reproduces it bitwise: refused (that reference takes the compiled route)
            raise _Unsupported(f"{target} with alpha")
        if target in binary:
            a, b = args
            expr = f"{o(a)} {binary[target]} {o(b)}"
        elif target is aten.rsub.Scalar:  # other - self
            a, b = args
            expr = f"{o(b)} - {o(a)}"
        elif target in (aten.neg.default, aten.neg_.default):
            expr = f"-{o(args[0])}"
        elif target in (aten.sqrt.default, aten.sqrt_.default):
            expr = f"{'sqrt' if ty == 'double' else 'sqrtf'}({o(args[0])})"
        elif target is aten.reciprocal.default:
            expr = f"({ty})1 / {o(args[0])}"
        elif target is aten.pow.Tensor_Scalar and args[1] in (2, 3, 0.5, -1):
            x = o(args[0])
            sqrt = "sqrt" if ty == "double" else "sqrtf"
            expr = {2: f"{x} * {x}", 3: f"{x} * {x} * {x}", 0.5: f"{sqrt}({x})", -1: f"({ty})1 / {x}"}[args[1]]
        elif target in (aten.addcmul.default, aten.addcmul_.default):
            # self + value * t1 * t2, which torch's CPU kernel computes as fma(value * t1, t2, self)
            fma = "fma" if ty == "double" else "fmaf"
            expr = f"{fma}({o(value)} * {o(args[1])}, {o(args[2])}, {o(args[0])})"
        elif target in (aten.alias.default, aten.detach.default):
            # a view of the same memory: the same C variable, so in-place updates through it reach the role
            names[node], kinds[node] = names[args[0]], kinds[args[0]]
            continue
        elif target in (aten.clone.default, aten.copy_.default):
            expr = o(args[-1] if target is aten.copy_.default else args[0])
            if target is aten.copy_.default and kinds.get(args[1]) == "s":
                raise _Unsupported("copy of a scalar into a tensor")
        else:
            raise _Unsupported(str(target))
        if value != 1 and target not in (aten.addcmul.default, aten.addcmul_.default):
            raise _Unsupported(f"{target} with value")
        lines = prologue if kind == "s" else body
        if kind == "e":
            expr = _round(expr, dtype)
        if target in inplace:
            dest = args[0]
            if kinds[dest] != "e":
                raise _Unsupported("in-place update of a scalar")
            lines.append(f"{names[dest]} = {expr};")
            names[node], kinds[node] = names[dest], "e"
            root = names[dest]
            if root.startswith("x"):
                mutated.add(int(root[1:]))
        else:
            var = f"v{counter}"
            counter += 1
            lines.append(f"{ty} {var} = {expr};")
            names[node], kinds[node] = var, kind

    storage = _STORAGE[dtype]
    load = {torch.bfloat16: "inna_bf16_to_float(r{i}[j])", torch.float16: "(float)r{i}[j]"}.get(dtype, "r{i}[j]")
    store = {torch.bfloat16: "inna_float_to_bf16(x{i})", torch.float16: "(_Float16)x{i}"}.get(dtype, "x{i}")
    scaled = grad_index is not None
    if scaled:
        mutated.add(grad_index)  # the gradient is written back unscaled, as the scaler's default route leaves it
    src = [_PRELUDE]
    src.append(
        "void inna_kernel(int64_t n, const int64_t* numels, const int64_t* ptrs, const double* scalars,\n"
        "                 const float* grad_scale, const float* found_inf, int64_t nthreads) {"
    )
    src.append("  if (found_inf && *found_inf != 0.0f) return;")
    for i in range(len(scalars)):
        src.append(f"  const double s{i} = scalars[{i}];")
    src += [f"  {line}" for line in prologue]
    if scaled:
        src.append(f"  const {T} inv_scale = grad_scale ? ({T})(float)(1.0 / (double)*grad_scale) : ({T})1;")
    src.append("  int64_t total = 0;")
    src.append("  for (int64_t t = 0; t < n; t++) total += numels[t];")
    src.append("  if (total < 65536) nthreads = 1;")
    src.append("#pragma omp parallel num_threads((int)nthreads) if (nthreads > 1)")
    src.append("  {")
    src.append("#ifdef _OPENMP")
    src.append("    int64_t me = omp_get_thread_num(), nt = omp_get_num_threads();")
    src.append("#else")
    src.append("    int64_t me = 0, nt = 1;")
    src.append("#endif")
    src.append("    const int64_t lo = total * me / nt, hi = total * (me + 1) / nt;")
    src.append("    int64_t base = 0;")
    src.append("    for (int64_t t = 0; t < n && base < hi; base += numels[t], t++) {")
    src.append("      const int64_t a = lo > base ? lo - base : 0, m = numels[t], b = hi - base < m ? hi - base : m;")
    src.append("      if (a >= b) continue;")
    for i in range(n_roles):
        const = "" if i in mutated else "const "
        src.append(f"      {const}{storage}* restrict r{i} = ({const}{storage}*)(intptr_t)ptrs[t * {n_roles} + {i}];")
    src.append("#pragma omp simd")
    src.append("      for (int64_t j = a; j < b; j++) {")
    for i in range(n_roles):
        src.append(f"        {T} x{i} = {load.format(i=i)};")
    if scaled:
        src.append(f"        x{grad_index} = {_round(f'x{grad_index} * inv_scale', dtype)};")
    src += [f"        {line}" for line in body]
    for i in sorted(mutated):
        src.append(f"        r{i}[j] = {store.format(i=i)};")
    src.append("      }")
    src.append("    }")
    src.append("  }")
    src.append("}")
    return "\n".join(src) + "\n", sorted(mutated)


# --------------------------------------------------------------------------------------------------------------
# Compiling and loading
# --------------------------------------------------------------------------------------------------------------

#: -fno-math-errno must come after -fno-fast-math, which turns errno back on: with errno, sqrtf is a call that
#: may write memory and the loop stays scalar (INNAprop's step ran at 2.6x fused AdamW that way).
_FLAGS = ["-O3", "-std=gnu11", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]
_compiler_state: dict[str, Any] = {}


def _compiler() -> list[str] | None:
    """The C compiler command with its flags (OpenMP if it works), or None when there is none."""
    if "cmd" in _compiler_state:
        return _compiler_state["cmd"]
    cc = os.environ.get("CC") or next((c for c in ("gcc", "cc", "clang") if shutil.which(c)), None)
    cmd = None
    if cc and shutil.which(cc.split()[0]):
        base = [*cc.split(), *_FLAGS]
        if platform.machine().lower() in ("x86_64", "amd64"):
            base.append("-march=native")
        for extra in (["-fopenmp"], []):
            if _try_compile([*base, *extra]):
                cmd = [*base, *extra]
                break
    _compiler_state["cmd"] = cmd
    # float16 storage needs the compiler's _Float16 (gcc >= 12 on x86): without it only float16 loses the loop
    _compiler_state["float16"] = cmd is not None and _try_compile(cmd, _FLOAT16_PROBE)
    return cmd


_FLOAT16_PROBE = "int inna_probe16(void) { _Float16 h = (_Float16)1.5f; return (int)h; }\n"


def _try_compile(cmd: list[str], probe: str = "int inna_probe(void) { return 0; }\n") -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe.so")
        with open(src, "w") as f:
            f.write(_PRELUDE + probe)
        try:
            done = subprocess.run([*cmd, src, "-o", out], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0


_CACHE_DIRS: dict[tuple[str | None, str | None], str] = {}


def _cache_dir() -> str:
    """Where built libraries live: ``$INNA_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/inna/kernels`` or
    ``~/.cache/inna/kernels``; a directory we cannot create, that another user owns or that others can write (a
    library loaded from it could be anyone's code) is replaced by a private one under the temporary directory."""
    key = (os.environ.get("INNA_KERNEL_CACHE"), os.environ.get("XDG_CACHE_HOME"))
    if key not in _CACHE_DIRS:
        path = key[0]
        if not path:
            base = key[1] or os.path.join(os.path.expanduser("~"), ".cache")
            path = os.path.join(base, "inna", "kernels")
        uid = os.getuid() if hasattr(os, "getuid") else 0
        fallback = os.path.join(tempfile.gettempdir(), f"inna-kernels-{uid}")
        for candidate in (path, fallback):
            try:
                os.makedirs(candidate, mode=0o700, exist_ok=True)
            except OSError:
                continue
            if _private(candidate):
                break
        else:
            candidate = tempfile.mkdtemp(prefix="inna-kernels-")  # once per process and setting
        _CACHE_DIRS[key] = candidate
    return _CACHE_DIRS[key]


def _private(path: str) -> bool:
    if not hasattr(os, "getuid"):
        return True
    info = os.stat(path)
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _cpu_tag() -> str:
    """What -march=native depends on: a library built for one CPU is never loaded on another."""
    try:
        with open("/proc/cpuinfo") as f:
            info = [line for line in f if line.startswith(("flags", "model name"))][:2]
    except OSError:
        info = []
    return platform.machine() + "".join(info)


class _CKernel:
    #: the list positions the kernel writes (their tensors' autograd version counters are bumped after a call)
    mutated: tuple[int, ...] = ()

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        fn = self.lib.inna_kernel
        fn.restype = None
        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        fn.argtypes += [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        self.fn = fn
        stats["c_loads"] += 1


def _build(source: str, cmd: list[str]) -> _CKernel:
    return _CKernel(_library(source, cmd))


def _library(source: str, cmd: list[str], counter: str = "c_builds") -> str:
    """The path of the shared library built from ``source`` (from the disk cache when it is there)."""
    digest = hashlib.sha256("\0".join([source, *cmd, _cpu_tag(), sys.platform]).encode()).hexdigest()[:24]
    directory = _cache_dir()
    path = os.path.join(directory, f"inna_{digest}.so")
    if not os.path.exists(path):
        fd, tmp_src = tempfile.mkstemp(suffix=".c", dir=directory)
        tmp_out = tmp_src[:-2] + ".so"
        try:
            with os.fdopen(fd, "w") as f:
                f.write(source)
            done = subprocess.run([*cmd, tmp_src, "-o", tmp_out], capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise _Unsupported(f"C compiler failed: {done.stderr.strip()[:2000]}")
            os.replace(tmp_out, path)  # atomic: concurrent processes never load a half-written library
            stats[counter] += 1
        finally:
            for leftover in (tmp_src, tmp_out):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    return path


# --------------------------------------------------------------------------------------------------------------
# Step counters
# --------------------------------------------------------------------------------------------------------------

_COUNTERS_SOURCE = r"""
#include <stdint.h>
/* Read n float32 step counters (one 0-dim tensor each) into before[] and add 1 to each, unless *skip != 0. */
void inna_advance_counters(int64_t n, const int64_t* ptrs, double* before, const float* skip) {
  const float inc = (skip && *skip != 0.0f) ? 0.0f : 1.0f;
  for (int64_t i = 0; i < n; i++) {
    float* c = (float*)(intptr_t)ptrs[i];
    before[i] = (double)*c;
    *c = *c + inc;
  }
}
"""
_counters_fn: list[Any] = []  # [the loaded function, or None where no C compiler works]


def advance_counters(counters: list[Tensor], skip: Tensor | None = None) -> list[float] | None:
    """Read per-parameter step counters and add 1 to each (nothing when ``skip`` is nonzero) in one C call.

    ``counters`` are 0-dim float32 CPU tensors (INNAprop's ``state["step"]``); ``skip`` is GradScaler's
    ``found_inf`` on the CPU. Returns the counts before the step, or None (and changes nothing) when the C helper
    does not apply here (no C compiler, ``INNA_CPU_KERNEL=0``, or some counter of another kind): the caller then
    does it with torch. On 400 parameters this is 20 µs instead of the 0.5 ms of ``torch._foreach_add_`` over
    400 0-dim tensors plus a ``torch.stack`` to read them.
    """
    if os.environ.get("INNA_CPU_KERNEL", "1") == "0" or not counters:
        return None
    if not _counters_fn:
        with _LOCK:
            if not _counters_fn:
                cmd, fn = _compiler(), None
                if cmd is not None:
                    try:
                        fn = ctypes.CDLL(_library(_COUNTERS_SOURCE, cmd, "counter_builds")).inna_advance_counters
                        fn.restype = None
                        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
                    except (_Unsupported, OSError, subprocess.SubprocessError, AttributeError):
                        fn = None
                _counters_fn.append(fn)
    fn = _counters_fn[0]
    if fn is None or (skip is not None and not (skip.is_cpu and skip.dtype == torch.float32 and skip.numel() == 1)):
        return None
    if not set(map(type, counters)) <= _PLAIN_SET or set(map(_DTYPE, counters)) != {torch.float32}:
        return None
    if not all(map(_IS_CPU, counters)) or set(map(Tensor.numel, counters)) != {1}:
        return None
    ptrs = array.array("q", map(Tensor.data_ptr, counters))
    before = array.array("d", bytes(8 * len(counters)))
    fn(len(counters), ptrs.buffer_info()[0], before.buffer_info()[0], None if skip is None else skip.data_ptr())
    return before.tolist()


#: (reference, static, dtype, n_roles, n_scalars, grad_index) -> _CKernel, or None where C does not apply.
_C_KERNELS: dict[tuple, _CKernel | None] = {}
#: Kernels built per (reference, dtype) in a process before new static hyperparameters stop being built (they
#: are constants of the kernel): then that reference runs where the caller sends it without the C loop (the
#: default path: foreach; ``fused=True``: torch.compile).
MAX_VARIANTS = 64


def c_kernel_available(
    reference: Callable[..., None], arity: tuple[int, int], dtype: torch.dtype, static: dict[str, Any]
) -> bool:
    """Whether the CPU C loop serves ``reference`` (with ``arity`` = (lists, scalars)) on ``dtype`` here.

    Builds (or loads) the kernel on first use. ``INNA_CPU_KERNEL=0`` in the environment turns the C loop off
    (the fused path then compiles with torch.compile on CPU too).
    """
    return _c_kernel(reference, static, dtype, *arity, None) is not None


def _c_kernel(
    reference: Callable[..., None], static: dict[str, Any], dtype: torch.dtype, n_roles: int, n_scalars: int, gi
) -> _CKernel | None:
    if os.environ.get("INNA_CPU_KERNEL", "1") == "0":
        return None
    key = (reference, tuple(sorted(static.items())), dtype, n_roles, n_scalars, gi)
    if key in _C_KERNELS:
        return _C_KERNELS[key]
    with _LOCK:
        if key not in _C_KERNELS:
            if sum(k[0] is reference and k[2] == dtype for k in _C_KERNELS) >= MAX_VARIANTS:
                # the static hyperparameters keep changing (a weight-decay schedule, say): stop building
                stats["c_refused"] += 1
                return None
            kernel = None
            cmd = _compiler()
            usable = dtype in _STORAGE and (dtype != torch.float16 or _compiler_state.get("float16"))
            if cmd is not None and usable:
                try:
                    gm = _trace(reference, static, dtype, n_roles, n_scalars)
                    source, mutated = _print_c(gm, dtype, n_roles, gi)
                    kernel = _build(source, cmd)
                    kernel.mutated = tuple(mutated)
                except (_Unsupported, OSError, subprocess.SubprocessError):
                    kernel = None
            _C_KERNELS[key] = kernel
    return _C_KERNELS[key]


def _trace(reference: Callable[..., None], static: dict[str, Any], dtype: torch.dtype, n_roles: int, n_scalars: int):
    from torch.fx.experimental.proxy_tensor import make_fx

    def flat(*args: Tensor) -> None:
        reference(*[[t] for t in args[:n_roles]], *args[n_roles:], **static)

    examples = [torch.ones(1, dtype=dtype) for _ in range(n_roles)]
    examples += [torch.full((), 0.5, dtype=torch.float64) for _ in range(n_scalars)]
    stats["traces"] += 1
    with torch.no_grad():
        return make_fx(flat)(*examples)


# --------------------------------------------------------------------------------------------------------------
# Running a group
# --------------------------------------------------------------------------------------------------------------


def _dense_like(t: Tensor, ref: Tensor) -> bool:
    """``t`` and ``ref`` share shape and strides and cover one dense block of memory without overlap, so the
    loop can visit them in memory order, element for element."""
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


def same_device_and_dtype(tensors: Sequence[Tensor]) -> bool:
    """Whether the (non-empty) ``tensors`` all share the first one's device and dtype (C-level iteration: this
    runs every step over every parameter)."""
    dtype, device = tensors[0].dtype, tensors[0].device
    if set(map(_DTYPE, tensors)) != {dtype}:
        return False
    if device.type == "cpu":
        return all(map(_IS_CPU, tensors))
    return set(map(_DEVICE, tensors)) == {device}


def _scalar_value(s: float | Tensor) -> float:
    return float(s.item()) if isinstance(s, Tensor) else float(s)


def _unscale_and_check(grads: list[Tensor], grad_scale: Tensor | None, found_inf: Tensor | None) -> bool:
    """The scaler's default route on ``grads`` (in place); True when the step must be skipped."""
    grad_scale = None if grad_scale is None else grad_scale.reshape(())
    if grad_scale is not None and grads:
        inv = grad_scale.double().reciprocal().float()
        torch._foreach_mul_(grads, inv.to(grads[0].device))
    return found_inf is not None and bool(found_inf.item())


def _run_c(
    kernel: _CKernel,
    lists: Sequence[list[Tensor]],
    scalars: Sequence[float | Tensor],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> None:
    n = len(lists[0])
    # (the per-tensor work is map() over C methods: on 400 small tensors Python's own loop was a third of the step)
    ptrs = array.array("q", map(Tensor.data_ptr, chain.from_iterable(zip(*lists))))
    numels = array.array("q", map(Tensor.numel, lists[0]))
    values = array.array("d", [_scalar_value(s) for s in scalars] or [0.0])
    gs = None if grad_scale is None else grad_scale.detach().to("cpu", torch.float32).reshape(())
    fi = None if found_inf is None else found_inf.detach().to("cpu", torch.float32).reshape(())
    kernel.fn(
        n,
        numels.buffer_info()[0],
        ptrs.buffer_info()[0],
        values.buffer_info()[0],
        None if gs is None else gs.data_ptr(),
        None if fi is None else fi.data_ptr(),
        torch.get_num_threads(),
    )
    # the writes bypassed autograd: bump the version counters, so a graph that saved these tensors before the
    # step fails at backward as it does after an eager in-place update
    written = [t for i in kernel.mutated for t in lists[i]]
    if written:
        torch.autograd.graph.increment_version(written)


#: Compiled kernels for the torch.compile route, most recently used last, keyed by the group's parameter
#: identities. Each has its own copy of the driver's code object, hence its own dynamo cache (many optimizers in
#: one process never pile graphs onto one code object and hit the recompile limit); dynamo's guards still check
#: every layout, so a reused identity can only cost a recompilation, never a wrong result.
_COMPILED: OrderedDict[tuple, Callable[..., None]] = OrderedDict()
_MAX_COMPILED = 64


def _guarded(
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
        inv = grad_scale.double().reciprocal().float()
        work[grad_index] = [g.mul_(inv) for g in work[grad_index]]
    reference(*work, *scalars, **static)
    keep = None if found_inf is None else found_inf != 0
    for ts, ws in zip(lists, work):
        for t, w in zip(ts, ws):
            t.copy_(w if keep is None else torch.where(keep, t, w))


def _compiled(key: tuple) -> Callable[..., None]:
    with _LOCK:
        return _compiled_locked(key)


def _compiled_locked(key: tuple) -> Callable[..., None]:
    kernel = _COMPILED.get(key)
    if kernel is None:
        ref = _guarded
        clone = types.FunctionType(ref.__code__.replace(), ref.__globals__, ref.__name__, ref.__defaults__)
        kernel = _COMPILED[key] = torch.compile(clone, fullgraph=True, dynamic=False)
        stats["compiled"] += 1
        while len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key)
    return kernel


def _run_compiled(reference, lists, scalars, static, grad_index, grad_scale, found_inf) -> None:
    device, dtype = lists[0][0].device, lists[0][0].dtype
    # Inductor drops in-place updates of 0-dim inputs (torch 2.13): hand it 1-element views instead (of every
    # list's: a list of step counters is all 0-dim whatever the parameters' shapes).
    if any(t.dim() == 0 for ts in lists for t in ts):
        lists = [[t.unsqueeze(0) if t.dim() == 0 else t for t in ts] for ts in lists]
    # Scalars travel as 0-dim tensors on the device: a new value never recompiles and never syncs.
    sdtype = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    scalar_ts = [torch.as_tensor(s, dtype=sdtype, device=device).reshape(()) for s in scalars]
    gs = None if grad_scale is None else grad_scale.to(device, non_blocking=True)
    fi = None if found_inf is None else found_inf.to(device, non_blocking=True)
    key = (reference, tuple(sorted(static.items())), grad_index, gs is not None, fi is not None, *map(id, lists[0]))
    _compiled(key)(reference, lists, scalar_ts, gs, fi, grad_index, static)


def elementwise_update(
    reference: Callable[..., None],
    tensors: Sequence[list[Tensor]],
    scalars: Sequence[float | Tensor] = (),
    *,
    static: dict[str, Any] | None = None,
    grad_index: int | None = None,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    r"""Apply ``reference(*tensors, *scalars, **static)`` in place, one fused call per (device, dtype) group.

    Args:
        reference: the readable update over lists of tensors (see the module docstring for its contract).
        tensors: the lists it reads and writes, equally long; the i-th tensors of all lists belong together and
            share shape and dtype.
        scalars: per-step numbers (lr, bias corrections...): Python floats or 0-dim tensors. New values never
            rebuild anything.
        static: constants of the update (hashable); each new combination builds its own kernel.
        grad_index: the position in ``tensors`` of the gradients, which ``grad_scale`` unscales.
        grad_scale, found_inf: ``torch.amp.GradScaler``'s fused route: gradients are multiplied by the scaler's
            inverse scale (and written back unscaled); nothing is written when ``found_inf`` is nonzero.
    """
    static = static or {}
    if grad_scale is not None and grad_index is None:
        raise ValueError("elementwise_update: grad_scale needs grad_index")
    if not tensors or not tensors[0]:
        return
    if any(len(ts) != len(tensors[0]) for ts in tensors):
        raise ValueError(f"elementwise_update: lists of different lengths {[len(ts) for ts in tensors]}")
    if torch.compiler.is_compiling():
        # Inside a graph being compiled: inductor fuses the reference as it is.
        _guarded(reference, tensors, scalars, grad_scale, found_inf, grad_index, static)
        return
    groups: dict[tuple[torch.device, torch.dtype], list[list[Tensor]]] = defaultdict(lambda: [[] for _ in tensors])
    first = tensors[0]
    dtype0, device0 = first[0].dtype, first[0].device
    if same_device_and_dtype(first) and not dtype0.is_complex:
        # the common case, one pass: a single real group (empty tensors are harmless to the loops)
        groups[(device0, dtype0)] = [list(ts) for ts in tensors]
    else:
        for items in zip(*tensors):
            if items[0].numel() == 0:
                continue
            bucket = groups[(items[0].device, items[0].dtype)]
            for out, t in zip(bucket, items):
                out.append(torch.view_as_real(t) if t.is_complex() else t)
    for (device, _), lists in groups.items():
        dtype = lists[0][0].dtype  # complex tensors are real views by now
        cpu = device.type == "cpu" and (grad_scale is None or grad_scale.device.type == "cpu")
        # only plain tensors own the memory their data pointer names (a DTensor, FSDP2's parameters, does not; its
        # gradients and states are DTensors too, and a subclass tensor's data_ptr raises rather than lies)
        if cpu and set(map(type, lists[0])) <= _PLAIN_SET:
            if not _c_loop_can_address(lists, dtype):
                # what the loop cannot take as given (lists of other dtypes, devices or shapes than the first, a
                # write autograd must see) gets the reference's own eager semantics: its errors, its promotions
                if not _unscale_and_check(lists[grad_index] if grad_index is not None else [], grad_scale, found_inf):
                    reference(*lists, *[_scalar_value(x) for x in scalars], **static)
                continue
            kernel = _c_kernel(
                reference, static, dtype, len(lists), len(scalars), None if grad_scale is None else grad_index
            )
            if kernel is not None:
                _run_cpu_group(kernel, reference, lists, scalars, static, grad_index, grad_scale, found_inf)
                continue
        _run_compiled(reference, lists, scalars, static, grad_index, grad_scale, found_inf)


def _c_loop_can_address(lists: Sequence[list[Tensor]], dtype: torch.dtype) -> bool:
    """The loop may take these lists: every tensor of every list is a CPU tensor with as many bytes as the first
    list's at its position (the first list is all ``dtype`` on the CPU already: it keyed the group), and no write
    needs autograd (an in-place update of a leaf that requires grad, with grad mode on, is an error eagerly).
    Checked every call with map() over C getters (about 0.1 µs per tensor): what the optimizers pass always
    holds, a functional caller's lists may not, and the loop must never read or write past a tensor's end."""
    nbytes = array.array("q", map(_NBYTES, lists[0]))
    for ts in lists[1:]:
        if array.array("q", map(_NBYTES, ts)) != nbytes or not all(map(_IS_CPU, ts)):
            return False
        if set(map(_DTYPE, ts)) != {dtype}:
            return False
    return not (torch.is_grad_enabled() and any(map(_REQUIRES_GRAD, chain.from_iterable(lists))))


def _run_cpu_group(kernel, reference, lists, scalars, static, grad_index, grad_scale, found_inf) -> None:
    if all(map(Tensor.is_contiguous, chain.from_iterable(lists))):  # shapes agree by contract: one dense layout
        _run_c(kernel, lists, scalars, grad_scale, found_inf)
        return
    dense = [all(_dense_like(t, items[0]) for t in items) for items in zip(*lists)]
    if all(dense):
        _run_c(kernel, lists, scalars, grad_scale, found_inf)
        return
    fast = [[t for t, d in zip(ts, dense) if d] for ts in lists]
    slow = [[t for t, d in zip(ts, dense) if not d] for ts in lists]
    if fast[0]:
        _run_c(kernel, fast, scalars, grad_scale, found_inf)
    # The rest takes the reference itself (the same arithmetic, op by op), with the scaler's default route.
    if not _unscale_and_check(slow[grad_index] if grad_index is not None else [], grad_scale, found_inf):
        reference(*slow, *[_scalar_value(s) for s in scalars], **static)
