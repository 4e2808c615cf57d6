"""What it costs to hand a group of tensors to a compiled loop, three ways, against one fused SGD step.

The C loop's design (docs/speed.md) was chosen on these numbers. On the same shapes (400 small tensors by default)
it times, interleaved, the minimum over the rounds of:

- ``fused SGD step``: ``torch.optim.SGD(momentum=0.9, fused=True).step()``, the anchor;
- ``C loop (ctypes)``: INNA's C loop on the group (``inna.torch.functional._c_loop_inna``: layout checks, data
  pointers, one ``ctypes`` call, the update itself);
- ``custom_op call, empty body``: a ``torch.library.custom_op`` with ``mutates_args`` over three ``list[Tensor]``
  arguments, whose body does nothing: the dispatch cost alone;
- ``C++ extension, trivial loop`` (``--extension``): a ``torch.utils.cpp_extension.load_inline`` function taking
  two tensor lists and doing ``p -= lr * g``; its build time is printed too.

    python benchmarks/dispatch_options.py --threads 1 --extension
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch
from step_time import many_small_shapes, resnet18_shapes
from torch import Tensor

from inna.torch import _cbuild
from inna.torch.functional import _c_loop_inna

_EXTENSION = """
#include <torch/extension.h>
void step(std::vector<at::Tensor> p, std::vector<at::Tensor> g, double lr) {
  for (size_t i = 0; i < p.size(); i++) {
    float* a = p[i].data_ptr<float>();
    const float* b = g[i].data_ptr<float>();
    for (int64_t j = 0; j < p[i].numel(); j++) a[j] -= (float)lr * b[j];
  }
}
"""


def contenders(shapes: list[tuple[int, ...]], extension: bool) -> dict[str, Callable[[], object]]:
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    sgd = torch.optim.SGD(params, lr=1e-4, momentum=0.9, fused=True)
    sgd.step()
    ps, gs, phs = [p.detach().clone() for p in params], [p.grad for p in params], [torch.zeros_like(p) for p in params]
    lib = _cbuild.library(torch.float32)
    hyper = dict(alpha=0.5, beta=0.1, l2=0.0, maximize=False)

    @torch.library.custom_op("inna_bench::empty_step", mutates_args=("params", "phases"))
    def empty_step(params: list[Tensor], grads: list[Tensor], phases: list[Tensor], lr: float) -> None:
        pass

    table: dict[str, Callable[[], object]] = {
        "fused SGD step": sgd.step,
        "C loop (ctypes)": lambda: _c_loop_inna(lib, [ps, gs, phs], 1e-4, hyper, None, None),
        "custom_op call, empty body": lambda: empty_step(ps, gs, phs, 1e-4),
    }
    if extension:
        from torch.utils.cpp_extension import load_inline

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as build:
            module = load_inline(
                "inna_bench_ext", cpp_sources=[_EXTENSION], functions=["step"], build_directory=build,
                extra_cflags=["-O3"],
            )  # fmt: skip
        print(f"C++ extension build (load_inline): {time.perf_counter() - t0:.1f} s")
        table["C++ extension, trivial loop"] = lambda: module.step(ps, gs, 1e-4)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", choices=["many-small", "resnet18"], default="many-small")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--extension", action="store_true", help="also build and time a C++ extension")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = many_small_shapes() if args.shapes == "many-small" else resnet18_shapes()
    table = contenders(shapes, args.extension)
    samples: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(args.rounds):
        for name, fn in table.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.shapes}: {len(shapes)} tensors")
    base = min(samples["fused SGD step"])
    for name, s in samples.items():
        print(f"| {name:<30} | min {1e6 * min(s):>8.0f} us | {min(s) / base:>5.2f} x fused SGD step |")


if __name__ == "__main__":
    main()
