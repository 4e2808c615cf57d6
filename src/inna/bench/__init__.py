"""``inna.bench``: reproduce the paper's experiments (INNA vs SGD, Adagrad, Adam, ...) on real data.

Modules, one concept each (imports run downwards in this list, never upwards):

* :mod:`~inna.bench.errors`: the user-facing errors (printed as one line by the command line);
* :mod:`~inna.bench.records`: the results file: record schema, store (append, torn-tail fix, repair), queries;
  no torch, so reading results is cheap;
* :mod:`~inna.bench.rundir`: a results directory: created writable, one writer at a time (a lock);
* :mod:`~inna.bench.data` (offline and user-provided data sets, every file checked),
  :mod:`~inna.bench.models` (the paper's Network in Network, VGG-11, ResNet-18, small CPU networks),
  :mod:`~inna.bench.optimizers` (the compared optimizers, their schedules and γ₀ grids; specs checked when
  parsed);
* :mod:`~inna.bench.config`: a run's definition (:class:`RunConfig`, ``run_id``) and its derived seeds;
* :mod:`~inna.bench.checkpoints`: checkpoints of unfinished runs (atomic, damaged ones set aside);
* :mod:`~inna.bench.training`: one run, and the determinism contract;
* :mod:`~inna.bench.execution`: many runs, in this process or in workers that never outlive it;
* :mod:`~inna.bench.protocol`: tasks, suites, γ₀ selection on the training loss, :func:`run_suite`;
* :mod:`~inna.bench.report` (markdown + figures) and :mod:`~inna.bench.sweep` ((α, β, q) sensitivity), which
  read results through :mod:`~inna.bench.records` only;
* :mod:`~inna.bench.cli`: ``inna bench``, ``inna report``, ``inna sweep``;
* :mod:`~inna.bench.runner`: the former home of config, store, training and execution, kept as re-exports.

Needs the ``bench`` extra: ``pip install 'inna[bench]'``.
"""

from .config import RunConfig
from .data import Dataset, DatasetNotFoundError, load_dataset
from .errors import BenchError, DatasetFileError, OutputDirError, ResultsBusyError, ResultsFileError
from .execution import execute_runs
from .models import NiN, build_model, count_parameters
from .optimizers import OPTIMIZERS, OptimizerSpec, build_optimizer, parse_optimizer
from .protocol import SUITES, Suite, Task, run_suite, select_lr
from .records import RecordType, ResultsStore, RunStatus, read_records, repair_results
from .report import write_report
from .training import train_run

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
