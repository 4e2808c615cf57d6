"""``inna figures --out DIR``: render every figure of :mod:`inna.dynamics` as PNG."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register", "run_figures"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``figures`` subcommand to the ``inna`` command."""
    from .plots import FIGURES

    p = subparsers.add_parser(
        "figures",
        help="render the figures of inna.dynamics (DIN, energy, stability, toy, D-criticality) as PNG",
        description="Render every figure of inna.dynamics as PNG files in --out.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=sorted(FIGURES),
        default=None,
        metavar="NAME",
        help=f"render only these figures (choices: {', '.join(FIGURES)})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_figures)


def run_figures(args: argparse.Namespace) -> int:
    """Render the selected figures; return 0, or 2 when a dependency is missing."""
    try:
        import matplotlib  # noqa: F401
        from tqdm import tqdm
    except ModuleNotFoundError as err:
        print(
            f"inna figures needs the 'dynamics' extra ({err.name} is missing): pip install 'inna[dynamics]'",
            file=sys.stderr,
        )
        return 2
    from .plots import FIGURES

    names = list(FIGURES) if args.only is None else [n for n in FIGURES if n in args.only]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bar = tqdm(names, desc="figures", unit="fig", disable=args.no_progress)
    for name in bar:
        bar.set_postfix_str(name)
        path = FIGURES[name](out)
        tqdm.write(f"wrote {path}")
    print(f"{len(names)} figure(s) in {time.perf_counter() - start:.1f} s -> {out}")
    return 0
