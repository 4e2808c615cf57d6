"""INNA's fused path: bitwise equal to the reference, one build per dtype for every hyperparameter set,
GradScaler's fused route, and a warning when ``fused=True`` cannot be honoured.

On CPU the fused path is the C loop of ``kernels/inna_kernels.c``, which performs the reference's operations in
their order and rounding; the claim is *bitwise* equality with the eager reference (``torch.equal``), in every
dtype, on every CPU (``make test`` runs these tests under ``ATEN_CPU_CAPABILITY=default`` too). The CUDA tests
(graph capture, no host sync) skip on CPU.
"""

from __future__ import annotations

import warnings

import amp_training
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inna import INNA
from inna.torch import _amp, _cbuild, _compiled, _warn
from inna.torch import functional as F

STATIC = dict(alpha=0.5, beta=0.1, l2=0.0, maximize=False)
needs_c = pytest.mark.skipif(
    _cbuild.library(torch.float32) is None, reason="no C compiler: the CPU fused path is torch.compile here"
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def twin_runs(shapes, dtype, steps, hparams, *, noncontig=(), frozen=(), fused=None):
    """INNA(fused) and INNA(foreach=False) (the reference) on the same gradients; returns both runs.

    Parameters in ``noncontig`` are transposed leaves (dense, other strides: the C loop takes them when the
    gradient and phase share the layout) or, for odd positions, strided slices (not dense: the reference)."""
    fused = dict(fused=True) if fused is None else fused
    gen = torch.Generator().manual_seed(0)
    base = []
    for j, shape in enumerate(shapes):
        if j in noncontig and len(shape) >= 2 and j % 2 == 0:
            t = torch.randn(tuple(reversed(shape)), generator=gen, dtype=dtype).transpose(0, len(shape) - 1)
        elif j in noncontig and len(shape) >= 1:
            t = torch.randn((*shape[:-1], 2 * shape[-1]), generator=gen, dtype=dtype)[..., ::2]
        else:
            t = torch.randn(shape, generator=gen, dtype=dtype)
        base.append(t)
    runs = []
    for impl in (fused, dict(foreach=False)):
        params = [torch.empty_strided(t.shape, t.stride(), dtype=dtype) for t in base]
        for p, t in zip(params, base):
            p.copy_(t).requires_grad_()
        opt = INNA(params, **hparams, **impl)
        lr0 = hparams.get("lr", 0.1)
        for k in range(steps):
            opt.param_groups[0]["lr"] = lr0 / (k + 1) ** 0.5  # a schedule: new scalars every step
            g_gen = torch.Generator().manual_seed(k)
            for j, p in enumerate(params):
                g = torch.randn(p.shape, generator=g_gen, dtype=dtype)
                if j % 2 == 0:
                    g = torch.empty_like(p).copy_(g)  # the parameter's layout, as autograd makes it
                p.grad = None if (j in frozen and k < steps // 2) else g  # frozen, then unfrozen
            opt.step()
        runs.append((params, opt))
    return runs


def assert_bitwise(runs):
    (pa, oa), (pb, ob) = runs
    for a, b in zip(pa, pb):
        assert torch.equal(a, b), (a - b).abs().max()
        if a in oa.state:
            assert torch.equal(oa.state[a]["phase"], ob.state[b]["phase"])
        else:
            assert b not in ob.state


shape_st = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)
hparam_st = st.fixed_dictionaries(
    dict(
        lr=st.floats(1e-3, 0.3),
        alpha=st.floats(0.0, 2.0),
        beta=st.floats(0.01, 2.0),
        weight_decay=st.sampled_from([0.0, 0.01]),
        decoupled_weight_decay=st.booleans(),
        maximize=st.booleans(),
        initial_speed=st.sampled_from([None, 0.0, 1.0]),
    )
)


@needs_c
@settings(max_examples=25)
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=5),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64]),
    hparams=hparam_st,
    steps=st.integers(1, 15),
)
def test_c_loop_is_bitwise_the_reference(shapes, dtype, hparams, steps):
    assert_bitwise(twin_runs(shapes, dtype, steps, hparams))


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.filterwarnings("ignore:INNA.fused=True.. some tensors are not one dense block")
def test_c_loop_with_non_contiguous_frozen_and_zero_dim_tensors(dtype):
    shapes = [(), (4, 3), (2, 5, 3), (7,), (3, 1, 2)]
    hp = dict(lr=0.05, alpha=0.7, beta=0.2, weight_decay=0.01, initial_speed=1.0)
    assert_bitwise(twin_runs(shapes, dtype, 20, hp, noncontig={1, 2}, frozen={0, 3}))


@needs_c
def test_default_is_bitwise_the_reference_across_many_steps():
    hp = dict(lr=0.1, alpha=0.5, beta=0.1, maximize=True)
    assert_bitwise(twin_runs([(64, 3, 3), (64,), (10, 64)], torch.float32, 60, hp, fused=dict()))


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """An empty kernel cache and no library loaded in the process: what a first process sees."""
    monkeypatch.setenv("INNA_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(_cbuild, "stats", _cbuild.stats.__class__())
    _cbuild.forget()
    yield tmp_path
    _cbuild.forget()


@needs_c
def test_one_build_serves_every_lr_shape_count_and_hyperparameter_set(fresh_build):
    for n, (alpha, beta, wd) in zip((3, 200, 7), ((0.3, 0.2, 0.0), (0.5, 0.1, 0.01), (1.5, 2.0, 0.1))):
        params = [torch.randn(k % 7 + 1, 3, requires_grad=True) for k in range(n)]
        opt = INNA(params, lr=0.1, alpha=alpha, beta=beta, weight_decay=wd, maximize=n == 7, fused=True)
        for k in range(5):
            opt.param_groups[0]["lr"] = 0.1 / (k + 1)
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
    assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 1
    # a new process finds it on disk: it loads, it does not build
    _cbuild.forget()
    opt.step()
    assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 2
    assert len(list(fresh_build.glob("*.so"))) == 1 and not list(fresh_build.glob("*.c"))


@needs_c
def test_a_hundred_hyperparameter_sets_in_one_process_are_all_bitwise_the_reference(fresh_build):
    """A sweep in one process (Optuna, a grid): every (alpha, beta, weight decay) takes the C loop, with the
    reference's numerics, and the process builds one library."""
    gen = torch.Generator().manual_seed(0)
    settings_ = torch.rand(100, 3, generator=gen, dtype=torch.float64).tolist()
    base = [torch.randn(s, generator=gen) for s in [(5, 3), (7,), ()]]
    grads = [[torch.randn(t.shape, generator=gen) for t in base] for _ in range(4)]
    bitwise = []
    for a, b, w in settings_:
        hp = dict(lr=0.05, alpha=2 * a, beta=0.05 + 2 * b, weight_decay=0.1 * w, decoupled_weight_decay=w > 0.5)
        runs = []
        for impl in (dict(fused=True), dict(foreach=False)):
            params = [t.clone().requires_grad_() for t in base]
            opt = INNA(params, **hp, **impl)
            for gs in grads:
                for p, g in zip(params, gs):
                    p.grad = g.clone()
                opt.step()
            runs.append([*params, *(opt.state[p]["phase"] for p in params)])
        bitwise.append(all(torch.equal(x, y) for x, y in zip(*runs)))
    assert bitwise == [True] * 100
    assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 1  # the C loop ran, built once


def test_without_a_c_compiler_fused_true_warns_once_and_runs_the_compiled_reference(monkeypatch, tmp_path):
    monkeypatch.setattr(_warn, "_WARNED", set())  # once per process: this test's process starts here
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("INNA_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(_cbuild, "_LIBRARIES", {})
    monkeypatch.setattr(_cbuild, "_REASONS", {})
    monkeypatch.setattr(_cbuild, "_compiler_state", {})
    ran = []
    monkeypatch.setattr(_compiled, "run", lambda reference, lists, *a: ran.append((reference, len(lists[0]))))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = INNA([p], fused=True)
    with pytest.warns(
        UserWarning, match=r"INNA\(fused=True\): the C loop cannot run here \(no working C compiler"
    ) as w:
        opt.step()
        opt.step()
    assert len(w) == 1 and "torch.compile runs instead" in str(w[0].message)
    assert w[0].filename == __file__  # pointed at the user's step()
    assert ran == [(F._single_tensor_inna, 1)] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        INNA([p]).step()  # the default says nothing: foreach, as documented
        monkeypatch.setenv("INNA_CPU_KERNEL", "0")
        INNA([p], fused=True).step()  # asked for: nothing to say


@needs_c
def test_fused_true_warns_once_when_some_tensors_take_the_reference(monkeypatch):
    monkeypatch.setattr(_warn, "_WARNED", set())
    p = torch.randn(4, 6)[:, ::2].detach().requires_grad_()  # a strided slice: not one dense block
    q = torch.randn(5, requires_grad=True)
    opt = INNA([p, q], lr=0.1, fused=True)
    with pytest.warns(UserWarning, match="not one dense block") as w:
        for _ in range(2):
            p.grad, q.grad = torch.randn(4, 3), torch.randn(5)
            opt.step()
    assert len(w) == 1 and "ran the eager reference" in str(w[0].message)


# ---------------------------------------------------------------------------------------------------------------
# GradScaler's fused route
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("no_grad_scale", [False, True])
def test_fused_does_not_step_if_foundinf(dtype, no_grad_scale):
    # PyTorch's own test for fused optimizers (test/test_optim.py), for INNA
    params = [torch.ones((1,), dtype=dtype, requires_grad=True) for _ in range(5)]
    params_c = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = INNA(params, lr=0.1, fused=True)
    opt.step()  # the first step creates the state (see the next test for a first step with found_inf)
    params_c = [p.detach().clone() for p in params]
    phases_c = [opt.state[p]["phase"].clone() for p in params]
    opt.grad_scale = None if no_grad_scale else torch.ones((1,), dtype=dtype)
    opt.found_inf = torch.ones((), dtype=dtype)
    opt.step()
    assert all(torch.equal(p, c) for p, c in zip(params, params_c))
    assert all(torch.equal(opt.state[p]["phase"], c) for p, c in zip(params, phases_c))


def test_a_skipped_first_step_creates_no_state():
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.full((3,), 1024.0)
    opt = INNA([p], lr=0.1, initial_speed=1.0, fused=True)
    opt.grad_scale, opt.found_inf = torch.tensor(1024.0), torch.tensor(1.0)
    opt.step()
    assert torch.equal(p, torch.ones(3)) and p not in opt.state


def scaler_loop(impl, steps=8, unscale_first=False):
    return amp_training.scaler_loop(
        lambda params: INNA(params, lr=0.05, initial_speed=1.0, **impl), steps, unscale_first
    )


@needs_c  # the compiled route (no C compiler) agrees to round-off, not bitwise
@pytest.mark.parametrize("unscale_first", [False, True])
def test_grad_scaler_fused_route_is_bitwise_the_default_route(monkeypatch, unscale_first):
    fused_model, fused_opt, fused_scaler = scaler_loop(dict(fused=True), unscale_first=unscale_first)
    assert fused_opt._step_supports_amp_scaling
    ref_model, ref_opt, ref_scaler = scaler_loop(dict(foreach=False), unscale_first=unscale_first)
    assert not ref_opt._step_supports_amp_scaling
    assert fused_scaler.get_scale() == ref_scaler.get_scale()
    for p, q in zip(fused_model.parameters(), ref_model.parameters()):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad)  # grads are left unscaled by both routes
        assert torch.equal(fused_opt.state[p]["phase"], ref_opt.state[q]["phase"])


@needs_c
def test_fused_route_reads_nothing_on_the_host_after_the_first_step(monkeypatch):
    p = torch.randn(4, 3, requires_grad=True)
    opt = INNA([p], lr=0.1, fused=True)
    p.grad = torch.randn(4, 3)
    opt.step()

    def no_item(self):
        raise AssertionError("host read")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_item)
    for found in (0.0, 1.0):
        before = p.detach().clone()
        opt.grad_scale, opt.found_inf = torch.tensor(8.0), torch.tensor(found)
        opt.step()
        assert torch.equal(p.detach(), before) == bool(found)  # stepped, then skipped, with no host read


@pytest.mark.slow
def test_compiled_route_unscales_and_skips_like_the_c_loop(monkeypatch, fresh_dynamo):
    """The torch.compile route (the one CUDA takes) with grad_scale/found_inf, forced on CPU."""
    monkeypatch.setenv("INNA_CPU_KERNEL", "0")
    ps = [torch.randn(3, 2), torch.randn(5)]
    phs = [torch.zeros_like(p) for p in ps]
    ref_ps, ref_phs = [p.clone() for p in ps], [p.clone() for p in phs]
    for found in (0.0, 1.0, 0.0):
        gs = [torch.randn_like(p) * 64 for p in ps]
        ref_gs = [g.clone() for g in gs]
        F._fused_inna(ps, gs, phs, 0.1, **STATIC, grad_scale=torch.tensor(64.0), found_inf=torch.tensor(found))
        if not _amp.unscale_and_check(ref_gs, torch.tensor(64.0), torch.tensor(found)):
            F._single_tensor_inna(ref_ps, ref_gs, ref_phs, 0.1, **STATIC)
        for a, b in zip(ps + phs + (gs if not found else []), ref_ps + ref_phs + (ref_gs if not found else [])):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert _cbuild.stats["compiled"] >= 1


# ---------------------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# ---------------------------------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_graph_capture_of_the_fused_step_matches_eager():
    torch.manual_seed(0)
    shapes = [(64, 32), (32,), (), (1000,)]
    base = [torch.randn(s, device="cuda") for s in shapes]
    grads = [[torch.randn(s, device="cuda") for s in shapes] for _ in range(8)]
    eager = [b.clone().requires_grad_() for b in base]
    graphed = [b.clone().requires_grad_() for b in base]
    ref = INNA(eager, lr=0.05, initial_speed=1.0, foreach=False)
    lr = torch.tensor(0.05, device="cuda")
    opt = INNA(graphed, lr=lr, initial_speed=1.0, fused=True)
    static_grads = [torch.zeros(s, device="cuda") for s in shapes]
    for p, g in zip(graphed, static_grads):
        p.grad = g
    # warm up (state and kernels) on a side stream, from the first gradients, then capture one step
    for p, g in zip(static_grads, grads[0]):
        p.copy_(g)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        opt.step()
    torch.cuda.current_stream().wait_stream(side)
    for p, g in zip(eager, grads[0]):
        p.grad = g.clone()
    ref.step()
    graph = torch.cuda.CUDAGraph()
    saved = [p.detach().clone() for p in graphed] + [opt.state[p]["phase"].clone() for p in graphed]
    with torch.cuda.graph(graph):
        opt.step()
    for t, s in zip([p.detach() for p in graphed] + [opt.state[p]["phase"] for p in graphed], saved):
        t.copy_(s)  # capture does not run the kernels, but restore anyway
    for k in range(1, 8):
        lr.fill_(0.05 / (k + 1) ** 0.5)  # the schedule lives on the device: no recapture, no sync
        ref.param_groups[0]["lr"] = 0.05 / (k + 1) ** 0.5
        for g_static, g in zip(static_grads, grads[k]):
            g_static.copy_(g)
        graph.replay()
        for p, g in zip(eager, grads[k]):
            p.grad = g.clone()
        ref.step()
    torch.cuda.synchronize()
    for a, b in zip(graphed, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@needs_cuda
def test_cuda_fused_route_does_not_sync():
    p = torch.randn(128, 64, device="cuda", requires_grad=True)
    opt = INNA([p], lr=torch.tensor(0.1, device="cuda"), fused=True)
    p.grad = torch.randn_like(p)
    opt.step()
    opt.grad_scale, opt.found_inf = torch.tensor(4.0, device="cuda"), torch.tensor(0.0, device="cuda")
    opt.step()  # builds the kernel with the scaler's inputs outside the checked region
    torch.cuda.synchronize()
    before = p.detach().clone()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.grad_scale, opt.found_inf = torch.tensor(4.0, device="cuda"), torch.tensor(1.0, device="cuda")
        opt.step()
        opt.grad_scale, opt.found_inf = torch.tensor(4.0, device="cuda"), torch.tensor(0.0, device="cuda")
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert not torch.equal(p, before)
