"""``inna.bench``: reproduce the paper's experiments (INNA vs SGD, Adagrad, Adam, ...) on real data.

Modules, one concept each (imports run downwards in this list, never upwards):

* :mod:`~inna.bench.errors`: the user-facing errors (printed as one line by the command line);
* :mod:`~inna.bench.records`: the results file: record schema, store (append, torn-tail fix, repair), queries;
  no torch, so reading results is cheap;
* :mod:`~inna.bench.rundir`: a results directory: created writable, one writer at a time (a lock);
* :mod:`~inna.bench.data` (offline and user-provided data sets: the file formats, the sources, the registry;
  every file checked, nothing read runs code),
  :mod:`~inna.bench.models` (the paper's Network in Network, VGG-11, ResNet-18, small CPU networks),
  :mod:`~inna.bench.optimizers` (the compared optimizers, their schedules and γ₀ grids; specs checked when
  parsed);
* :mod:`~inna.bench.config`: a run's definition (:class:`RunConfig`, ``run_id``) and its derived seeds;
* :mod:`~inna.bench.checkpoints`: checkpoints of unfinished runs (atomic, damaged ones set aside);
* :mod:`~inna.bench.training`: one run, and the determinism contract;
* :mod:`~inna.bench.execution`: many runs, in this process or in workers that never outlive it;
* :mod:`~inna.bench.suites`: tasks, suites and the registry of named suites;
* :mod:`~inna.bench.protocol`: γ₀ selection on the training loss, then the full runs (:func:`run_suite`);
* :mod:`~inna.bench.report` (markdown + figures) and :mod:`~inna.bench.sweep` ((α, β, q) sensitivity), which
  read results through :mod:`~inna.bench.records` only;
* :mod:`~inna.bench.cli`: ``inna bench``, ``inna report``, ``inna sweep``.

Needs the ``bench`` extra: ``pip install 'inna[bench]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the submodule that defines it. Imported on first use, so that reading results
#: (``inna.bench.records``, ``inna.bench.report``) never imports torch or the training code.
_EXPORTS = {
    "RunConfig": "config",
    "Dataset": "data", "load_dataset": "data",
    "BenchError": "errors", "DatasetFileError": "errors", "DatasetNotFoundError": "errors",
    "OutputDirError": "errors", "ResultsBusyError": "errors", "ResultsFileError": "errors",
    "execute_runs": "execution",
    "NiN": "models", "build_model": "models", "count_parameters": "models",
    "OPTIMIZERS": "optimizers", "OptimizerSpec": "optimizers", "build_optimizer": "optimizers",
    "parse_optimizer": "optimizers",
    "run_suite": "protocol", "select_lr": "protocol",
    "SUITES": "suites", "Suite": "suites", "Task": "suites",
    "RecordType": "records", "ResultsStore": "records", "RunStatus": "records", "read_records": "records",
    "repair_results": "records",
    "write_report": "report",
    "train_run": "training",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'inna.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "OPTIMIZERS",
    "SUITES",
    "BenchError",
    "Dataset",
    "DatasetFileError",
    "DatasetNotFoundError",
    "NiN",
    "OptimizerSpec",
    "OutputDirError",
    "RecordType",
    "ResultsBusyError",
    "ResultsFileError",
    "ResultsStore",
    "RunConfig",
    "RunStatus",
    "Suite",
    "Task",
    "build_model",
    "build_optimizer",
    "count_parameters",
    "execute_runs",
    "load_dataset",
    "parse_optimizer",
    "read_records",
    "repair_results",
    "run_suite",
    "select_lr",
    "train_run",
    "write_report",
]
