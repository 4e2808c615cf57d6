"""``inna.bench``: reproduce the paper's experiments (INNA vs SGD, Adagrad, Adam, ...) on real data.

Modules: :mod:`~inna.bench.data` (offline and user-provided data sets), :mod:`~inna.bench.models` (the paper's
Network in Network, VGG-11, ResNet-18, small CPU networks), :mod:`~inna.bench.optimizers` (the compared optimizers
and their schedules), :mod:`~inna.bench.protocol` (γ₀ selection on the training loss, suites),
:mod:`~inna.bench.runner` (JSONL results, resume, divergence, parallel workers), :mod:`~inna.bench.report`
(markdown + figures), :mod:`~inna.bench.sweep` ((α, β, q) sensitivity) and :mod:`~inna.bench.cli`
(``inna bench``, ``inna report``, ``inna sweep``). Needs the ``bench`` extra: ``pip install 'inna[bench]'``.
"""

from .data import Dataset, DatasetNotFoundError, load_dataset
from .models import NiN, build_model, count_parameters
from .optimizers import OPTIMIZERS, OptimizerSpec, build_optimizer, parse_optimizer
from .protocol import SUITES, Suite, Task, run_suite, select_lr
from .report import write_report
from .runner import ResultsStore, RunConfig, execute_runs, read_records, train_run

__all__ = [
    "OPTIMIZERS",
    "SUITES",
    "Dataset",
    "DatasetNotFoundError",
    "NiN",
    "OptimizerSpec",
    "ResultsStore",
    "RunConfig",
    "Suite",
    "Task",
    "build_model",
    "build_optimizer",
    "count_parameters",
    "execute_runs",
    "load_dataset",
    "parse_optimizer",
    "read_records",
    "run_suite",
    "select_lr",
    "train_run",
    "write_report",
]
