"""What the remote executors (Slurm, Ray) share: a run trained where the driver is not, reported whole.

**Worker side.** :func:`run_lines` trains one run to its end and returns every record of it as JSON lines,
resuming from the run's checkpoint when one is there and replaying the records that checkpoint holds (so a run
resumed after its job or worker died still reports its whole history). :func:`run_pack_to_shards` (a Slurm
array task) does that for a pack of runs and writes each run's lines to a shard file of its own,
``OUT/shards/<run_id>.jsonl``, atomically (a temporary file, ``fsync``, ``os.replace``): a shard is whole or
absent. A run that fails writes ``<run_id>.error`` (its traceback) instead.

**Driver side.** :func:`check_run_lines` validates what a worker reported before any of it reaches the results
file: every line a valid record, all of them about the expected run (its ``run_start`` config has the run's
identity), the epochs 0..E each once, one ``run_end`` closing them. :func:`check_shared_path` checks, before
anything is submitted, that a directory the workers read (``--data-dir``) or write (``--out``) exists, and
warns when it cannot be shared with other hosts (under ``/tmp``, say).

Nothing here unpickles anything: workers receive plain data (run configs as dicts) and report JSON lines.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import RunConfig
from .records import Record, RecordType, encode, record_problem

__all__ = [
    "SHARD_DIR",
    "check_run_lines",
    "check_shared_path",
    "error_path",
    "run_lines",
    "run_pack_to_shards",
    "shard_path",
    "write_atomic",
]

#: Where Slurm tasks put their shards, under the output directory.
SHARD_DIR = "shards"


def shard_path(shard_dir: str | os.PathLike[str], run_id: str) -> Path:
    return Path(shard_dir) / f"{run_id}.jsonl"


def error_path(shard_dir: str | os.PathLike[str], run_id: str) -> Path:
    return Path(shard_dir) / f"{run_id}.error"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, ``fsync`` it, and move it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------- worker side


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_lines(config: dict[str, Any], checkpoint_dir: str, log: Callable[[str], Any] = _warn) -> list[str]:
    """Train the run ``config`` (:meth:`RunConfig.to_json`) to its end; every record of it, as JSON lines."""
    from .training import resolve_device, train_run  # torch: imported where runs train

    cfg = RunConfig.from_json(config)
    cfg = replace(cfg, device=resolve_device(cfg.device))  # "auto"/"cuda" mean this host's devices
    lines: list[str] = []
    train_run(cfg, lambda r: lines.append(encode(r).decode()), checkpoint_dir, log, replay=True)
    return lines


def run_pack_to_shards(configs: list[dict[str, Any]], checkpoint_dir: str, shard_dir: str) -> int:
    """Train each run of a pack (skipping those whose shard exists) and write its shard; returns how many ran.

    A run that raises writes ``<run_id>.error`` with the traceback and the pack goes on with the next run.
    """
    done = 0
    for config in configs:
        run_id = RunConfig.from_json(config).run_id
        if shard_path(shard_dir, run_id).is_file():
            continue
        try:
            lines = run_lines(config, checkpoint_dir)
        except Exception:
            write_atomic(error_path(shard_dir, run_id), traceback.format_exc().encode())
            continue
        write_atomic(shard_path(shard_dir, run_id), "".join(lines).encode())
        done += 1
    return done


def ray_run_pack(configs: list[dict[str, Any]], checkpoint_dir: str) -> list[tuple[str, list[str]]]:
    """A Ray task: train each run of a pack; (run_id, its lines) for each."""
    return [(RunConfig.from_json(c).run_id, run_lines(c, checkpoint_dir)) for c in configs]


# --------------------------------------------------------------------------------------------------- driver side


def check_run_lines(cfg: RunConfig, lines: Sequence[str]) -> tuple[list[Record], str | None]:
    """(the records, ``None``) when ``lines`` are the complete records of run ``cfg``, else ``([], what is
    wrong)``."""
    records: list[Record] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, TypeError) as err:
            return [], f"line {number} is not valid JSON ({err})"
        problem = record_problem(record)
        if problem is not None:
            return [], f"line {number}: {problem}"
        if record.get("run_id") != cfg.run_id:
            return [], f"line {number} is about run {record.get('run_id')!r}, not {cfg.run_id}"
        records.append(record)
    problem = _run_problem(cfg, records)
    return ([], problem) if problem else (records, None)


def _run_problem(cfg: RunConfig, records: list[Record]) -> str | None:
    if not records or records[0]["type"] != RecordType.RUN_START:
        return "it does not begin with the run's run_start record"
    try:
        identity = RunConfig.from_json(records[0]["config"]).identity()
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        return f"its run_start config is not a run configuration ({type(err).__name__}: {err})"
    if identity != cfg.identity():
        return "its run_start config is another run's"
    ends = [i for i, r in enumerate(records) if r["type"] == RecordType.RUN_END]
    if ends != [len(records) - 1]:
        return "it does not end with exactly one run_end record"
    epochs = [r["epoch"] for r in records if r["type"] == RecordType.EPOCH]
    last = records[-1]["epochs"]
    if epochs != list(range(last + 1)):
        return f"its epochs are {epochs[:6]}{'...' if len(epochs) > 6 else ''}, not 0..{last} once each"
    if any(r["type"] not in (RecordType.RUN_START, RecordType.EPOCH, RecordType.RUN_END) for r in records):
        return "it holds records that are not about one run"
    return None


def _mount_type(path: Path) -> str | None:
    """The file-system type of the mount that holds ``path`` (Linux ``/proc/mounts``; None elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].replace("\\040", " ")
            if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, kind = point, parts[2]
    return kind


_LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def check_shared_path(path: str | os.PathLike[str], what: str, log: Callable[[str], Any]) -> str:
    """``path`` made absolute; a ``ValueError`` naming it (``what``: ``--data-dir``) if it does not exist; a warning
    through ``log`` when other hosts are unlikely to see it (under /tmp, /var/tmp, /dev/shm, /run, or on tmpfs)."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ValueError(f"{what} {path}: no such directory (the runs on other hosts read it: it must exist and be "
                         "on a file system they share)")  # fmt: skip
    local = next((root for root in _LOCAL_ROOTS if p == Path(root) or str(p).startswith(root + "/")), None)
    kind = _mount_type(p)
    if local is not None or kind in ("tmpfs", "ramfs"):
        where = f"under {local}" if local is not None else f"on a {kind} file system"
        log(f"[inna bench] warning: {what} {p} is {where}, which other hosts do not share: runs scheduled on another "
            "node will not find it (fine on a one-node cluster)")  # fmt: skip
    return str(p)
