"""The ``inna`` command. Each subcommand lives with the package it belongs to.

A subcommand module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (called with the parsed namespace, returning an exit code). Modules are imported
lazily so that ``import inna`` never pulls the optional extras (scipy, matplotlib, ...).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that provide subcommands, in the order ``inna --help`` lists them.
SUBCOMMAND_MODULES = ("inna.bench.cli", "inna.dynamics.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inna",
        description="INNA, the Inertial Newton Algorithm for deep learning: benchmarks, figures, reports.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"inna {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and (err.name == name or name.startswith(err.name + ".")):
                continue  # that part of the package is not present
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
