"""What the C loop of inna.torch._fused refuses or guards: lists it cannot address safely, writes autograd must
see, step counters of another kind; and its multi-threaded split."""

from __future__ import annotations

import pytest
import torch

from inna import INNA, INNAprop
from inna.torch import _cbuild
from inna.torch import functional as F
from inna.torch import innaprop as P

needs_c = pytest.mark.skipif(
    _cbuild.library(torch.float32) is None, reason="no C compiler: the CPU fused path is torch.compile here"
)
pytestmark = needs_c


def functional_step(params, grads, phases, **kw):
    F.inna(params, grads, phases, lr=0.1, alpha=0.5, beta=0.1, **kw)


@pytest.mark.parametrize("impl", [dict(), dict(fused=True)], ids=["default", "fused"])
def test_lists_of_other_sizes_get_the_references_error_not_a_write_past_the_end(impl):
    p, g, phase = torch.randn(10), torch.randn(20), torch.zeros(10)
    with pytest.raises(RuntimeError):
        functional_step([torch.randn(10)], [g.clone()], [phase.clone()], foreach=False)  # what eager says
    guard = torch.full((10,), 7.0)  # the memory just past a 10-element phase stays untouched
    buf = torch.cat([phase, guard])
    with pytest.raises(RuntimeError):
        functional_step([p], [g], [buf[:10]], **impl)
    assert torch.equal(buf[10:], guard)


def test_a_parameter_resized_after_its_state_was_made_is_refused():
    q = torch.nn.Parameter(torch.randn(10))
    opt = INNA([q], lr=0.1)
    q.grad = torch.randn(10)
    opt.step()
    q.data = torch.ones(20)
    q.grad = torch.randn(20)
    with pytest.raises(RuntimeError):
        opt.step()  # the phase has 10 elements: an error, as with torch's eager optimizers


def test_lists_of_another_dtype_take_the_reference_semantics():
    p32, g32 = torch.randn(6), torch.randn(6)
    runs = []
    for impl in (dict(), dict(foreach=False)):
        p, phase = p32.clone(), torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        functional_step([p], [g32.clone()], [phase], **impl)
        runs.append((p, phase))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert torch.isfinite(runs[0][0]).all()


def test_writes_bump_autograd_version_counters():
    w = torch.nn.Parameter(torch.randn(50))
    opt = INNA([w], lr=0.1)
    y = (w * w).sum()  # saves w for backward
    w.grad = torch.randn(50)
    version = w._version
    opt.step()
    assert w._version > version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_a_leaf_that_requires_grad_under_grad_mode_errors_as_eagerly():
    p = torch.randn(8, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        functional_step([p], [torch.randn(8)], [torch.zeros(8)])


def test_innaprop_skipped_step_never_moves_a_counter_back():
    # GradScaler's found_inf sums the infs of every device: 2 must skip the step, not subtract one
    param, grad = torch.randn(4), torch.randn(4)
    v, phase = torch.zeros(4), torch.zeros(4)
    steps = [torch.tensor(3.0, dtype=torch.float64)]  # a loaded counter of another dtype: torch's route
    hyper = dict(alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.0, maximize=False)
    lists = [[param], [grad], [v], [phase], steps]
    P._c_loop_innaprop(_cbuild.library(torch.float32), lists, 0.01, hyper, None, torch.tensor(2.0))
    assert steps[0].item() == 3.0 and torch.equal(v, torch.zeros(4))


def test_the_multithreaded_split_is_bitwise_the_reference():
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        shapes = [(300, 257), (1,), (70_001,)]  # > 65,536 elements in all: the loop splits over threads
        runs = []
        for impl in (dict(fused=True), dict(foreach=False)):
            gen = torch.Generator().manual_seed(0)
            params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
            opt = INNAprop(params, lr=0.01, weight_decay=0.1, **impl)
            inna_opt = INNA([torch.nn.Parameter(p.detach().clone()) for p in params], lr=0.05, **impl)
            for k in range(4):
                g_gen = torch.Generator().manual_seed(10 + k)
                for p, q in zip(params, inna_opt.param_groups[0]["params"]):
                    p.grad = torch.randn(p.shape, generator=g_gen)
                    q.grad = p.grad.clone()
                opt.step()
                inna_opt.step()
            runs.append(([p.detach() for p in params], [q.detach() for q in inna_opt.param_groups[0]["params"]]))
        (prop_c, inna_c), (prop_ref, inna_ref) = runs
        assert all(torch.equal(a, b) for a, b in zip(inna_c, inna_ref))  # INNA: bitwise
        for a, b in zip(prop_c, prop_ref):  # INNAprop: to about one ulp (sqrt)
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    finally:
        torch.set_num_threads(threads)
