"""Compatibility names: the runner's parts now live in modules of their own.

* :mod:`inna.bench.config`: :class:`RunConfig` (a run's definition and ``run_id``) and the derived seeds;
* :mod:`inna.bench.records`: the record schema, the JSONL store (:class:`ResultsStore`, repair) and the queries;
* :mod:`inna.bench.rundir`: the results directory (creation, the one-writer lock);
* :mod:`inna.bench.checkpoints`: the checkpoints of unfinished runs;
* :mod:`inna.bench.training`: one training run (:func:`train_run`) and the determinism contract;
* :mod:`inna.bench.execution`: many runs, in this process or in workers (:func:`execute_runs`).

The names below are re-exported from those modules, so ``from inna.bench.runner import ...`` keeps working.
"""

from __future__ import annotations

from .config import RunConfig, init_seed
from .execution import execute_runs
from .records import Record, ResultsStore, finished_runs, group_runs, read_records
from .training import evaluate, get_dataset, resolve_device, train_run

__all__ = [
    "Record",
    "ResultsStore",
    "RunConfig",
    "evaluate",
    "execute_runs",
    "finished_runs",
    "get_dataset",
    "group_runs",
    "init_seed",
    "read_records",
    "resolve_device",
    "train_run",
]
