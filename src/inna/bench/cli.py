"""``inna bench``, ``inna report`` and ``inna sweep`` (registered by :mod:`inna.cli`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from .cli_types import _fixed_lr, _floats, _nonnegative_int, _positive_float, _positive_int

__all__ = ["register"]


def _vocabulary() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """(SUITES, OPTIMIZERS, MODELS, DATASETS) from their registries, or None without torch (no training then)."""
    try:
        from .data import DATASETS
        from .models import MODELS
        from .optimizers import OPTIMIZERS
        from .suites import SUITES
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] == "torch":
            return None
        raise
    return SUITES, OPTIMIZERS, MODELS, DATASETS


def _wrap(text: str, indent: int) -> str:
    return textwrap.fill(text, 116, initial_indent=" " * indent, subsequent_indent=" " * indent).lstrip()


def suite_help() -> str:
    """The epilog of ``inna bench --help``: every suite, optimizer and data set, from the registries."""
    vocab = _vocabulary()
    if vocab is None:
        return "(torch is not installed: install the bench extra, pip install 'inna[bench]')\n"
    suites, optimizers, _, datasets = vocab
    width = max(len(n) for n in suites) + 2
    lines = ["suites:"]
    for name, suite in suites.items():
        head = f"  {name:<{width}}" + ("(default) " if name == "quick" else "")
        lines.append(head + _wrap(suite.description, len(head) if len(head) < 40 else width + 2))
    lines += ["", "optimizers (use with --optimizers; add :key=value to change options):"]
    owidth = max(len(n) for n in optimizers) + 2
    for name, spec in optimizers.items():
        lines.append(f"  {name:<{owidth}}" + _wrap(f"{spec.name}: {spec.note}" if spec.note else spec.name, owidth + 2))
    lines += [
        "  e.g. inna:alpha=0.3:beta=0.2:power=0.25   adam:grid=1e-4,1e-3   sgd:power=0:label=SGD-const",
        "",
        _wrap(
            f"datasets: {', '.join(datasets)} (digits, mnist1d, mnist5k offline; fashion-mnist from Debian's "
            "dataset-fashion-mnist or --data-dir; mnist, cifar10, cifar100 from --data-dir, see docs/bench.md for "
            "the file layout). Results go to OUT/results.jsonl (resumable: rerun the same command), OUT/report.md "
            "and OUT/figures/*.png.",
            0,
        ),
    ]
    return "\n".join(lines) + "\n"


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def bench_out_default(suite: str, datasets: list[str] | None) -> Path:
    """Where ``inna bench`` writes without ``--out``."""
    return Path(f"runs/{suite}" + (f"-{'-'.join(datasets)}" if datasets else ""))


def sweep_model_default(dataset: str) -> str:
    """The network of ``inna sweep`` without ``--model``."""
    return "cnn1d" if dataset == "mnist1d" else "mlp"


def sweep_out_default(dataset: str, model: str) -> Path:
    """Where ``inna sweep`` writes without ``--out`` (the task is named ``<dataset>-<model>``)."""
    return Path(f"runs/sweep-{dataset}-{model}")


_BENCH_OUT_HELP = (
    f"default: {bench_out_default('<suite>', None)}[-<datasets>], e.g. {bench_out_default('quick', None)} or "
    f"{bench_out_default('paper', ['cifar100'])}"
)
_SWEEP_OUT_HELP = (
    f"default: {sweep_out_default('<dataset>', '<model>')}, e.g. "
    f"{sweep_out_default('mnist1d', sweep_model_default('mnist1d'))} or "
    f"{sweep_out_default('digits', sweep_model_default('digits'))}"
)


def _add_common(p: argparse.ArgumentParser, out_help: str) -> None:
    g = p.add_argument_group("data, budget and execution")
    g.add_argument(
        "--data-dir",
        metavar="D",
        help="directory with user-provided data (mnist, cifar10, cifar100, "
        "or fashion-mnist instead of /usr/share/datasets/fashion-mnist); the mnist1d cache for mnist1d",
    )
    g.add_argument(
        "--out",
        metavar="DIR",
        help=f"output directory ({out_help}); rerunning with the same DIR resumes: finished runs are not "
        "redone, interrupted ones continue; one writer at a time per DIR",
    )
    vocab = _vocabulary()
    g.add_argument("--model", choices=list(vocab[2]) if vocab else None, help="replace every task's network")
    g.add_argument(
        "--width",
        type=_positive_float,
        help="channel-width multiplier of the networks (NiN: 0.25 is "
        "CPU-sized; 1 is the paper's 967,096-parameter NiN)",
    )
    g.add_argument("--epochs", type=_positive_int, help="epochs of the full runs (paper: 200)")
    g.add_argument("--tune-epochs", type=_positive_int, help="epochs of each gamma0-selection run (paper: 15)")
    g.add_argument("--batch-size", type=_positive_int, help="mini-batch size (default 32, the paper's)")
    g.add_argument(
        "--train-subset",
        type=_positive_int,
        metavar="N",
        help="keep N training examples (class-stratified, fixed draw)",
    )
    g.add_argument("--test-subset", type=_positive_int, metavar="N", help="keep N test examples")
    g.add_argument(
        "--grid-points", type=_positive_int, metavar="K", help="try only the K central values of each gamma0 grid"
    )
    g.add_argument(
        "--grid-extensions",
        type=_nonnegative_int,
        metavar="N",
        help="how many log steps a gamma0 grid may grow past an end while the best value sits there "
        "(default: the suite's, 3)",
    )
    g.add_argument(
        "--workers",
        type=_positive_int,
        help="independent runs in parallel processes, one torch thread each; on a GPU they share the device "
        f"(default: the suite's own, gpu-paper's 6; else {_default_workers()})",
    )
    g.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, or auto")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-figures", action="store_true", help="write the report without PNG figures")
    g.add_argument("--repair", action="store_true", help=_REPAIR_HELP)


_REPAIR_HELP = (
    "first repair OUT/results.jsonl: keep every valid record, move every bad line to results.jsonl.rejected "
    "(the runs that lose a record are run again, with the same numbers)"
)


def register(subparsers: Any) -> None:
    """Add the ``bench``, ``report`` and ``sweep`` subcommands to the ``inna`` parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "bench",
        help="compare INNA with SGD, Adagrad, Adam (and more) under the paper's protocol; print the table",
        description=textwrap.fill(
            "Run a benchmark suite: gamma0 of each optimizer selected from a log grid by the lowest TRAINING loss "
            "after a short budget (never the test set), then full runs over several seeds from the same initial "
            "weights; per-epoch results appended to OUT/results.jsonl; then OUT/report.md and figures.",
            100,
        ),
        epilog=suite_help(),
        formatter_class=fmt,
    )
    vocab = _vocabulary()
    p.add_argument(
        "--suite",
        choices=list(vocab[0]) if vocab else None,
        default="quick",
        help="which suite to run (default: quick; see below)",
    )
    p.add_argument(
        "--dataset",
        nargs="+",
        metavar="NAME",
        help="run the suite's network and budget on these data sets instead (e.g. --suite paper --dataset cifar10)",
    )
    p.add_argument("--optimizers", nargs="+", metavar="SPEC", help="optimizers to compare (see below)")
    p.add_argument(
        "--text",
        metavar="FILE",
        help="UTF-8 text file for the suite's language-model task instead of the CPython stdlib sources "
        "(e.g. tiny-shakespeare's input.txt; its path and SHA-256 are recorded)",
    )
    p.add_argument("--seeds", type=_positive_int, help="number of seeds of the full runs")
    p.add_argument(
        "--lr",
        action="append",
        type=_fixed_lr,
        default=[],
        metavar="OPT=GAMMA0",
        help="skip gamma0 selection for OPT and use GAMMA0 (repeatable)",
    )
    _add_common(p, _BENCH_OUT_HELP)
    from .cli_executors import add_executor_options

    add_executor_options(p)
    p.set_defaults(func=_bench)

    r = subparsers.add_parser(
        "report",
        help="write RUNDIR/report.md and RUNDIR/figures/*.png from RUNDIR/results.jsonl",
        description="Markdown report (final training loss, test accuracy mean ± std over seeds, steps to reach a "
        "target training loss, the gamma0 selection grid) and paper-style figures (log10 training loss and test "
        "accuracy vs epochs, mean curve and min–max band over seeds) from a directory written by `inna bench`.",
    )
    r.add_argument("rundir", metavar="RUNDIR", help="a directory containing results.jsonl")
    r.add_argument(
        "--target-loss",
        type=_positive_float,
        help="training loss for the 'steps to reach' column "
        "(default: the task's own target, else the median of the optimizers' final losses)",
    )
    r.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures")
    r.add_argument("--title", help="title of the report")
    r.add_argument("--repair", action="store_true", help=_REPAIR_HELP.replace("OUT/", "RUNDIR/"))
    r.set_defaults(func=_report)

    s = subparsers.add_parser(
        "sweep",
        help="INNA (alpha, beta, decay power) sensitivity heatmap on one task, tuned like the baselines",
        description="Each (alpha, beta, q) is treated as its own optimizer: gamma0 selected from the INNA grid by "
        "training loss, at the same budget as the baselines; writes OUT/sweep.md, OUT/sweep.png (heatmaps of the "
        "final training loss, one panel per q) and the usual results.jsonl / report.md. Defaults: the 1-D CNN on "
        "mnist1d (an MLP on other data sets), 5 epochs, gamma0 selected after the same 5 epochs.",
    )
    s.add_argument(
        "--dataset",
        default="mnist1d",
        choices=list(vocab[3]) if vocab else None,
        help="data set (default: mnist1d)",
    )
    s.add_argument(
        "--alphas", type=_floats, default=[0.1, 0.5, 1.0], help="comma-separated alphas (default: 0.1,0.5,1)"
    )
    s.add_argument(
        "--betas", type=_floats, default=[0.01, 0.1, 0.5], help="comma-separated betas (default: 0.01,0.1,0.5)"
    )
    s.add_argument(
        "--powers",
        type=_floats,
        default=[0.5],
        help="comma-separated decay powers q of gamma0/(k+1)^q, 0 = constant (default: 0.5)",
    )
    s.add_argument(
        "--baselines",
        nargs="*",
        default=["sgd", "adam"],
        metavar="SPEC",
        help="optimizers tuned the same way for reference (default: sgd adam)",
    )
    s.add_argument(
        "--grid",
        type=_floats,
        help="comma-separated gamma0 values tried for every INNA configuration "
        "(default: INNA's grid 0.03..3; small beta needs gamma0 below about 2*beta)",
    )
    s.add_argument("--seeds", type=_positive_int, default=1, help="seeds per configuration (default: 1)")
    _add_common(s, _SWEEP_OUT_HELP)
    s.set_defaults(func=_sweep)


def _command() -> str:
    return (
        "inna " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv and sys.argv[0].endswith("inna")
        else " ".join(shlex.quote(a) for a in sys.argv)
    )


def _interrupted(command: str, out: Path | None) -> int:
    where = f" (--out {out})" if out is not None else ""
    print(f"inna {command}: interrupted; rerun the same command to resume{where}: finished runs and epochs are kept",
          file=sys.stderr)  # fmt: skip
    return 130


def _failed(command: str, err: BaseException) -> int:
    from .execution import WorkerError

    text = str(err) if isinstance(err, WorkerError) else " ".join(str(err).split())  # one line, but tracebacks
    print(f"inna {command}: error: {text}", file=sys.stderr)
    return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from .errors import BenchError
    from .execution import WorkerError

    return (BenchError, ValueError, OSError, WorkerError)


def _bench_suite(args: argparse.Namespace) -> tuple[Any, list[str] | None]:
    """The suite the options ask for (the registry's, with the overrides), and its data sets."""
    from .suites import SUITES, suite_with_overrides, suite_with_text

    base = SUITES[args.suite]
    datasets = args.dataset or base.default_datasets()
    suite = suite_with_overrides(
        base, datasets=datasets, model=args.model, width=args.width, epochs=args.epochs,
        tune_epochs=args.tune_epochs, batch_size=args.batch_size, train_subset=args.train_subset,
        test_subset=args.test_subset, seeds=args.seeds, optimizers=args.optimizers, grid_points=args.grid_points,
        max_extensions=args.grid_extensions,
    )  # fmt: skip
    if args.text:  # the LM task reads the user's text (--text FILE)
        suite = suite_with_text(suite, args.text)
    return suite, datasets


def _bench(args: argparse.Namespace) -> int:
    from .execution import Detached

    out: Path | None = None
    executor: Any = None
    try:
        from .cli_executors import bench_device, check_executor_args, make_executor, print_plan, shared_data_dir
        from .protocol import run_suite
        from .report import write_report

        check_executor_args(args)
        suite, datasets = _bench_suite(args)
        out = Path(args.out) if args.out else bench_out_default(args.suite, datasets)
        if args.cancel:
            from .executor_slurm import cancel_jobs

            cancel_jobs(out)
            return 0
        workers = args.workers or suite.workers or _default_workers()
        executor = make_executor(args, workers)
        if args.plan:
            return print_plan(args, suite, out, executor)
        device = bench_device(args)
        data_dir = shared_data_dir(args, print)
        t0 = time.perf_counter()
        run_suite(suite, out, data_dir=data_dir, device=device, workers=workers, fixed_lrs=dict(args.lr),
                  progress=not args.no_progress, repair=args.repair, executor=executor)  # fmt: skip
        elapsed = time.perf_counter() - t0
        report, summary = write_report(out, figures=not args.no_figures, command=_command())
    except Detached as gone:
        print(f"[inna bench] {gone}", file=sys.stderr if gone.interrupted else sys.stdout)
        return 130 if gone.interrupted else 0
    except KeyboardInterrupt:
        message = executor.interrupted_message() if executor is not None else None
        if message is None:
            return _interrupted("bench", out)
        print(f"[inna bench] {message}", file=sys.stderr)
        return 130
    except _user_errors() as err:
        return _failed("bench", err)
    print(summary)
    print(
        f"[inna bench] suite {suite.name} finished in {elapsed:.0f} s ({executor.describe()}); results "
        f"{out / 'results.jsonl'}, report {report}" + ("" if args.no_figures else f", figures {out / 'figures'}/")
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        from .records import repair_results
        from .report import write_report
        from .rundir import open_run_dir

        rundir = Path(args.rundir)
        if args.repair:
            if not (rundir / "results.jsonl").is_file():
                raise ValueError(f"{rundir / 'results.jsonl'} does not exist: nothing to repair")
            with open_run_dir(rundir):
                print(f"[inna report] repair: {repair_results(rundir / 'results.jsonl').summary()}")
        report, summary = write_report(rundir, target_loss=args.target_loss, figures=not args.no_figures,
                                       title=args.title)  # fmt: skip
    except KeyboardInterrupt:
        return _interrupted("report", None)
    except _user_errors() as err:
        return _failed("report", err)
    print(summary)
    print(f"[inna report] wrote {report}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    out: Path | None = None
    try:
        from .data import DATASETS
        from .report import write_report
        from .suites import Task
        from .sweep import run_sweep, write_sweep_report
        from .training import resolve_device

        if args.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {args.dataset!r}; allowed values: {', '.join(DATASETS)}")
        device = resolve_device(args.device)
        model = args.model or sweep_model_default(args.dataset)
        epochs = args.epochs or 5
        task = Task(f"{args.dataset}-{model}", args.dataset, model, epochs=epochs,
                    tune_epochs=args.tune_epochs or epochs, width=args.width or 1.0,
                    batch_size=args.batch_size or 32, train_subset=args.train_subset,
                    test_subset=args.test_subset)  # fmt: skip
        out = Path(args.out) if args.out else sweep_out_default(args.dataset, model)
        run_sweep(task, out, alphas=args.alphas, betas=args.betas, powers=args.powers, baselines=args.baselines,
                  grid=args.grid, seeds=args.seeds, grid_points=args.grid_points, data_dir=args.data_dir, device=device,
                  workers=args.workers or _default_workers(), progress=not args.no_progress, repair=args.repair,
                  max_extensions=args.grid_extensions)  # fmt: skip
        path = write_sweep_report(out, f"INNA sensitivity on {task.name}", command=_command())
        write_report(out, figures=not args.no_figures, command=_command())
    except KeyboardInterrupt:
        return _interrupted("sweep", out)
    except _user_errors() as err:
        return _failed("sweep", err)
    print(path.read_text(encoding="utf-8"))
    print(f"[inna sweep] wrote {path} and {out / 'sweep.png'}")
    return 0
