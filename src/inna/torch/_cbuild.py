r"""Building and loading the C loop: one small shared library per dtype, from ``kernels/inna_kernels.c``.

The source ships with the package (package data). At first use in a process, :func:`library` compiles it for the
dtype with the system C compiler (``$CC``, else ``gcc``, ``cc`` or ``clang``; ``-O3 -march=native``, OpenMP where
it works, ``-ffp-contract=off`` and no fast-math so that nothing is fused or reordered) into a cache directory
(``$INNA_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/inna/kernels`` or ``~/.cache/inna/kernels``), keyed by the source,
the flags and the CPU, and loads it with :mod:`ctypes`; later processes load it from the cache in milliseconds.
Every hyperparameter is an argument of the library's functions, so one build per dtype serves every optimizer.

``INNA_CPU_KERNEL=0`` in the environment turns the C loop off. :func:`unavailable_reason` says why a dtype has no
library (no compiler, a failed build, the switch).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from importlib import resources
from typing import Any

import torch

__all__ = ["Library", "library", "stats", "unavailable_reason"]

#: What was built, for tests and benchmarks: "c_builds" (compilations), "c_loads" (libraries loaded, from a build
#: or the disk cache), "compiled" (torch.compile kernels created by the compiled route).
stats: Counter[str] = Counter()

LOCK = threading.Lock()

#: -fno-math-errno must come after -fno-fast-math, which turns errno back on: with errno, sqrtf is a call that may
#: write memory and gcc keeps the loop scalar.
FLAGS = ["-O3", "-std=gnu11", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]

#: The storage types the library is built for, and the macro that selects each.
DTYPES = {
    torch.float32: "INNA_FLOAT32",
    torch.float64: "INNA_FLOAT64",
    torch.bfloat16: "INNA_BFLOAT16",
    torch.float16: "INNA_FLOAT16",
}

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
#: (n, numels, ptrs, per_tensor, scalars, decay_on, grad_scale, found_inf, nthreads): both updates' signature
_UPDATE_ARGS = [_I64, _PTR, _PTR, _PTR, _PTR, ctypes.c_int, _PTR, _PTR, _I64]


class Library:
    """A loaded library: ``inna_update`` and ``innaprop_update`` (see the C source for their arguments) and
    ``advance_counters``."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        self.inna_update = self._function("inna_update", _UPDATE_ARGS)
        self.innaprop_update = self._function("innaprop_update", _UPDATE_ARGS)
        self.advance_counters = self._function("inna_advance_counters", [_I64, _PTR, _PTR, _PTR])
        stats["c_loads"] += 1

    def _function(self, name: str, argtypes: list[Any]) -> Any:
        fn = getattr(self.lib, name)
        fn.restype = None
        fn.argtypes = argtypes
        return fn


_LIBRARIES: dict[torch.dtype, Library | None] = {}
_REASONS: dict[torch.dtype, str] = {}
_compiler_state: dict[str, Any] = {}


def library(dtype: torch.dtype) -> Library | None:
    """The C loop's library for tensors of ``dtype`` (built or loaded at first use), or None where it cannot be
    had here (:func:`unavailable_reason` says why)."""
    if os.environ.get("INNA_CPU_KERNEL", "1") == "0":
        return None
    if dtype in _LIBRARIES:
        return _LIBRARIES[dtype]
    with LOCK:
        if dtype not in _LIBRARIES:
            _LIBRARIES[dtype] = _load(dtype)
    return _LIBRARIES[dtype]


def unavailable_reason(dtype: torch.dtype) -> str | None:
    """Why :func:`library` gives None for ``dtype`` (None when it gives a library)."""
    if os.environ.get("INNA_CPU_KERNEL", "1") == "0":
        return "INNA_CPU_KERNEL=0"
    if library(dtype) is not None:
        return None
    return _REASONS.get(dtype, f"no C loop for {dtype}")


def _load(dtype: torch.dtype) -> Library | None:
    if dtype not in DTYPES:
        _REASONS[dtype] = f"the C loop has no {dtype} version"
        return None
    cmd = compiler()
    if cmd is None:
        _REASONS[dtype] = "no working C compiler was found ($CC, gcc, cc or clang)"
        return None
    try:
        return Library(build(source(), [*cmd, f"-D{DTYPES[dtype]}"]))
    except (BuildError, OSError, subprocess.SubprocessError) as err:
        _REASONS[dtype] = f"the C compiler could not build the {dtype} loop: {str(err)[:300]}"
        return None


def source() -> str:
    """The C source of the loop (package data)."""
    return resources.files("inna.torch").joinpath("kernels", "inna_kernels.c").read_text()


def compiler() -> list[str] | None:
    """The C compiler command with its flags (OpenMP if it works), or None when there is none."""
    if "cmd" not in _compiler_state:
        cc = os.environ.get("CC") or next((c for c in ("gcc", "cc", "clang") if shutil.which(c)), None)
        cmd = None
        if cc and shutil.which(cc.split()[0]):
            base = [*cc.split(), *FLAGS]
            if platform.machine().lower() in ("x86_64", "amd64"):
                base.append("-march=native")
            cmd = next((c for c in ([*base, "-fopenmp"], base) if _compiles(c)), None)
        _compiler_state["cmd"] = cmd
    return _compiler_state["cmd"]


def _compiles(cmd: list[str]) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe.so")
        with open(src, "w") as f:
            f.write("int inna_probe(void) { return 0; }\n")
        try:
            return subprocess.run([*cmd, src, "-o", out], capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False


class BuildError(Exception):
    """The C compiler failed on the loop's source."""


def build(code: str, cmd: list[str]) -> str:
    """The path of the shared library built from ``code`` with ``cmd`` (from the disk cache when it is there)."""
    digest = hashlib.sha256("\0".join([code, *cmd, _cpu_tag(), sys.platform]).encode()).hexdigest()[:24]
    directory = cache_dir()
    path = os.path.join(directory, f"inna_{digest}.so")
    if os.path.exists(path):
        return path
    fd, tmp_src = tempfile.mkstemp(suffix=".c", dir=directory)
    tmp_out = tmp_src[:-2] + ".so"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(code)
        done = subprocess.run([*cmd, tmp_src, "-o", tmp_out], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BuildError(done.stderr.strip()[:2000])
        os.replace(tmp_out, path)  # atomic: concurrent processes never load a half-written library
        stats["c_builds"] += 1
    finally:
        for leftover in (tmp_src, tmp_out):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return path


_CACHE_DIRS: dict[tuple[str | None, str | None], str] = {}


def cache_dir() -> str:
    """Where built libraries live: ``$INNA_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/inna/kernels`` or
    ``~/.cache/inna/kernels``; a directory we cannot create, that another user owns or that others can write (a
    library loaded from it could be anyone's code) is replaced by a private one under the temporary directory."""
    key = (os.environ.get("INNA_KERNEL_CACHE"), os.environ.get("XDG_CACHE_HOME"))
    if key not in _CACHE_DIRS:
        path = key[0] or os.path.join(key[1] or os.path.join(os.path.expanduser("~"), ".cache"), "inna", "kernels")
        uid = os.getuid() if hasattr(os, "getuid") else 0
        fallback = os.path.join(tempfile.gettempdir(), f"inna-kernels-{uid}")
        _CACHE_DIRS[key] = next((c for c in (path, fallback) if _made_private(c)), None) or tempfile.mkdtemp(
            prefix="inna-kernels-"
        )  # once per process and setting
    return _CACHE_DIRS[key]


def _made_private(path: str) -> bool:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return False
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


def forget() -> None:
    """Drop the loaded libraries and the compiler found (tests and benchmarks: the next use loads or builds)."""
    with LOCK:
        _LIBRARIES.clear()
        _REASONS.clear()
        _compiler_state.clear()
