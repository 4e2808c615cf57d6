"""``--executor ray``: one Ray core task per run (or per pack of short runs); records stream back to the driver.

The driver connects to the cluster named by ``--ray-address`` or by Ray's own ``RAY_ADDRESS``; with neither, it
starts a local Ray instance (as many CPUs as this machine has) and shuts it down at the end. Each task
(:func:`~inna.bench.remote.ray_run_pack`, ``num_cpus``/``num_gpus`` from the options) trains its runs and returns
their records as JSON lines; the driver checks them (:func:`~inna.bench.remote.check_run_lines`) and writes each
run with one write as its task finishes: the driver is the only writer of the results file, and the workers need
no shared file system for results. A task whose worker dies (killed, out of memory, node lost) is retried by Ray
(``max_retries``) and resumes from the run's last checkpoint when the checkpoint directory is shared (from epoch
0 otherwise: the same numbers either way). A run that raises is not retried: the error names it.

No Ray Tune: tasks, ``ray.wait`` and ``ray.get`` only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoints import prepare_checkpoints
from .config import RunConfig
from .execution import Executor, Session, WorkerError
from .remote import check_run_lines, ray_run_pack

__all__ = ["RayExecutor", "RayOptions"]


@dataclass(frozen=True)
class RayOptions:
    """Where the cluster is and what each task asks for."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    #: runs per task (1: one task per run; Ray reuses its worker processes, so a task pays no interpreter start)
    pack: int = 1
    max_retries: int = 3
    #: the object store of a local instance (results are small)
    object_store_mb: int = 200


class RayExecutor(Executor):
    """See the module docstring."""

    name = "ray"

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self._refs: dict[Any, list[RunConfig]] = {}
        self._owned = False

    def address(self) -> str | None:
        return self.options.address or os.environ.get("RAY_ADDRESS") or None

    def describe(self) -> str:
        where = self.address() or "a local Ray instance started for this suite"
        return (f"ray ({where}; num_cpus={self.options.num_cpus:g}, num_gpus={self.options.num_gpus:g} per task, "
                f"{self.options.pack} run(s) per task, max_retries={self.options.max_retries})")  # fmt: skip

    def start(self, session: Session) -> None:
        super().start(session)
        try:
            import ray
        except ModuleNotFoundError:
            raise WorkerError("--executor ray needs Ray: pip install 'inna[ray]'") from None
        if not ray.is_initialized():
            address = self.address()
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         object_store_memory=self.options.object_store_mb * 2**20)  # fmt: skip
                self._owned = True
            session.log(f"[inna bench] ray: {self.describe()}")
        o = self.options
        self._task = ray.remote(num_cpus=o.num_cpus, num_gpus=o.num_gpus, max_retries=o.max_retries)(ray_run_pack)

    def submit(self, configs: Sequence[RunConfig]) -> None:
        s = self.session
        prepare_checkpoints(configs, s.last_recorded_epochs(configs), s.checkpoint_dir, s.log, keep_ahead=True)
        size = max(1, self.options.pack)
        for i in range(0, len(configs), size):
            pack = list(configs[i : i + size])
            ref = self._task.remote([c.to_json() for c in pack], str(s.checkpoint_dir))
            self._refs[ref] = pack

    def wait(self) -> list[str]:
        import ray

        while self._refs:
            ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=1.0)
            if not ready:
                continue
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)  # all that are done now
            finished: list[str] = []
            for ref in ready:
                pack = self._refs.pop(ref)
                finished += self._merge(pack, self._result(ref, pack))
            return finished
        return []

    def _result(self, ref: Any, pack: list[RunConfig]) -> list[tuple[str, list[str]]]:
        import ray

        ids = ", ".join(c.run_id for c in pack)
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the run raised: not a worker's death, not retried
            raise WorkerError(f"run(s) {ids} failed in a Ray task:\n{err}") from None
        except ray.exceptions.RayError as err:
            raise WorkerError(f"run(s) {ids}: the Ray task was lost after {self.options.max_retries} retries "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:500]}); rerun the same command to "
                              "resume") from None  # fmt: skip

    def _merge(self, pack: list[RunConfig], results: list[tuple[str, list[str]]]) -> list[str]:
        by_id = {c.run_id: c for c in pack}
        finished = []
        for rid, lines in results:
            records, problem = check_run_lines(by_id[rid], lines)
            if problem is not None:
                raise WorkerError(f"run {rid}: the Ray task reported records that are not the run's ({problem})")
            self.session.write_run(records)
            finished.append(rid)
        return finished

    def close(self) -> None:
        self._refs.clear()
        if self._owned:
            import ray

            ray.shutdown()
            self._owned = False
