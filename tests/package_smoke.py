"""One step of each optimizer from an installed wheel: run by ``make package`` in a fresh venv, outside the tree.

It checks what a user who ran ``pip install inna[torch]`` gets: ``inna`` imported from site-packages (not from
``src/``), the version of the package metadata, and one default CPU step of ``inna.INNA`` and ``inna.INNAprop``
that called the C loop (built here with the system C compiler, into the empty kernel cache ``make package`` gives
it) and agrees with the readable reference. Not a pytest module: it runs as a script, and exits non-zero with a
message on the first failure.
"""

from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
from pathlib import Path


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"package smoke test: {message}")


def one_step(optimizer_class, **options):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = optimizer_class(model.parameters(), **options)
    model(torch.randn(32, 8)).pow(2).mean().backward()
    opt.step()
    return [p.detach().clone() for p in model.parameters()]


def _counting(function, name: str, calls: dict[str, int]):
    def counted(*args):
        calls[name] += 1
        return function(*args)

    return counted


def main() -> None:
    import inna

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(inna.__file__).resolve()
    check(site in where.parents, f"inna was imported from {where}, not from the venv's site-packages {site}")
    installed = importlib.metadata.version("inna")
    check(installed == inna.__version__, f"metadata version {installed} != inna.__version__ {inna.__version__}")

    import torch

    from inna.torch import _cbuild

    check(_cbuild.stats["c_builds"] == 0, "the kernel cache given by make package was not empty")
    lib = _cbuild.library(torch.float32)
    check(lib is not None, f"no C loop for float32: {_cbuild.unavailable_reason(torch.float32)}")
    check(_cbuild.stats["c_builds"] == 1, "the C loop was not compiled from the installed package's source")
    calls: dict[str, int] = {}
    for name in ("inna_update", "innaprop_update"):
        calls[name] = 0
        setattr(lib, name, _counting(getattr(lib, name), name, calls))

    for cls, options, function in (
        (inna.INNA, {"lr": 0.1}, "inna_update"),
        (inna.INNAprop, {"lr": 1e-3}, "innaprop_update"),
    ):
        default = one_step(cls, **options)
        check(calls[function] == 1, f"{cls.__name__}'s default CPU step did not run the C loop ({function})")
        reference = one_step(cls, foreach=False, **options)
        for a, b in zip(default, reference):
            check(torch.allclose(a, b, rtol=1e-6, atol=1e-7), f"{cls.__name__}: the C loop and the reference differ")
    print(f"package smoke test: inna {installed} from {where.parent}: INNA and INNAprop stepped through the C loop")


if __name__ == "__main__":
    main()
