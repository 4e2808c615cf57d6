"""``--executor slurm``: runs packed into Slurm job-array tasks through submitit; the driver merges their shards.

Each submission is one job array (``submitit``'s ``map_array``): its tasks each train a pack of runs
(:func:`~inna.bench.remote.run_pack_to_shards`) and write one shard per run, atomically, under ``OUT/shards/``;
Slurm's logs go to ``OUT/slurm/logs/<task id>/``. The driver stays the only writer of ``results.jsonl``: it merges a
shard once it is there and valid (:func:`~inna.bench.remote.check_run_lines`), with one write, then deletes it. A
shard that is damaged, or holds another run, is set aside (``<name>.damaged``) with a warning naming it, and its
run is done again.

**Submissions are recorded** under ``OUT/slurm/submissions/<token>.json`` (written before ``sbatch``, then with the
job id): which runs went to which array task. Every job carries the output directory's job name
(``inna-<hash of OUT>``) and its token as its comment, so that ``squeue`` finds it even when the driver died
between ``sbatch`` and writing the job id down. Running the same command again **attaches**: runs whose shard is
there are merged, runs whose task is still queued or running are waited for (never submitted twice), and runs
whose task ended without a shard (cancelled, preempted, time limit, node failure) are submitted again, resuming
from their last checkpoint (at most ``max_attempts`` jobs per run). ``--detach`` submits what can run now and
leaves; Ctrl-C while attached detaches too (the jobs go on). :func:`cancel_jobs` (``--cancel``) cancels them.

Job state comes from ``squeue`` (jobs that left the queue are read from their shards): without Slurm's accounting
database (``slurmdbd``), ``sacct`` has nothing to say, and submitit's own job state is not trusted here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoints import prepare_checkpoints
from .config import RunConfig
from .execution import Detached, Executor, Session, WorkerError
from .remote import (
    SHARD_DIR,
    check_run_lines,
    check_shared_path,
    error_path,
    run_pack_to_shards,
    shard_path,
    write_atomic,
)

__all__ = ["SlurmExecutor", "SlurmOptions", "cancel_jobs", "job_name", "parse_slurm_time"]

#: The pack size divides each submission into at most this many tasks when ``--slurm-array-parallelism`` is not
#: given.
DEFAULT_TASKS_PER_SUBMISSION = 32


def parse_slurm_time(text: str) -> int:
    """Slurm's time formats (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) → whole minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if m is None or not text.strip():
        raise ValueError(f"--slurm-time {text!r}: expected minutes, H:M:S, or D-H:M:S (Slurm's formats)")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-H[:M[:S]]
        seconds = days * 86400 + (a or 0) * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # H:M:S
        seconds = (a or 0) * 3600 + (b or 0) * 60 + c
    elif b is not None:  # M:S
        seconds = (a or 0) * 60 + b
    else:  # M
        seconds = (a or 0) * 60
    if seconds <= 0:
        raise ValueError(f"--slurm-time {text!r}: must be positive")
    return math.ceil(seconds / 60)


@dataclass(frozen=True)
class SlurmOptions:
    """The resources each array task asks for, and how runs are packed and followed."""

    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int = 1
    time_min: int = 24 * 60
    mem: str | None = None
    array_parallelism: int | None = None
    #: other sbatch options, ``{"account": "abc", "requeue": True}`` (``True``: a flag without a value)
    sbatch: dict[str, Any] = field(default_factory=dict)
    #: runs per array task (None: each submission in at most ``array_parallelism`` (or 32) tasks)
    pack: int | None = None
    detach: bool = False
    max_attempts: int = 3
    poll_s: float = 2.0

    def pack_size(self, n: int) -> int:
        return self.pack or max(1, math.ceil(n / (self.array_parallelism or DEFAULT_TASKS_PER_SUBMISSION)))

    def submitit_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task}
        optional = {"slurm_partition": self.partition, "slurm_gpus_per_task": self.gpus_per_task,
                    "slurm_mem": self.mem, "slurm_array_parallelism": self.array_parallelism}  # fmt: skip
        params.update({k: v for k, v in optional.items() if v is not None})
        if self.sbatch:
            params["slurm_additional_parameters"] = dict(self.sbatch)
        return params

    def sbatch_lines(self, tasks: int) -> list[str]:
        """The ``#SBATCH`` lines of a submission of ``tasks`` array tasks (for ``--plan``)."""
        array = f"0-{tasks - 1}" + (f"%{self.array_parallelism}" if self.array_parallelism else "")
        lines = [f"--array={array}", f"--cpus-per-task={self.cpus_per_task}", f"--time={self.time_min}"]
        lines += [f"--partition={self.partition}"] if self.partition else []
        lines += [f"--gpus-per-task={self.gpus_per_task}"] if self.gpus_per_task else []
        lines += [f"--mem={self.mem}"] if self.mem else []
        lines += [f"--{k}" if v is True else f"--{k}={v}" for k, v in sorted(self.sbatch.items())]
        return [f"#SBATCH {line}" for line in lines]


def job_name(out: str | os.PathLike[str]) -> str:
    """The Slurm job name of every job of an output directory."""
    return "inna-" + hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:10]


#: Job states ``squeue`` may still show (for ``MinJobAge`` seconds) for a task that has ended.
_ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                    "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"})  # fmt: skip


def _squeue(name: str) -> dict[str, tuple[str, str]]:
    """Array task id (``123_4``) → (comment, state) of the queued or running tasks named ``name``."""
    if shutil.which("squeue") is None:
        raise WorkerError("squeue is not on the PATH: --executor slurm needs Slurm's client commands here")
    try:
        done = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i|%k|%T"], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise WorkerError("squeue did not answer within 60 s") from None
    if done.returncode != 0:
        raise WorkerError(f"squeue failed: {' '.join(done.stderr.split())}")
    out = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[2] not in _ENDED:
            out[parts[0]] = (parts[1], parts[2])
    return out


class _Submissions:
    """``OUT/slurm/submissions/*.json``: which runs went to which task of which job (written by the driver)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.items: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            try:
                item = json.loads(path.read_text())
                if isinstance(item, dict) and isinstance(item.get("packs"), list):
                    self.items[path.stem] = item
            except (OSError, ValueError):
                continue  # a file this driver did not write whole: its runs count as not submitted

    def save(self, token: str, item: dict[str, Any]) -> None:
        self.items[token] = item
        write_atomic(self.dir / f"{token}.json", json.dumps(item, indent=1).encode())

    def tasks_of(self, run_id: str) -> list[str | None]:
        """The task ids that were given ``run_id``, in order (None while a job id is unknown): ``123_4`` for the
        fifth task of array 123; ``123`` for a submission of one pack, which submitit sends as a plain job."""
        out: list[str | None] = []
        for item in sorted(self.items.values(), key=lambda i: i.get("created", 0)):
            for index, pack in enumerate(item["packs"]):
                if run_id in pack:
                    job = item.get("job_id")
                    out.append(None if job is None else str(job) if len(item["packs"]) == 1 else f"{job}_{index}")
        return out

    def job_ids(self) -> list[str]:
        return sorted({str(i["job_id"]) for i in self.items.values() if i.get("job_id") is not None}, key=int)


class SlurmExecutor(Executor):
    """See the module docstring."""

    name = "slurm"

    def __init__(self, options: SlurmOptions | None = None) -> None:
        self.options = options or SlurmOptions()
        self._outstanding: dict[str, RunConfig] = {}

    def describe(self) -> str:
        return f"slurm ({', '.join(f'{k}={v}' for k, v in self.options.submitit_parameters().items())})"

    def start(self, session: Session) -> None:
        super().start(session)
        if importlib.util.find_spec("submitit") is None:
            raise WorkerError("--executor slurm needs submitit: pip install 'inna[slurm]'")
        if shutil.which("sbatch") is None:
            raise WorkerError("sbatch is not on the PATH: --executor slurm needs Slurm's client commands here")
        check_shared_path(session.out, "--out", session.log)  # the jobs write their shards and checkpoints there
        self.dir = session.out / "slurm"
        self.shard_dir = session.out / SHARD_DIR
        self.name_ = job_name(session.out)
        self.subs = _Submissions(self.dir / "submissions")
        self._recover_job_ids()

    def _recover_job_ids(self) -> None:
        """Submissions whose job id was never written (the driver died right after ``sbatch``): from ``squeue``."""
        unknown = {token for token, item in self.subs.items.items() if item.get("job_id") is None}
        if not unknown:
            return
        for task, (comment, _) in _squeue(self.name_).items():
            if comment in unknown:
                self.subs.save(comment, {**self.subs.items[comment], "job_id": task.split("_")[0]})

    # ----------------------------------------------------------------------------------------------- submit

    def submit(self, configs: Sequence[RunConfig]) -> None:
        s = self.session
        prepare_checkpoints(configs, s.last_recorded_epochs(configs), s.checkpoint_dir, s.log, keep_ahead=True)
        live = _squeue(self.name_)
        new = []
        for c in configs:
            self._outstanding[c.run_id] = c
            tasks = self.subs.tasks_of(c.run_id)
            if shard_path(self.shard_dir, c.run_id).is_file() or (tasks and tasks[-1] in live):
                continue  # finished while no driver was here, or still queued/running: attach to it
            new.append(c)
        if len(new) < len(configs):
            s.log(f"[inna bench] slurm: {len(configs) - len(new)} run(s) already submitted by an earlier driver "
                  "(finished or still in the queue): attached, not submitted again")  # fmt: skip
        if new:
            self._submit_new(new)

    def _submit_new(self, configs: list[RunConfig]) -> None:
        import submitit

        for c in configs:
            error_path(self.shard_dir, c.run_id).unlink(missing_ok=True)
        size = self.options.pack_size(len(configs))
        packs = [configs[i : i + size] for i in range(0, len(configs), size)]
        token = uuid.uuid4().hex[:16]
        item = {"token": token, "job_id": None, "created": time.time(), "job_name": self.name_,
                "packs": [[c.run_id for c in p] for p in packs]}  # fmt: skip
        self.subs.save(token, item)  # before sbatch: a driver that dies right after still finds the job
        ex = submitit.AutoExecutor(folder=self.dir / "logs" / "%j", cluster="slurm")
        ex.update_parameters(name=self.name_, slurm_comment=token, **self.options.submitit_parameters())
        n = len(packs)
        try:
            jobs = ex.map_array(run_pack_to_shards, [[c.to_json() for c in p] for p in packs],
                                [str(self.session.checkpoint_dir)] * n, [str(self.shard_dir)] * n)  # fmt: skip
        except Exception as err:  # submitit's FailedJobError carries sbatch's own message
            raise WorkerError(f"sbatch refused the job: {' '.join(str(err).split())}") from None
        job_id = str(jobs[0].job_id).split("_")[0]
        self.subs.save(token, {**item, "job_id": job_id})
        what = f"job {job_id}" if n == 1 else f"job array {job_id} ({n} tasks of up to {size} runs)"
        self.session.log(f"[inna bench] slurm: submitted {len(configs)} run(s) as {what}; logs in "
                         f"{self.dir / 'logs' / job_id}*")  # fmt: skip

    # ----------------------------------------------------------------------------------------------- wait

    def wait(self) -> list[str]:
        try:
            return self._wait()
        except KeyboardInterrupt:
            raise Detached(self.follow_message(interrupted=True), interrupted=True) from None

    def _wait(self) -> list[str]:
        while self._outstanding:
            live = _squeue(self.name_)  # before the shards: a task that leaves the queue has written them
            finished = self._collect()
            dead = [rid for rid in self._outstanding if (self.subs.tasks_of(rid) or [None])[-1] not in live]
            if dead:
                self._resubmit(dead)
            if finished:
                return finished
            if self.options.detach:
                raise Detached(self.follow_message())
            time.sleep(self.options.poll_s)
        self._sweep_leftovers()
        return []

    def _collect(self) -> list[str]:
        finished = []
        for rid, cfg in list(self._outstanding.items()):
            shard, error = shard_path(self.shard_dir, rid), error_path(self.shard_dir, rid)
            if shard.is_file():
                records, problem = check_run_lines(cfg, shard.read_text(encoding="utf-8", errors="replace")
                                                   .splitlines())  # fmt: skip
                if problem is not None:
                    aside = _set_aside(shard)
                    self.session.log(f"[inna bench] warning: shard {shard} is damaged or not this run's ({problem}); "
                                     f"set aside as {aside.name}, run {rid} is run again")  # fmt: skip
                    continue
                self.session.write_run(records)
                shard.unlink()
                del self._outstanding[rid]
                finished.append(rid)
            elif error.is_file():
                task = (self.subs.tasks_of(rid) or [None])[-1]
                log = self.dir / "logs" / str(task) / f"{task}_0_log.err"
                raise WorkerError(f"run {rid} failed in Slurm task {task} (log: {log}):\n"
                                  f"{error.read_text(errors='replace')}")  # fmt: skip
        return finished

    def _resubmit(self, dead: list[str]) -> None:
        for rid in dead:
            tasks = self.subs.tasks_of(rid)
            if len(tasks) >= self.options.max_attempts:
                raise WorkerError(f"run {rid} did not finish in {len(tasks)} Slurm jobs (the last, {tasks[-1]}, "
                                  f"ended without its shard); see {self.dir / 'logs'}")  # fmt: skip
        tasks = sorted({str(t) for rid in dead for t in self.subs.tasks_of(rid)[-1:]})
        self.session.log(f"[inna bench] warning: Slurm task(s) {', '.join(tasks)} ended with {len(dead)} run(s) "
                         "unfinished (cancelled, preempted, time limit or node failure): submitted again, from their "
                         "last checkpoints")  # fmt: skip
        self._submit_new([self._outstanding[rid] for rid in dead])

    def _sweep_leftovers(self) -> None:
        """With nothing outstanding: a shard of a run already in the results (merged, then the driver died before
        deleting it) is deleted; any other is foreign to this suite, and set aside with a warning."""
        for shard in sorted(self.shard_dir.glob("*.jsonl")) if self.shard_dir.is_dir() else []:
            if self.session.finished(shard.stem):
                shard.unlink()
            else:
                aside = _set_aside(shard)
                self.session.log(f"[inna bench] warning: shard {shard} belongs to no run of this suite; set aside as "
                                 f"{aside.name}")  # fmt: skip

    def interrupted_message(self) -> str | None:
        return self.follow_message(interrupted=True) if hasattr(self, "subs") and self._outstanding else None

    def follow_message(self, interrupted: bool = False) -> str:
        jobs = sorted({str(t).split("_")[0] for rid in self._outstanding for t in self.subs.tasks_of(rid)[-1:]})
        head = "interrupted: detached" if interrupted else "detached"
        return (f"{head}: {len(self._outstanding)} run(s) go on in Slurm job(s) {', '.join(jobs) or '-'} without "
                f"this driver. Follow them: squeue -n {self.name_}; logs in {self.dir / 'logs'}/. Rerun the same "
                "command to attach (it merges what finished, waits for the rest and goes on with the protocol), "
                "or add --cancel to cancel them.")  # fmt: skip


def _set_aside(path: Path) -> Path:
    target = path.with_name(path.name + ".damaged")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged{n}")
    os.replace(path, target)
    return target


def cancel_jobs(out: str | os.PathLike[str], log: Callable[[str], Any] = print) -> list[str]:
    """``scancel`` every queued or running job of the output directory ``out``; returns their ids."""
    live = _squeue(job_name(out))
    jobs = sorted({task.split("_")[0] for task in live}, key=int)
    if jobs:
        done = subprocess.run(["scancel", *jobs], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise WorkerError(f"scancel failed: {' '.join(done.stderr.split())}")
    log(f"[inna bench] slurm: cancelled job(s) {', '.join(jobs)}" if jobs else
        f"[inna bench] slurm: no job of {out} is queued or running")  # fmt: skip
    return jobs
