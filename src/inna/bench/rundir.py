"""A results directory: created (or found) writable, and held by one writer at a time.

:func:`open_run_dir` makes the directory (a file in the way, a read-only file system or a missing permission
is an :class:`~inna.bench.errors.OutputDirError` naming it) and takes an advisory lock, ``fcntl.flock`` on
``DIR/.lock``, for as long as the ``with`` block lasts. A second writer on the same directory gets a
:class:`~inna.bench.errors.ResultsBusyError` at once, naming the holder's pid (written into the lock file).
The kernel drops the lock when its holder dies, however it dies, so a lock file left by a killed process never
blocks anyone. Where ``fcntl`` does not exist (Windows) the directory is not locked.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputDirError, ResultsBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "open_run_dir"]

#: The lock file's name inside a results directory.
LOCK_NAME = ".lock"


def _explain(err: OSError) -> str:
    if err.errno == errno.EROFS:
        return "the file system is read-only"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOSPC:
        return "no space left on the device"
    return err.strerror or str(err)


def _make_dir(out: Path) -> None:
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputDirError(f"cannot use {out} as the output directory: {parent} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirError(f"cannot create the output directory {out}: {_explain(err)}") from None


@contextlib.contextmanager
def open_run_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Create ``out`` if needed, check that it is writable, and hold its lock inside the ``with`` block."""
    out = Path(out)
    _make_dir(out)
    lock_path = out / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OutputDirError(f"cannot write in the output directory {out}: {_explain(err)}") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                who = f"pid {pid}" if pid is not None else "another process"
                raise ResultsBusyError(
                    f"{out} is in use by another inna run ({who}): one writer per results directory; "
                    "wait for it to finish, stop it, or choose another --out",
                    pid,
                ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as err:
            raise OutputDirError(f"cannot write in the output directory {out}: {_explain(err)}") from None
        yield out
    finally:
        os.close(fd)  # releases the lock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
