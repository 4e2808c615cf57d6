"""Identities from the paper that any correct INNA must satisfy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from inna import INNA
from inna.torch.functional import phase_from_psi, psi_from_phase

IMPLS = [dict(foreach=False), dict(foreach=True)]


def quartic_grad(theta: torch.Tensor) -> torch.Tensor:
    return theta**3 - theta + 0.5


@pytest.mark.parametrize("impl", IMPLS)
def test_first_step_default_is_beta_scaled_gradient_step(impl):
    theta0 = torch.randn(6, dtype=torch.float64)
    p = theta0.clone().requires_grad_()
    g0 = quartic_grad(theta0)
    opt = INNA([p], lr=0.3, alpha=0.7, beta=0.2, **impl)
    p.grad = g0.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), theta0 - 0.3 * 0.2 * g0, rtol=0, atol=1e-15)
    # zero phase at the start: psi_0 = (1 - alpha beta) theta_0
    assert torch.count_nonzero(opt.state[p]["phase"] - 0.3 * (1 - 0.7 * 0.2) * g0) == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_first_step_with_unit_initial_speed_is_the_sgd_step(impl):
    theta0 = torch.randn(6, dtype=torch.float64)
    p = theta0.clone().requires_grad_()
    g0 = quartic_grad(theta0)
    opt = INNA([p], lr=0.3, alpha=0.7, beta=0.2, initial_speed=1.0, **impl)
    p.grad = g0.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), theta0 - 0.3 * g0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_initial_speed_starts_at_rest(impl):
    """s = 0: theta_dot(0) = 0, so psi_0 = (1 - alpha beta) theta_0 - beta^2 g_0 and theta_1 = theta_0."""
    theta0 = torch.randn(6, dtype=torch.float64)
    p = theta0.clone().requires_grad_()
    g0 = quartic_grad(theta0)
    opt = INNA([p], lr=0.3, alpha=0.7, beta=0.2, initial_speed=0.0, **impl)
    p.grad = g0.clone()
    psi0 = None
    opt.step()
    torch.testing.assert_close(p.detach(), theta0, rtol=0, atol=1e-15)
    psi0 = (1 - 0.7 * 0.2) * theta0 - 0.2**2 * g0
    # after one step psi_1 = psi_0 + lr * ((1/b - a) theta_0 - psi_0 / b)
    psi1 = psi0 + 0.3 * ((1 / 0.2 - 0.7) * theta0 - psi0 / 0.2)
    torch.testing.assert_close(opt.psi(p), psi1, rtol=0, atol=1e-14)


@pytest.mark.parametrize("impl", IMPLS)
@given(
    lr=st.floats(0.001, 0.3),
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.01, 2.0),
    s=st.one_of(st.none(), st.floats(0.0, 2.0)),
)
def test_two_step_recursion(impl, lr, alpha, beta, s):
    """theta_{k+2} = theta_{k+1} + (1 - a lr)(theta_{k+1} - theta_k) - b lr (g_{k+1} - g_k) - lr^2 g_k."""
    p = torch.randn(5, dtype=torch.float64).requires_grad_()
    opt = INNA([p], lr=lr, alpha=alpha, beta=beta, initial_speed=s, **impl)
    thetas, grads = [], []
    for _ in range(12):
        thetas.append(p.detach().clone())
        grads.append(quartic_grad(p.detach()).clamp(-10, 10))
        p.grad = grads[-1].clone()
        opt.step()
    thetas.append(p.detach().clone())
    for k in range(len(thetas) - 2):
        rhs = (
            thetas[k + 1]
            + (1 - alpha * lr) * (thetas[k + 1] - thetas[k])
            - beta * lr * (grads[k + 1] - grads[k])
            - lr**2 * grads[k]
        )
        scale = 1 + max(t.abs().max().item() for t in thetas[k : k + 3])
        torch.testing.assert_close(thetas[k + 2], rhs, rtol=0, atol=1e-12 * scale)


def test_equilibrium_is_fixed_point():
    """At a critical point with psi = (1 - alpha beta) theta, INNA does not move (zero gradient, zero phase)."""
    p = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64, requires_grad=True)  # roots of theta^3 - theta
    opt = INNA([p], lr=0.1)
    before = p.detach().clone()
    for _ in range(20):
        p.grad = p.detach() ** 3 - p.detach()
        opt.step()
    assert torch.equal(p.detach(), before)
    torch.testing.assert_close(opt.psi(p), (1 - 0.5 * 0.1) * before)


@pytest.mark.parametrize("impl", IMPLS)
def test_coupled_weight_decay_is_inna_on_l2_regularised_objective(impl):
    lam = 0.3
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    a = INNA([p], lr=0.05, weight_decay=lam, initial_speed=1.0, **impl)
    b = INNA([q], lr=0.05, initial_speed=1.0, **impl)
    for _ in range(30):
        p.grad = quartic_grad(p.detach())
        q.grad = quartic_grad(q.detach()) + lam * q.detach()
        a.step()
        b.step()
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("impl", IMPLS)
def test_decoupled_weight_decay_is_the_authors_form(impl):
    """theta_{k+1} = theta_k + lr (c_k - beta g_k) - lr * wd * theta_k, psi_{k+1} = psi_k + lr c_k."""
    lam, lr, alpha, beta = 0.2, 0.05, 0.5, 0.1
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    theta = p.detach().clone()
    psi = (1 - alpha * beta) * theta
    opt = INNA([p], lr=lr, alpha=alpha, beta=beta, weight_decay=lam, decoupled_weight_decay=True, **impl)
    for _ in range(30):
        g = quartic_grad(theta)
        p.grad = quartic_grad(p.detach())
        opt.step()
        c = (1 / beta - alpha) * theta - psi / beta
        theta, psi = theta + lr * (c - beta * g) - lr * lam * theta, psi + lr * c
    torch.testing.assert_close(p.detach(), theta, rtol=0, atol=1e-12)
    torch.testing.assert_close(opt.psi(p), psi, rtol=0, atol=1e-12)


def test_psi_phase_conversions_are_inverse():
    theta, psi = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    phase = phase_from_psi(theta, psi, alpha=0.4, beta=0.3)
    torch.testing.assert_close(psi_from_phase(theta, phase, alpha=0.4, beta=0.3), psi, rtol=0, atol=1e-14)
    torch.testing.assert_close(phase, (0.4 - 1 / 0.3) * theta + psi / 0.3)


def test_phase_storage_has_no_cancellation_in_low_precision():
    """bf16, small beta: starting at zero phase, zero-gradient steps stay exactly put.

    With psi stored, (alpha - 1/beta) theta + psi/beta is a difference of two terms of size |theta|/beta and
    its rounding error moves theta; with the phase stored it is exactly zero.
    """
    p = torch.randn(1000, dtype=torch.bfloat16) * 10
    p.requires_grad_()
    before = p.detach().clone()
    opt = INNA([p], lr=0.1, alpha=0.5, beta=0.01)
    for _ in range(5):
        p.grad = torch.zeros_like(p)
        opt.step()
    assert torch.equal(p.detach(), before)
    # the naive psi form in the same precision does move
    theta = before.clone()
    psi = ((1 - 0.5 * 0.01) * theta).to(torch.bfloat16)
    phase_naive = (0.5 - 1 / 0.01) * theta + psi / 0.01
    assert phase_naive.abs().max() > 0
