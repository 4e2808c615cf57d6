"""The errors of ``inna.bench`` that are the user's to fix (a damaged file, a busy or unwritable directory).

Every one of them carries a complete, one-line message naming the file and what is wrong; the command line
prints that line and exits with status 2 instead of a traceback. They derive from :class:`BenchError`, and
from the builtin exception a library caller would expect (``ValueError`` for bad contents, ``OSError`` for a
directory that cannot be used), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "BenchError",
    "DatasetFileError",
    "DatasetNotFoundError",
    "OutputDirError",
    "ResultsBusyError",
    "ResultsFileError",
]


class BenchError(Exception):
    """Base class: an error whose message is meant for the user, printed without a traceback."""


class DatasetFileError(BenchError, ValueError):
    """A data set file exists but cannot be used (truncated, not the expected format, wrong shapes or labels)."""


class DatasetNotFoundError(BenchError, FileNotFoundError):
    """A data set's files are not where they were looked for; the message says which files to put where."""


class ResultsFileError(BenchError, ValueError):
    """A results file holds a line that is not a valid record (or no record at all)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class ResultsBusyError(BenchError):
    """Another process holds the lock of the results directory."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class OutputDirError(BenchError, OSError):
    """The output directory cannot be created or written (a file is in the way, read-only, no permission)."""
