"""The options of ``inna bench`` that say where its runs go (``--executor``, ``--devices``, the Slurm and Ray
resources, ``--detach``, ``--cancel``, ``--plan``), and the executor they make.

:data:`EXECUTORS` is the single source of ``--executor``'s vocabulary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cli_types import _nonnegative_float, _positive_int

__all__ = [
    "EXECUTORS",
    "add_executor_options",
    "bench_device",
    "check_executor_args",
    "executor_lines",
    "make_executor",
    "print_plan",
    "shared_data_dir",
]

#: ``--executor`` name → what it is.
EXECUTORS = {
    "local": "this machine: this process, --workers processes, or one worker per --devices entry (the default)",
    "slurm": "Slurm job arrays through submitit (pip install 'inna[slurm]'); --detach, --cancel, reattach by rerunning",
    "ray": "Ray core tasks on the cluster in RAY_ADDRESS or --ray-address, else on a local Ray instance (pip install "
    "'inna[ray]')",
}

_SLURM_OPTIONS = ("slurm_partition", "slurm_gpus_per_task", "slurm_cpus_per_task", "slurm_time", "slurm_mem",
                  "slurm_array_parallelism", "slurm_sbatch", "detach", "cancel")  # fmt: skip
_RAY_OPTIONS = ("ray_address", "ray_num_cpus", "ray_num_gpus", "ray_max_retries")


def _slurm_time(text: str) -> int:
    from .executor_slurm import parse_slurm_time

    try:
        return parse_slurm_time(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _sbatch(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or FLAG (an sbatch option), got {text!r}")
    return key, (value if sep else True)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """Add the options to the ``bench`` parser."""
    g = p.add_argument_group("where the runs go")
    g.add_argument("--executor", choices=list(EXECUTORS), default="local",
                   help="; ".join(f"{k}: {v}" for k, v in EXECUTORS.items()))  # fmt: skip
    g.add_argument("--devices", metavar="LIST",
                   help="local: one worker per device, each pinned to its own: cuda:0,cuda:1,... or auto (every "
                   "visible GPU); replaces --workers and --device")  # fmt: skip
    g.add_argument("--pack", type=_positive_int, metavar="N",
                   help="runs per Slurm array task or Ray task (Slurm default: each submission in at most "
                   "--slurm-array-parallelism tasks, 32 without it; Ray default: 1)")  # fmt: skip
    g.add_argument("--plan", action="store_true",
                   help="run nothing: print the runs per round, their epochs, the estimated device-hours, and for "
                   "slurm the sbatch resources")  # fmt: skip
    g.add_argument("--step-cost", type=_nonnegative_float, metavar="SECONDS",
                   help="--plan: seconds per training step (measure with benchmarks/bench_epoch_cost.py; default: "
                   "measured from the runs already in --out)")  # fmt: skip
    s = p.add_argument_group("--executor slurm")
    s.add_argument("--slurm-partition", metavar="NAME", help="partition of the jobs (default: the cluster's)")
    s.add_argument("--slurm-gpus-per-task", type=_positive_int, metavar="N", help="GPUs of each array task")
    s.add_argument("--slurm-cpus-per-task", type=_positive_int, metavar="N", help="CPUs of each array task (1)")
    s.add_argument("--slurm-time", type=_slurm_time, metavar="TIME",
                   help="time limit of each array task, in Slurm's formats (minutes, H:M:S, D-H:M:S; default 1-0, a "
                   "day); a task that reaches it is resubmitted from its runs' checkpoints")  # fmt: skip
    s.add_argument("--slurm-mem", metavar="MEM", help="memory of each array task (e.g. 16G)")
    s.add_argument("--slurm-array-parallelism", type=_positive_int, metavar="N",
                   help="array tasks running at once")  # fmt: skip
    s.add_argument(
        "--slurm-sbatch",
        type=_sbatch,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, repeatable: --slurm-sbatch account=abc --slurm-sbatch requeue",
    )
    s.add_argument(
        "--detach",
        action="store_true",
        help="submit what can run now and exit; rerun the same command to attach (merge, wait, go on)",
    )
    s.add_argument("--cancel", action="store_true", help="cancel the queued and running jobs of --out, and exit")
    r = p.add_argument_group("--executor ray")
    r.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster (default: RAY_ADDRESS, else a local one)")
    r.add_argument("--ray-num-cpus", type=_nonnegative_float, metavar="N", help="CPUs of each Ray task (1)")
    r.add_argument("--ray-num-gpus", type=_nonnegative_float, metavar="N", help="GPUs of each Ray task (0)")
    r.add_argument(
        "--ray-max-retries",
        type=int,
        metavar="N",
        help="retries of a task whose worker died (3); each resumes from the run's checkpoint",
    )


def check_executor_args(args: argparse.Namespace) -> None:
    """Options that belong to another executor than ``--executor`` are an error naming them."""

    def given(name: str) -> bool:
        value = getattr(args, name)
        return value not in (None, False, [])

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    if args.executor != "slurm":
        wrong = [flag(n) for n in _SLURM_OPTIONS if given(n)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: option(s) of --executor slurm (this is --executor {args.executor})")
    if args.executor != "ray":
        wrong = [flag(n) for n in _RAY_OPTIONS if given(n)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: option(s) of --executor ray (this is --executor {args.executor})")
    if args.executor != "local" and args.devices:
        raise ValueError(f"--devices: an option of --executor local (with {args.executor}, ask for GPUs per task)")
    if args.executor == "local" and args.pack:
        raise ValueError("--pack: an option of --executor slurm and ray")


def make_executor(args: argparse.Namespace, workers: int) -> Any:
    """The executor the options ask for."""
    if args.executor == "slurm":
        from .executor_slurm import SlurmExecutor, SlurmOptions

        opts = {"partition": args.slurm_partition, "gpus_per_task": args.slurm_gpus_per_task,
                "cpus_per_task": args.slurm_cpus_per_task, "time_min": args.slurm_time, "mem": args.slurm_mem,
                "array_parallelism": args.slurm_array_parallelism, "pack": args.pack}  # fmt: skip
        given = {k: v for k, v in opts.items() if v is not None}
        return SlurmExecutor(SlurmOptions(sbatch=dict(args.slurm_sbatch), detach=args.detach, **given))
    if args.executor == "ray":
        from .executor_ray import RayExecutor, RayOptions

        opts = {"address": args.ray_address, "num_cpus": args.ray_num_cpus, "num_gpus": args.ray_num_gpus,
                "max_retries": args.ray_max_retries, "pack": args.pack}  # fmt: skip
        return RayExecutor(RayOptions(**{k: v for k, v in opts.items() if v is not None}))
    from .devices import parse_devices
    from .execution import LocalExecutor

    return LocalExecutor(workers, parse_devices(args.devices) if args.devices else None)


def executor_lines(executor: Any, first_submission: int) -> list[str]:
    """For ``--plan``: where the runs would go; for Slurm the sbatch lines of the first submission."""
    lines = [f"executor: {executor.describe()}"]
    if executor.name == "slurm":
        o = executor.options
        size = o.pack_size(first_submission)
        tasks = -(-first_submission // size)
        lines.append(f"first submission (the initial γ₀ grids, {first_submission} runs): a job array of {tasks} "
                     f"task(s), {size} run(s) each, with")  # fmt: skip
        lines += ["    " + line for line in o.sbatch_lines(tasks)]
        lines.append("then one job array per later batch (grid extensions, full runs), with the same resources")
    return lines


def shared_data_dir(args: argparse.Namespace, log: Callable[[str], Any]) -> str | None:
    """``--data-dir`` for runs on other hosts: checked to exist, made absolute, with a warning when it is local."""
    if args.data_dir is None or args.executor == "local":
        return args.data_dir
    from .remote import check_shared_path

    return check_shared_path(Path(args.data_dir), "--data-dir", log)


def bench_device(args: argparse.Namespace) -> str:
    """``--device``, resolved here for local runs; for remote runs checked only, and resolved where they run."""
    from .training import check_device, resolve_device

    return resolve_device(args.device) if args.executor == "local" else check_device(args.device)


def print_plan(args: argparse.Namespace, suite: Any, out: Path, executor: Any) -> int:
    """``--plan``: print the plan of ``suite`` (see :mod:`inna.bench.plan`); runs nothing."""
    from .plan import measured_step_costs, plan_rounds, plan_text

    rounds = plan_rounds(suite, dict(args.lr))
    if args.step_cost is not None:
        costs, source = {"*": args.step_cost}, "--step-cost"
    else:
        costs, source = measured_step_costs(out), f"measured in {out / 'results.jsonl'}"
    first = sum(r.runs for r in rounds if r.name.endswith("initial grids")) or sum(r.runs for r in rounds)
    print(plan_text(suite, rounds, costs, source, executor_lines(executor, first)))
    return 0
