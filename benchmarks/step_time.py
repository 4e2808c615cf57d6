"""Median ``optimizer.step()`` time of each INNA path against torch's own optimizers, with a roofline.

Every contender steps the same parameter shapes with preset gradients; the rounds are interleaved (each round
times every contender once) so that machine noise hits all of them alike, and the table reports each median as a
ratio to fused ``torch.optim.SGD(momentum=0.9)`` measured in the same run. The roofline is the machine's
achievable bandwidth, measured in the same run as a large out-of-place add (``torch.add(a, b, out=c)``: 12 bytes
per float32 element) and a copy on 3 x 128 MiB, and again for each shape as the same add on tensors of the shape's
total size (the same working set, so the same mix of cache and memory); each optimizer's *effective* bandwidth
is the bytes its update must move (INNA and SGD with momentum read θ, g, state and write θ, state: 20 bytes per
float32 element; Adam, AdamW and INNAprop 28) over its median time, and its roofline fraction that over the
same-size add's bandwidth (the large add's fraction is in the JSON). A fraction above 1 is possible: an in-place
update writes lines it has just read, an out-of-place add pays for fetching the lines it overwrites. Timings on shared
machines vary by tens of percent between runs: compare ratios, not milliseconds.

    python benchmarks/step_time.py                                 # every shape, 30 rounds, CPU
    python benchmarks/step_time.py --shapes many-small --options   # also the fused-path design options
    python benchmarks/step_time.py --device cuda --json gpu.json   # CUDA events, CUDA-graph replay too

``--device cuda`` times with CUDA events (one synchronisation per round, after the round) and adds INNA's fused
step captured in a CUDA graph (lr as a device tensor, replayed). ``--first-step`` also reports the fused path's
first step in a fresh kernel cache (cold) and after clearing only the in-process cache (warm disk cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from inna import INNA, INNAprop
from inna.torch import _cbuild, _compiled
from inna.torch.functional import _c_loop_inna, _single_tensor_inna

Step = Callable[[], object]


# ------------------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------------------


def resnet18_shapes(num_classes: int = 1000) -> list[tuple[int, ...]]:
    """The 62 parameter shapes of torchvision's ResNet-18 (11,689,512 values), without torchvision."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            cin = in_ch if block == 0 else out_ch
            shapes += [(out_ch, cin, 3, 3), (out_ch,), (out_ch,), (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and (s != 1 or cin != out_ch):
                shapes += [(out_ch, cin, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    shapes += [(num_classes, 512), (num_classes,)]
    return shapes


def many_small_shapes(n: int = 400, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` small tensors (biases, norms, small matrices: 16 to 4096 values), the overhead-bound case."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(4, 13, (n,), generator=gen)
    return [((2 ** int(s)) // 16, 16) if s > 6 else (2 ** int(s),) for s in sizes]


def small_gpt_shapes(
    vocab: int = 8192, ctx: int = 256, width: int = 256, layers: int = 4, mlp: int = 4
) -> list[tuple[int, ...]]:
    """A small GPT-2-style model: token and position embeddings, per layer two LayerNorms (weight, bias), fused
    QKV attention and its output projection, a 4x MLP (all with biases), a final LayerNorm; the head is tied to
    the token embedding. The defaults give 52 tensors, 5.4 M values."""
    shapes: list[tuple[int, ...]] = [(vocab, width), (ctx, width)]
    for _ in range(layers):
        shapes += [(width,), (width,), (3 * width, width), (3 * width,), (width, width), (width,)]
        shapes += [(width,), (width,), (mlp * width, width), (mlp * width,), (width, mlp * width), (width,)]
    return [*shapes, (width,), (width,)]


def huge_shapes(numel: int = 1 << 24) -> list[tuple[int, ...]]:
    """One large tensor (16 M values by default): pure bandwidth."""
    return [(numel,)]


# ------------------------------------------------------------------------------------------------------------
# Contenders
# ------------------------------------------------------------------------------------------------------------


class AuthorsStyleINNA(torch.optim.Optimizer):
    """A per-parameter Python loop in the style of the authors' PyTorch code (for comparison only).

    It keeps psi, recomputes the phase (alpha - 1/beta) theta + psi / beta with fresh temporaries for
    every tensor and applies the two updates with separate operations, as the paper's equations read.
    """

    def __init__(self, params, lr: float = 0.1, alpha: float = 0.5, beta: float = 0.1) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, beta=beta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha, beta = group["lr"], group["alpha"], group["beta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "psi" not in state:
                    state["psi"] = (1 - alpha * beta) * p.data.clone()
                psi = state["psi"]
                phase = (alpha - 1.0 / beta) * p.data + (1.0 / beta) * psi
                geom = beta * p.grad.data
                psi.add_(-lr * phase)
                p.data.add_(-lr * (phase + geom))


STATIC = dict(alpha=0.5, beta=0.1, l2=0.0, maximize=False)
LR = 1e-4


def _lists(params: list[torch.nn.Parameter]) -> tuple[list, list, list]:
    return [p.detach() for p in params], [p.grad for p in params], [torch.zeros_like(p) for p in params]


def option_group_compiled(params, skip_guards: bool = False) -> Step:
    """Design option: the reference compiled by torch.compile over the whole group (one graph, dynamo guards on
    every tensor); with ``skip_guards``, called under ``set_stance(skip_guard_eval_unsafe=True)``."""
    ps, gs, phs = _lists(params)

    def step() -> None:
        _compiled.run(_single_tensor_inna, (ps, gs, phs), (LR,), STATIC, None, None, None)

    step()  # compile now (timed as the first step by the caller's first call too: that one is free)
    if not skip_guards:
        return step

    def unguarded() -> None:
        with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
            step()

    return unguarded


def option_per_tensor_dynamic(params) -> Step:
    """Design option: one dynamic-shape compiled kernel (1-D views), called once per tensor."""
    ps, gs, phs = _lists(params)
    flat = [[t.view(-1) for t in ts] for ts in (ps, gs, phs)]

    def one(p, g, phi, lr):
        _single_tensor_inna([p], [g], [phi], lr, **STATIC)

    kernel = torch.compile(one, dynamic=True, fullgraph=True)
    lr = torch.tensor(LR)

    def step() -> None:
        for p, g, phi in zip(*flat):
            kernel(p, g, phi, lr)

    return step


def option_flat_buffer(params) -> Step:
    """Design option (the bound an opt-in flat buffer could reach): params, grads and phases each one contiguous
    buffer, one C-loop call on three flat tensors of the same total size."""
    n = sum(p.numel() for p in params)
    device = params[0].device
    ps, gs, phs = ([torch.randn(n, device=device)], [torch.randn(n, device=device)], [torch.zeros(n, device=device)])

    lib = _cbuild.library(torch.float32)

    def step() -> None:
        _c_loop_inna(lib, [ps, gs, phs], LR, STATIC, None, None)

    return step


def contenders(device: str, options: bool) -> dict[str, Callable[[list[torch.nn.Parameter]], Step]]:
    def opt(make):
        return lambda ps: make(ps).step

    table: dict[str, Callable[[list[torch.nn.Parameter]], Step]] = {
        "SGD(momentum=0.9) fused": opt(lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, fused=True)),
        "SGD(momentum=0.9) foreach": opt(lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, foreach=True)),
        "Adam fused": opt(lambda ps: torch.optim.Adam(ps, lr=LR, fused=True)),
        "INNA fused": opt(lambda ps: INNA(ps, lr=LR, fused=True)),
        "INNA default": opt(lambda ps: INNA(ps, lr=LR)),
        "INNA foreach": opt(lambda ps: INNA(ps, lr=LR, foreach=True)),
        "INNA single-tensor": opt(lambda ps: INNA(ps, lr=LR, foreach=False)),
        "authors-style loop": opt(lambda ps: AuthorsStyleINNA(ps, lr=LR)),
        # INNAprop moves AdamW's bytes (θ, g, v, φ read; θ, v, φ written): its anchor is fused AdamW
        "AdamW fused": opt(lambda ps: torch.optim.AdamW(ps, lr=LR, fused=True)),
        "INNAprop fused": opt(lambda ps: INNAprop(ps, lr=LR, fused=True)),
        "INNAprop default": opt(lambda ps: INNAprop(ps, lr=LR)),
    }
    if device == "cuda":
        table["INNA fused, CUDA graph"] = cuda_graph_step
    if options:
        table["option: group torch.compile"] = option_group_compiled
        table["option: + skip_guard_eval_unsafe"] = lambda ps: option_group_compiled(ps, skip_guards=True)
        table["option: per-tensor dynamic kernel"] = option_per_tensor_dynamic
        table["option: flat buffer (bound)"] = option_flat_buffer
    return table


def cuda_graph_step(params: list[torch.nn.Parameter]) -> Step:
    """INNA's fused step captured once in a CUDA graph (lr a device tensor: nothing syncs), then replayed."""
    opt = INNA(params, lr=torch.tensor(LR, device=params[0].device), fused=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # build the kernels and the state outside the capture
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    return graph.replay


def update_bytes(name: str, numel: int, element_size: int) -> int:
    """Bytes an optimizer's update must move at least: reads and writes of θ, g and its state."""
    accesses = 7 if name.startswith(("Adam", "INNAprop")) else 5
    return accesses * numel * element_size


# ------------------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------------------


class Timer:
    """Wall time of ``fn`` repeated ``k`` times: perf_counter on CPU, CUDA events on a GPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def __call__(self, fn: Step, k: int) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(k):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / k
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        return (time.perf_counter() - t0) / k


def roofline(device: str, rounds: int, numel: int = 1 << 25) -> dict[str, float]:
    """Achievable bandwidth (GB/s): out-of-place add c = a + b (3 x 4 bytes per element) and copy (2 x 4)."""
    a, b, c = (torch.randn(numel, device=device) for _ in range(3))
    timer = Timer(device)
    add = lambda: torch.add(a, b, out=c)  # noqa: E731
    copy = lambda: c.copy_(a)  # noqa: E731
    add(), copy()
    t_add, t_copy = [], []
    for _ in range(rounds):
        t_add.append(timer(add, 1))
        t_copy.append(timer(copy, 1))
    return {
        "add_GBps": 12 * numel / statistics.median(t_add) / 1e9,
        "copy_GBps": 8 * numel / statistics.median(t_copy) / 1e9,
        "numel": numel,
    }


def measure(
    shapes: list[tuple[int, ...]], device: str, rounds: int, warmup: int, steps_per_round: int, options: bool
) -> dict[str, dict]:
    steps: dict[str, Step] = {}
    first_step: dict[str, float] = {}
    timer = Timer(device)
    for name, make in contenders(device, options).items():
        params = [torch.nn.Parameter(torch.randn(s, device=device)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        t0 = time.perf_counter()
        step = make(params)
        step()  # creates the state (and builds the kernel, for the fused paths)
        if device == "cuda":
            torch.cuda.synchronize()
        first_step[name] = time.perf_counter() - t0
        for _ in range(warmup):
            step()
        steps[name] = step
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name].append(timer(step, steps_per_round))
    base = statistics.median(samples["SGD(momentum=0.9) fused"])
    numel = sum(torch.Size(s).numel() for s in shapes)
    return {
        name: {
            "median_ms": 1e3 * statistics.median(s),
            "ratio_to_fused_sgd": statistics.median(s) / base,
            "effective_GBps": update_bytes(name, numel, 4) / statistics.median(s) / 1e9,
            "first_step_s": first_step[name],
        }
        for name, s in samples.items()
    }


def first_step_times(shapes: list[tuple[int, ...]], device: str) -> dict[str, float]:
    """INNA(fused=True)'s first step with an empty kernel cache (cold), then with only the disk cache (warm)."""
    out = {}
    old = os.environ.get("INNA_KERNEL_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INNA_KERNEL_CACHE"] = tmp
        try:
            for label in ("cold", "warm"):
                _cbuild.forget()
                _compiled.forget()
                params = [torch.nn.Parameter(torch.randn(s, device=device)) for s in shapes]
                for p in params:
                    p.grad = torch.randn_like(p)
                opt = INNA(params, lr=LR, fused=True)
                t0 = time.perf_counter()
                opt.step()
                out[f"{label}_s"] = time.perf_counter() - t0
        finally:
            if old is None:
                del os.environ["INNA_KERNEL_CACHE"]
            else:
                os.environ["INNA_KERNEL_CACHE"] = old
    return out


SHAPES = {
    "resnet18": resnet18_shapes,
    "many-small": many_small_shapes,
    "small-gpt": small_gpt_shapes,
    "huge": huge_shapes,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=[*SHAPES, "all"], default=["all"])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per contender (default 5)")
    parser.add_argument("--steps-per-round", type=int, default=1, help="steps timed together in a round")
    parser.add_argument("--options", action="store_true", help="also time the fused-path design options")
    parser.add_argument("--first-step", action="store_true", help="also time the fused first step, cold and warm")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")

    chosen = list(SHAPES) if "all" in args.shapes else args.shapes
    where = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, {args.device} ({where}), {torch.get_num_threads()} threads; "
        f"{args.rounds} interleaved rounds, median per contender"
    )
    roof = roofline(args.device, max(10, args.rounds // 2))
    print(f"roofline: out-of-place add {roof['add_GBps']:.1f} GB/s, copy {roof['copy_GBps']:.1f} GB/s")
    results: dict[str, dict] = {}
    for key in chosen:
        shapes = SHAPES[key]()
        n = sum(torch.Size(s).numel() for s in shapes)
        rows = measure(shapes, args.device, args.rounds, args.warmup, args.steps_per_round, args.options)
        same = roofline(args.device, max(10, args.rounds // 2), numel=max(n, 1 << 12))
        for r in rows.values():
            r["roofline_fraction"] = r["effective_GBps"] / same["add_GBps"]
            r["large_add_fraction"] = r["effective_GBps"] / roof["add_GBps"]
        results[key] = {"tensors": len(shapes), "values": n, "same_size_add": same, "contenders": rows}
        print(f"\n{key}: {len(shapes)} tensors, {n:,} values; same-size add {same['add_GBps']:.1f} GB/s")
        print(f"| {'optimizer':<34} | {'median step (ms)':>16} | {'× fused SGD':>11} | {'GB/s':>7} | {'roofline':>8} |")
        print(f"|{'-' * 36}|{'-' * 18}|{'-' * 13}|{'-' * 9}|{'-' * 10}|")
        for name, r in rows.items():
            print(
                f"| {name:<34} | {r['median_ms']:>16.3f} | {r['ratio_to_fused_sgd']:>11.2f} | "
                f"{r['effective_GBps']:>7.1f} | {r['roofline_fraction']:>8.2f} |"
            )
        print(f"(first INNA fused step in this process: {rows['INNA fused']['first_step_s']:.2f} s)")
        if args.first_step:
            results[key]["fused_first_step"] = fs = first_step_times(shapes, args.device)
            print(
                f"(first INNA fused step, empty kernel cache: {fs['cold_s']:.2f} s; "
                f"warm disk cache: {fs['warm_s']:.3f} s)"
            )
    if args.json:
        with open(args.json, "w") as f:
            meta = {"torch": torch.__version__, "device": args.device, "where": where}
            meta |= {"threads": torch.get_num_threads(), "rounds": args.rounds}
            json.dump({**meta, "roofline": roof, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
