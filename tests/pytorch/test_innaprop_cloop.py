"""INNAprop's C loop (``fused=True`` and the default on CPU) against its eager reference ``_single_tensor_innaprop``.

The C loop (``kernels/inna_kernels.c``) performs the operations of ``_innaprop_core``, the per-element step the
reference runs per tensor, in their order and rounding, every tensor with its own bias correction, every
hyperparameter a runtime argument. Its ``sqrt`` is correctly rounded where torch's vectorised CPU ``sqrt`` is not
always, and its addcmul is an FMA where torch's portable CPU kernel is not: the claim is agreement to a few ulp,
checked here in every dtype (and under ``ATEN_CPU_CAPABILITY=default`` by ``make test``).
"""

from __future__ import annotations

import amp_training
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inna import INNAprop
from inna.torch import _cbuild, _compiled, _fused
from inna.torch import innaprop as M

STATIC = dict(alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01, maximize=False)
needs_c = pytest.mark.skipif(
    _cbuild.library(torch.float32) is None, reason="no C compiler: the CPU fused path is torch.compile here"
)

#: Strided slices (``make_params``'s noncontig) take the reference, which fused=True says once.
pytestmark = pytest.mark.filterwarnings("ignore:INNAprop.fused=True.. some tensors are not one dense block")

#: The C loop's float32 result is within this many ulp of the reference, measured on each tensor's scale (see
#: :func:`assert_agree`). Two things differ from the eager reference: the C loop's correctly rounded sqrt, and
#: addcmul, which torch's vectorised kernel computes as an FMA on AVX2/AVX-512 and as a multiply then an add under
#: ``ATEN_CPU_CAPABILITY=default``; each costs at most 1 ulp of v or of u = g / D per step.
ULPS = 8
#: Gradients taken at parameters that agree to ULPS agree to this many ulp of their largest magnitude.
GRAD_ULPS = 64


def make_params(shapes, dtype, noncontig=()):
    """Leaves of ``shapes``; those in ``noncontig`` are transposed (dense, other strides: the C loop takes them) at
    even positions, strided slices (not dense: the reference takes them) at odd ones."""
    gen = torch.Generator().manual_seed(0)
    params = []
    for j, shape in enumerate(shapes):
        if j in noncontig and len(shape) >= 2 and j % 2 == 0:
            t = torch.randn(tuple(reversed(shape)), generator=gen, dtype=dtype).transpose(0, len(shape) - 1)
        elif j in noncontig and len(shape) >= 1:
            t = torch.randn((*shape[:-1], 2 * shape[-1]), generator=gen, dtype=dtype)[..., ::2]
        else:
            t = torch.randn(shape, generator=gen, dtype=dtype)
        params.append(t.detach().requires_grad_())
    return params


def twin_runs(shapes, dtype, steps, hparams, *, noncontig=(), frozen=(), impl=None, state_dtype=None):
    """INNAprop(``impl``, default fused=True) and INNAprop(foreach=False) (the reference) on the same gradients,
    with an lr that changes every step; parameters in ``frozen`` have no gradient for the first half."""
    impl = dict(fused=True) if impl is None else impl
    runs = []
    for options in (impl, dict(foreach=False)):
        params = make_params(shapes, dtype, noncontig)
        opt = INNAprop(params, **hparams, **options, state_dtype=state_dtype)
        lr0 = hparams.get("lr", 1e-3)
        for k in range(steps):
            opt.param_groups[0]["lr"] = lr0 * (0.5 + 0.5 / (k + 1) ** 0.5)  # a schedule: new scalars every step
            g_gen = torch.Generator().manual_seed(k)
            for j, p in enumerate(params):
                g = torch.randn(p.shape, generator=g_gen, dtype=dtype) + 0.1 * p.detach()
                if j % 2 == 0:
                    g = torch.empty_like(p).copy_(g)  # the parameter's layout, as autograd makes it
                p.grad = None if (j in frozen and k < steps // 2) else g
            opt.step()
        runs.append((params, opt))
    return runs


def tensors_of(params, opt):
    """Every tensor of the run: parameters (their master copies where they have one) and state."""
    out = []
    for p in params:
        state = opt.state.get(p, {})
        out.append(("param", p.detach()))
        for key in ("master", "phase", "exp_avg_sq", "step"):
            if key in state:
                out.append((key, state[key]))
    return out


def ulp_distance(a, b):
    """max |a - b| in units of the dtype's epsilon times the largest magnitude of ``b`` (complex as real pairs)."""
    a, b = (torch.view_as_real(t) if t.is_complex() else t for t in (a, b))
    if a.numel() == 0:
        return 0.0
    eps = torch.finfo(b.dtype).eps
    a, b = a.double(), b.double()
    scale = b.abs().max().item() or 1.0
    return ((a - b).abs().max() / (scale * eps)).item()


def _max_abs(t):
    return t.abs().max().item() if t.numel() else 0.0


def assert_agree(runs, dtype, ulps=ULPS):
    """Every tensor of the two runs within ``ulps`` of the dtype's epsilon times its scale: its own largest
    magnitude, and for the phase the larger of its own and the parameter's. The phase
    phi = (alpha - 1/beta) theta + psi/beta is in the parameter's units and sums terms of the
    parameter's size (the decay's shift times theta), so its rounding errors are of that size even when it is small
    itself. The step counters are equal."""
    (pa, oa), (pb, ob) = runs
    fast, ref = tensors_of(pa, oa), tensors_of(pb, ob)
    assert [k for k, _ in fast] == [k for k, _ in ref]  # the same state, for the same parameters
    theta_scale = 0.0
    for (key, a), (_, b) in zip(fast, ref):
        assert a.dtype == b.dtype and a.shape == b.shape, key
        if key == "step":
            assert torch.equal(a, b)
            continue
        eps = torch.finfo(a.real.dtype if a.is_complex() else a.dtype).eps
        err = _max_abs(a - b)
        scale = _max_abs(b)
        if key in ("param", "master"):
            theta_scale = scale if key == "param" else max(theta_scale, scale)
        if key == "phase":
            scale = max(scale, theta_scale)
        scale = scale or 1.0
        assert err <= ulps * eps * scale, (key, a.dtype, err / (eps * scale))


def count_c_calls(monkeypatch):
    """The number of tensors of each C loop call, as a list."""
    calls = []
    real = _fused._call

    def call(kernel, lib, lists, *args, **kwargs):
        calls.append(len(lists[0]))
        return real(kernel, lib, lists, *args, **kwargs)

    monkeypatch.setattr(_fused, "_call", call)
    return calls


# ---------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------

HP = dict(lr=0.01, alpha=0.3, beta=0.7, sigma=0.99, eps=1e-8, weight_decay=0.05)


@needs_c
def test_float64_agrees_to_1e_12_over_40_steps_with_every_feature(monkeypatch):
    calls = count_c_calls(monkeypatch)
    shapes = [(), (4, 3), (2, 5, 3), (7,), (3, 1, 2)]
    runs = twin_runs(shapes, torch.float64, 40, {**HP, "maximize": True}, noncontig={1, 2}, frozen={0, 3})
    (pa, oa), (pb, ob) = runs
    for (key, a), (_, b) in zip(tensors_of(pa, oa), tensors_of(pb, ob)):
        assert (a - b).abs().max() <= 1e-12 * (1 + b.abs().max()), key
    assert calls  # the C loop ran
    # frozen parameters trail by 20 steps: their own step counts (and bias corrections) throughout
    assert oa.state[pa[0]]["step"].item() == 20 and oa.state[pa[1]]["step"].item() == 40
    assert_agree(runs, torch.float64, ulps=64)


@needs_c
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_float32_agrees_to_a_few_ulp(maximize, weight_decay):
    hp = {**HP, "maximize": maximize, "weight_decay": weight_decay}
    runs = twin_runs([(), (33,), (8, 9), (300,)], torch.float32, 30, hp, noncontig={2}, frozen={1})
    assert_agree(runs, torch.float32)


@needs_c
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("state_dtype", [None, torch.float32])
@pytest.mark.filterwarnings("ignore:INNAprop. a float16 parameter keeps")
def test_low_precision_with_and_without_master_copies(dtype, state_dtype):
    hp = {**HP, "lr": 0.05}
    runs = twin_runs([(), (17,), (6, 5)], dtype, 30, hp, noncontig={2}, frozen={0}, state_dtype=state_dtype)
    (pa, oa), (pb, ob) = runs
    if state_dtype is not None:
        assert all(oa.state[p]["master"].dtype == torch.float32 for p in pa)
        # the update runs on the float32 masters: a few float32 ulp; the parameters are their rounding
        for p, q in zip(pa, pb):
            m, n = oa.state[p]["master"], ob.state[q]["master"]
            assert ulp_distance(m, n) <= ULPS
            assert ulp_distance(oa.state[p]["phase"], ob.state[q]["phase"]) <= ULPS
            assert (p.detach().float() - q.detach().float()).abs().max() <= torch.finfo(dtype).eps * n.abs().max()
    else:
        # computed in float32 and rounded to the storage type after every operation, as eager torch does: a
        # correctly rounded sqrt changes the rounding of an update at most once in a while
        assert_agree(runs, dtype, ulps=2)


@needs_c
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_as_real_pairs(dtype):
    runs = twin_runs([(), (5, 3), (40,)], dtype, 30, HP, frozen={2})
    assert_agree(runs, dtype, ulps=ULPS if dtype == torch.complex64 else 64)


@needs_c
def test_tensor_lr_and_zero_eps_and_zero_alpha():
    hp = dict(lr=torch.tensor(0.02), alpha=0.0, beta=0.3, eps=0.0, weight_decay=0.0)
    runs = twin_runs([(6,), (3, 4)], torch.float32, 20, hp)
    assert_agree(runs, torch.float32)


shape_st = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)
hparam_st = st.fixed_dictionaries(
    dict(
        lr=st.floats(1e-4, 0.3),
        alpha=st.floats(0.0, 2.0),
        beta=st.floats(0.05, 2.0),
        sigma=st.sampled_from([0.0, 0.9, 0.99, 0.999]),
        eps=st.sampled_from([0.0, 1e-8, 1e-3]),
        weight_decay=st.sampled_from([0.0, 0.01, 0.1]),
        maximize=st.booleans(),
    )
)


@needs_c
@settings(max_examples=25, deadline=None)
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=5),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.complex64]),
    hparams=hparam_st,
    steps=st.integers(1, 15),
    frozen=st.sets(st.integers(0, 4), max_size=2),
)
def test_c_loop_agrees_with_the_reference(shapes, dtype, hparams, steps, frozen):
    assert_agree(twin_runs(shapes, dtype, steps, hparams, frozen=frozen), dtype, ulps=16)


@needs_c
def test_the_default_on_cpu_takes_the_c_loop_and_agrees(monkeypatch):
    calls = count_c_calls(monkeypatch)
    runs = twin_runs([(64, 3, 3), (64,), (10, 64)], torch.float32, 30, {**HP, "maximize": True}, impl=dict())
    assert len(calls) == 30  # one call per step: a single dtype and step count
    assert_agree(runs, torch.float32)


@needs_c
def test_one_kernel_call_whatever_the_step_counts(monkeypatch):
    calls = count_c_calls(monkeypatch)
    params = [torch.randn(3, requires_grad=True) for _ in range(4)]
    opt = INNAprop(params, lr=0.01, fused=True)
    for k in range(4):
        for j, p in enumerate(params):
            p.grad = torch.randn(3) if j <= k else None  # parameter j starts training at step j
        calls.clear()
        opt.step()
        assert calls == [k + 1]  # counts k+1, k, ..., 1: each tensor its own bias correction, one call
    assert [opt.state[p]["step"].item() for p in params] == [4, 3, 2, 1]


def test_without_the_cpu_kernel_fused_compiles_and_the_default_is_foreach(monkeypatch):
    monkeypatch.setenv("INNA_CPU_KERNEL", "0")
    calls = []
    monkeypatch.setattr(_compiled, "run", lambda *a, **k: calls.append("compiled"))
    monkeypatch.setattr(M, "_multi_tensor_innaprop", lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(_fused, "_call", lambda *a, **k: calls.append("c"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    INNAprop([p], fused=True).step()
    INNAprop([p]).step()
    assert calls == ["compiled", "foreach"]


# ---------------------------------------------------------------------------------------------------------------
# Builds
# ---------------------------------------------------------------------------------------------------------------


@needs_c
def test_one_build_for_every_lr_step_count_tensor_count_and_hyperparameter_set(monkeypatch, tmp_path):
    monkeypatch.setenv("INNA_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(_cbuild, "stats", _cbuild.stats.__class__())
    _cbuild.forget()
    for n, hp in ((3, dict(alpha=0.3, beta=0.8)), (200, dict(alpha=0.1, beta=0.9, weight_decay=0.0, sigma=0.99))):
        params = [torch.randn(k % 7 + 1, 3, requires_grad=True) for k in range(n)]
        opt = INNAprop(params, lr=0.01, **hp, fused=True)
        for k in range(5):
            opt.param_groups[0]["lr"] = 0.01 / (k + 1)
            for j, p in enumerate(params):
                p.grad = torch.randn_like(p) if j % 3 or k >= 2 else None  # several step counts
            opt.step()
    assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 1
    # a new process finds it on disk: it loads, it does not build
    _cbuild.forget()
    opt.step()
    assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 2
    assert len(list(tmp_path.glob("*.so"))) == 1 and not list(tmp_path.glob("*.c"))
    _cbuild.forget()


@needs_c
def test_a_hundred_hyperparameter_sets_in_one_process_all_take_the_c_loop_and_agree(monkeypatch):
    calls = count_c_calls(monkeypatch)
    gen = torch.Generator().manual_seed(1)
    for a, b, s, w in torch.rand(100, 4, generator=gen, dtype=torch.float64).tolist():
        hp = dict(lr=0.01, alpha=2 * a, beta=0.05 + 2 * b, sigma=0.9 + 0.099 * s, weight_decay=0.1 * w)
        assert_agree(twin_runs([(5, 3), (7,), ()], torch.float32, 3, hp), torch.float32)
    assert len(calls) == 300  # every set, every step: the C loop


# ---------------------------------------------------------------------------------------------------------------
# GradScaler's fused route
# ---------------------------------------------------------------------------------------------------------------


def scaler_loop(impl, steps=8, unscale_first=False):
    return amp_training.scaler_loop(
        lambda params: INNAprop(params, lr=0.01, weight_decay=0.1, **impl), steps, unscale_first
    )


@needs_c
@pytest.mark.parametrize("unscale_first", [False, True])
def test_grad_scaler_fused_route_agrees_with_the_default_route(unscale_first):
    fused_model, fused_opt, fused_scaler = scaler_loop(dict(fused=True), unscale_first=unscale_first)
    assert fused_opt._step_supports_amp_scaling
    ref_model, ref_opt, ref_scaler = scaler_loop(dict(foreach=False), unscale_first=unscale_first)
    assert not ref_opt._step_supports_amp_scaling
    assert fused_scaler.get_scale() == ref_scaler.get_scale()
    for p, q in zip(fused_model.parameters(), ref_model.parameters()):
        # unscaled by the scaler's inverse by both routes (a gradient left scaled would be 2**12 times larger);
        # taken at parameters that agree to ULPS, not bitwise
        assert ulp_distance(p.grad, q.grad) <= GRAD_ULPS
        assert fused_opt.state[p]["step"].item() == ref_opt.state[q]["step"].item() == 6  # two steps skipped
    assert_agree(
        [(list(m.parameters()), o) for m, o in ((fused_model, fused_opt), (ref_model, ref_opt))], torch.float32
    )


@needs_c
def test_found_inf_skips_everything_step_counters_included_without_reading_it(monkeypatch):
    params = [torch.ones(4, requires_grad=True), torch.ones((), requires_grad=True)]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = INNAprop(params, lr=0.1, fused=True)
    opt.step()  # the first step creates the state (a skipped first step takes the default route, next test)
    saved = [(p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}) for p in params]

    def no_read(self):
        raise AssertionError("found_inf read on the host")

    monkeypatch.setattr(torch.Tensor, "item", no_read)
    monkeypatch.setattr(torch.Tensor, "__bool__", no_read)
    for grad_scale in (None, torch.tensor(8.0)):
        opt.grad_scale, opt.found_inf = grad_scale, torch.tensor(1.0)
        opt.step()
        for p, (value, state) in zip(params, saved):
            assert torch.equal(p, value) and all(torch.equal(opt.state[p][k], v) for k, v in state.items())
    opt.grad_scale, opt.found_inf = torch.tensor(8.0), torch.tensor(0.0)
    opt.step()
    monkeypatch.undo()
    assert all(opt.state[p]["step"].item() == 2 for p in params) and not torch.equal(params[0], saved[0][0])


def test_a_skipped_first_step_creates_no_state():
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.full((3,), 1024.0)
    opt = INNAprop([p], lr=0.1, fused=True)
    opt.grad_scale, opt.found_inf = torch.tensor(1024.0), torch.tensor(1.0)
    opt.step()
    assert torch.equal(p, torch.ones(3)) and p not in opt.state


@needs_c
def test_grad_scaler_with_master_copies_unscales_before_the_upcast():
    torch.manual_seed(0)
    base = [torch.randn(5, 3), torch.randn(7)]
    runs = []
    for impl in (dict(fused=True), dict(foreach=False)):
        params = [b.bfloat16().requires_grad_() for b in base]
        opt = INNAprop(params, lr=0.01, fused=impl.get("fused"), foreach=impl.get("foreach"), state_dtype=torch.float32)
        for k in range(6):
            for j, p in enumerate(params):
                gen = torch.Generator().manual_seed(10 * k + j)
                p.grad = (torch.randn(p.shape, generator=gen) * 256).bfloat16()
            if k == 0:
                opt.step()  # the first step creates the state
                continue
            grad_scale, found_inf = torch.tensor(256.0), torch.tensor(float(k == 3))
            if impl.get("fused"):
                opt.grad_scale, opt.found_inf = grad_scale, found_inf
                opt.step()
            else:  # what the scaler's default route does
                if not found_inf.item():
                    torch._foreach_mul_([p.grad for p in params], grad_scale.reciprocal())
                    opt.step()
        runs.append([opt.state[p]["master"] for p in params] + [p.detach() for p in params])
    for a, b in zip(*runs):
        assert ulp_distance(a.float(), b.float()) <= (ULPS if a.dtype == torch.float32 else 256)


@pytest.mark.slow
def test_compiled_route_unscales_and_skips_step_counters_included(monkeypatch, fresh_dynamo):
    """The torch.compile route (the one CUDA takes) with grad_scale/found_inf, forced on CPU."""
    monkeypatch.setenv("INNA_CPU_KERNEL", "0")
    ps = [torch.randn(3, 2), torch.randn(5)]
    state = [[torch.zeros_like(p) for p in ps] for _ in range(2)]
    steps = [torch.zeros(()) for _ in ps]
    ref = [[t.clone() for t in ts] for ts in (ps, *state, steps)]
    compiled_before = _cbuild.stats["compiled"]
    for found in (0.0, 1.0, 0.0):
        gs = [torch.randn_like(p) * 64 for p in ps]
        ref_gs = [g.clone() for g in gs]
        M._fused_innaprop(
            ps, gs, *state, steps, 0.01, **STATIC, grad_scale=torch.tensor(64.0), found_inf=torch.tensor(found)
        )
        if not found:
            torch._foreach_mul_(ref_gs, 1 / 64)
            M._single_tensor_innaprop(ref[0], ref_gs, ref[1], ref[2], ref[3], 0.01, **STATIC)
        for a, b in zip([*ps, *state[0], *state[1], *steps], [t for ts in ref for t in ts]):
            # compiled, the bias correction is computed in float32 (the eager reference computes it in double)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert [s.item() for s in steps] == [2.0, 2.0]
    assert _cbuild.stats["compiled"] > compiled_before


def test_compiler_flags_leave_sqrt_vectorisable():
    # -fno-fast-math re-enables errno; only a later -fno-math-errno lets gcc turn sqrtf into a vector instruction
    # (measured: INNAprop's C loop 2.6x fused AdamW on ResNet-18 shapes with the other order).
    flags = _cbuild.FLAGS
    assert flags.index("-fno-math-errno") > flags.index("-fno-fast-math")
    assert "-ffast-math" not in flags and "-ffp-contract=off" in flags


@needs_c
def test_step_counters_advance_in_one_c_call_and_skip_on_found_inf():
    lib = _cbuild.library(torch.float32)
    counters = [torch.tensor(float(t)) for t in (0, 3, 3, 7)]
    assert _fused.advance_counters(lib, counters) == [0.0, 3.0, 3.0, 7.0]
    assert [c.item() for c in counters] == [1.0, 4.0, 4.0, 8.0]
    assert _fused.advance_counters(lib, counters, torch.tensor([1.0])) == [1.0, 4.0, 4.0, 8.0]
    assert [c.item() for c in counters] == [1.0, 4.0, 4.0, 8.0]  # found_inf: read, not advanced
    # what the helper does not serve it leaves alone (the caller then uses torch): another dtype
    other = [torch.tensor(2.0, dtype=torch.float64)]
    assert _fused.advance_counters(lib, other) is None and other[0].item() == 2.0
