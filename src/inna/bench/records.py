"""The results file: its record schema, its store (append, torn-tail fix, repair) and the queries on it.

This module is the only one that knows how records are laid out; the training loop writes through
:class:`ResultsStore`, and the protocol, the report and the sweep read through :func:`read_records` and the
queries below. It needs neither torch nor the training code, so reading results is cheap.

**Format.** ``results.jsonl`` holds one JSON object per line, its ``"type"`` one of :class:`RecordType`:

* ``suite``: ``name``, ``description``, ``seeds``, ``tasks``, ``optimizers`` (the suite definition; the latest
  one wins);
* ``run_start``: the run's summary (``run_id``, ``task``, ``optimizer``, ``lr``, ``seed``) and ``config``;
* ``epoch``: the summary, ``epoch`` (0 = before training), ``steps``, ``train_loss``, ``train_acc``,
  ``test_loss``, ``test_acc``, ``wall_time``, ``lr_now``;
* ``run_end``: the summary, ``status`` (:class:`RunStatus`), ``epochs``, ``steps``, ``wall_time``;
* ``selection``: ``task``, ``optimizer``, ``spec``, ``lr``, ``criterion``, ``tune_epochs``, ``losses``,
  ``tune_run_ids``, ``run_ids`` (the latest one per (task, optimizer) wins).

:data:`SCHEMA` lists the required fields and their kinds; a record may carry more fields (readers ignore
them). Non-finite numbers are written as ``null``. A new record type is added to :class:`RecordType` and
:data:`SCHEMA` here, and nowhere else.

**Durability.** Each record is one complete line written with a single ``write`` followed by ``fsync``, by one
process (the holder of the directory's lock, :mod:`inna.bench.rundir`). A crash can leave only a torn last line
(no newline): readers ignore it and :class:`ResultsStore` cuts it off before appending. Any other bad line is a
:class:`~inna.bench.errors.ResultsFileError` naming the file and the line; :func:`repair_results` (``--repair``
on the command line) keeps every valid record and moves the other lines to ``results.jsonl.rejected``.

**Runs.** A run counts as finished (:func:`finished_runs`) when it has a ``run_end`` record *and* an ``epoch``
record for every epoch from 0 to its last; a run missing one (say, after a repair dropped a line) is run again,
and since a run's numbers depend only on its definition (see :mod:`inna.bench.training`), the records it
writes again are the same.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

from .errors import ResultsFileError

__all__ = [
    "REJECTED_SUFFIX",
    "SCHEMA",
    "Record",
    "RecordType",
    "RepairResult",
    "ResultsStore",
    "RunIndex",
    "RunRecords",
    "RunStatus",
    "comparable",
    "final_epoch",
    "finished_runs",
    "group_runs",
    "latest_selections",
    "latest_suite",
    "read_records",
    "record_problem",
    "repair_results",
    "require_records",
]

Record = dict[str, Any]

#: Where :func:`repair_results` moves the lines it cannot keep: ``results.jsonl`` → ``results.jsonl.rejected``.
REJECTED_SUFFIX = ".rejected"


class RecordType(str, Enum):
    """The ``"type"`` of a record (a ``str``, so ``record["type"] == RecordType.EPOCH`` works on parsed JSON)."""

    SUITE = "suite"
    RUN_START = "run_start"
    EPOCH = "epoch"
    RUN_END = "run_end"
    SELECTION = "selection"


class RunStatus(str, Enum):
    """How a run ended."""

    COMPLETED = "completed"
    DIVERGED = "diverged"


# field kinds: "str", "int", "num" (int or float), "num?" (a number or null: non-finite values), "list", "dict"
_SUMMARY = {"run_id": "str", "task": "str", "optimizer": "str", "lr": "num", "seed": "int"}

#: Required fields of each record type and their kinds.
# fmt: off
SCHEMA: dict[RecordType, dict[str, str]] = {
    RecordType.SUITE: {"name": "str", "description": "str", "seeds": "int", "tasks": "list", "optimizers": "list"},
    RecordType.RUN_START: {**_SUMMARY, "config": "dict"},
    RecordType.EPOCH: {**_SUMMARY, "epoch": "int", "steps": "int", "train_loss": "num?", "train_acc": "num?",
                       "test_loss": "num?", "test_acc": "num?", "wall_time": "num", "lr_now": "num?"},
    RecordType.RUN_END: {**_SUMMARY, "status": "str", "epochs": "int", "steps": "int", "wall_time": "num"},
    RecordType.SELECTION: {"task": "str", "optimizer": "str", "spec": "str", "lr": "num?", "criterion": "str",
                           "tune_epochs": "int", "losses": "dict", "tune_run_ids": "list",
                           "run_ids": "list"},
}
# fmt: on


def _kind_ok(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("num", "num?"):
        if value is None:
            return kind == "num?"
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict)


def record_problem(record: Any) -> str | None:
    """What is wrong with ``record`` (a parsed JSON value) as a record, or ``None`` if it is a valid one."""
    if not isinstance(record, dict):
        return f"not a JSON object but a {type(record).__name__}"
    kind = record.get("type")
    try:
        rtype = RecordType(kind)
    except ValueError:
        known = ", ".join(t.value for t in RecordType)
        return f"unknown record type {kind!r} (known: {known})"
    fields = SCHEMA[rtype]
    missing = [k for k in fields if k not in record]
    if missing:
        return f"{rtype.value} record without {', '.join(repr(k) for k in missing)}"
    wrong = [k for k, kind in fields.items() if not _kind_ok(record[k], kind)]
    if wrong:
        return f"{rtype.value} record with wrong-typed {', '.join(f'{k!r}={record[k]!r:.40}' for k in wrong)}"
    if rtype is RecordType.RUN_END and record["status"] not in {s.value for s in RunStatus}:
        return f"run_end record with unknown status {record['status']!r}"
    if rtype is RecordType.EPOCH and record["epoch"] < 0:
        return f"epoch record with negative epoch {record['epoch']}"
    return None


def _parse(line: bytes) -> tuple[Record | None, str | None]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text (binary data)"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not valid JSON ({err.msg} at column {err.colno})"
    problem = record_problem(value)
    return (value, None) if problem is None else (None, problem)


def _lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, content, whether it ends with a newline) for every non-blank line."""
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if line.strip():
            yield i + 1, line, i < len(lines) - 1


def _hint(path: Path) -> str:
    return (
        f"rerun with --repair to keep every valid record and move the bad lines to "
        f"{path.name}{REJECTED_SUFFIX} (library: inna.bench.records.repair_results)"
    )


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """Every record of a results file, checked against :data:`SCHEMA` (``[]`` if the file does not exist).

    A torn last line (an interrupted write: no newline and not a valid record) is ignored; any other bad line
    raises :class:`~inna.bench.errors.ResultsFileError` naming the file, the line and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ResultsFileError(f"{path} is a directory, not a results file", str(path)) from None
    out: list[Record] = []
    for number, line, ended in _lines(data):
        record, problem = _parse(line)
        if problem is not None:
            if not ended:  # the last line, without its newline: an interrupted write
                break
            raise ResultsFileError(f"{path}, line {number}: {problem}; {_hint(path)}", str(path), number)
        out.append(record)  # type: ignore[arg-type]
    return out


def require_records(path: str | os.PathLike[str]) -> list[Record]:
    """:func:`read_records`, but a missing file or one without any record is an error (a report of nothing)."""
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"{path} does not exist: RUNDIR must be a directory written by `inna bench`", str(path))
    records = read_records(path)
    if not records:
        raise ResultsFileError(f"{path} holds no records (empty, or the benchmark stopped before its first one)",
                               str(path))  # fmt: skip
    return records


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_results` did: ``kept`` records stay, ``moved`` lines went to ``rejected``."""

    path: Path
    kept: int
    moved: int
    rejected: Path

    def summary(self) -> str:
        if not self.moved:
            return f"{self.path}: nothing to repair ({self.kept} valid records)"
        return f"{self.path}: kept {self.kept} valid records, moved {self.moved} bad lines to {self.rejected}"


def _fsync_write(path: Path, data: bytes, mode: str) -> None:
    with path.open(mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def repair_results(path: str | os.PathLike[str]) -> RepairResult:
    """Keep every valid record of ``path`` (in order) and move every other line, a torn last line included, to
    ``path`` + :data:`REJECTED_SUFFIX` (appended to, never overwritten). The rewrite is atomic (temporary file
    + ``os.replace``). Call it only while holding the directory's lock."""
    path = Path(path)
    rejected = path.with_name(path.name + REJECTED_SUFFIX)
    if not path.is_file():
        return RepairResult(path, 0, 0, rejected)
    kept: list[bytes] = []
    bad: list[bytes] = []
    for _, line, _ in _lines(path.read_bytes()):
        (kept if _parse(line)[1] is None else bad).append(line.rstrip(b"\r") + b"\n")
    if bad:
        _fsync_write(rejected, b"".join(bad), "ab")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        _fsync_write(tmp, b"".join(kept), "wb")
        os.replace(tmp, path)
    return RepairResult(path, len(kept), len(bad), rejected)


def _clean(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {(k.value if isinstance(k, Enum) else k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode(record: Record) -> bytes:
    """The line (with its newline) that stores ``record``: non-finite numbers as ``null``, enums as strings."""
    clean = _clean(record)
    problem = record_problem(clean)
    if problem is not None:
        raise ValueError(f"refusing to write an invalid record: {problem}")
    return (json.dumps(clean, allow_nan=False, ensure_ascii=False) + "\n").encode()


class ResultsStore:
    """An append-only JSONL file of records (see the module docstring). The directory must exist.

    Opening the store fixes an interrupted last write: a torn line is cut off; a complete record that lost only
    its newline gets it back (so readers and the store agree on what the file holds).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fix_tail()

    def _fix_tail(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            if _parse(data[cut:])[1] is None:
                f.write(b"\n")
            else:
                f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def append(self, record: Record) -> None:
        """Write one record as one line (single ``write``, then ``fsync``)."""
        self.append_many([record])

    def append_many(self, records: Sequence[Record]) -> None:
        """Write records as lines with a single ``write``, then ``fsync``: a whole run from a shard goes in at
        once, so a driver killed while merging leaves the run either whole or absent (at worst a torn last line)."""
        data = b"".join(encode(r) for r in records)
        if not data:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[Record]:
        return read_records(self.path)


# --------------------------------------------------------------------------------------------------- queries


class RunRecords(NamedTuple):
    """The records of one run: its ``run_start``, ``{epoch: epoch record}`` (the last written wins) and
    ``run_end`` (``None`` while the run is unfinished)."""

    run_id: str
    start: Record | None
    epochs: dict[int, Record]
    end: Record | None

    @property
    def finished(self) -> bool:
        """Ended (completed or diverged) with every epoch from 0 to its last on record."""
        return self.end is not None and all(e in self.epochs for e in range(int(self.end["epochs"]) + 1))

    @property
    def status(self) -> str:
        """``completed``, ``diverged`` or ``running`` (no ``run_end`` yet, or an epoch missing)."""
        return str(self.end["status"]) if self.finished and self.end is not None else "running"

    @property
    def last_recorded_epoch(self) -> int:
        """The highest epoch such that every epoch from 0 to it is on record (-1: none)."""
        e = -1
        while e + 1 in self.epochs:
            e += 1
        return e


class RunIndex:
    """The runs of a stream of records, kept up to date as records are added (the driver's view of its results
    file, without reading it again)."""

    def __init__(self, records: Iterable[Record] = ()) -> None:
        self._starts: dict[str, Record] = {}
        self._epochs: dict[str, dict[int, Record]] = {}
        self._ends: dict[str, Record] = {}
        for r in records:
            self.add(r)

    def add(self, r: Record) -> None:
        rid = r.get("run_id")
        if rid is None:
            return
        epochs = self._epochs.setdefault(rid, {})
        t = r.get("type")
        if t == RecordType.RUN_START:
            self._starts[rid] = r
        elif t == RecordType.EPOCH:
            epochs[int(r["epoch"])] = r
        elif t == RecordType.RUN_END:
            self._ends[rid] = r

    def get(self, run_id: str) -> RunRecords | None:
        if run_id not in self._epochs:
            return None
        return RunRecords(run_id, self._starts.get(run_id), self._epochs[run_id], self._ends.get(run_id))

    def __iter__(self) -> Iterator[RunRecords]:
        for rid in self._epochs:
            yield RunRecords(rid, self._starts.get(rid), self._epochs[rid], self._ends.get(rid))


def group_runs(records: Iterable[Record]) -> Iterator[RunRecords]:
    """A :class:`RunRecords` for every run in ``records``, in order of first appearance."""
    return iter(RunIndex(records))


def final_epoch(run: RunRecords) -> Record | None:
    """The last epoch record of a *completed* run (``None`` for a diverged or unfinished one): the numbers
    every table reports."""
    if run.status != RunStatus.COMPLETED:
        return None
    return run.epochs[int(run.end["epochs"])] if run.end is not None else None


def finished_runs(records: Iterable[Record]) -> dict[str, Record]:
    """run_id → its ``run_end`` record, for the runs that finished (see :attr:`RunRecords.finished`)."""
    return {run.run_id: run.end for run in group_runs(records) if run.finished and run.end is not None}


def latest_suite(records: Iterable[Record]) -> Record | None:
    """The last ``suite`` record (the definition the directory was last run with)."""
    last = None
    for r in records:
        if r.get("type") == RecordType.SUITE:
            last = r
    return last


def latest_selections(records: Iterable[Record], key: str = "optimizer") -> dict[tuple[str, str], Record]:
    """(task, ``key``) → the last ``selection`` record for it (``key``: ``optimizer`` label or ``spec``)."""
    out: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.get("type") == RecordType.SELECTION:
            out[r["task"], r[key]] = r
    return out


#: What differs between two executions of the same runs: timings, and where a run ran (``config.device``,
#: ``config.data_dir`` of its ``run_start``).
TIMING_FIELDS = ("wall_time",)
HOST_FIELDS = ("device", "data_dir")


def comparable(records: Iterable[Record]) -> list[str]:
    """The records as sorted canonical JSON lines, timing and host fields removed, each record once: what the
    determinism contract says is the same however and wherever a suite ran (``inna bench`` with any executor,
    any ``--workers``, resumed or not). A record written twice (an epoch redone after a crash) counts once."""
    out = set()
    for r in records:
        clean = {k: v for k, v in r.items() if k not in TIMING_FIELDS}
        if isinstance(clean.get("config"), dict):
            clean["config"] = {k: v for k, v in clean["config"].items() if k not in HOST_FIELDS}
        out.add(json.dumps(clean, sort_keys=True, ensure_ascii=False))
    return sorted(out)
