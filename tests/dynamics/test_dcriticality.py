"""D-critical points that are not critical: backprop returns exactly 0, mini-batch methods stay put."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inna.dynamics import backprop_gradient, minibatch_run, relu_network_losses, relu_pair_losses, total_loss


def one_sided(losses, theta, i, eps=1e-7):
    e = np.zeros(len(theta))
    e[i] = eps
    right = (total_loss(losses, theta + e) - total_loss(losses, theta)) / eps
    left = (total_loss(losses, theta) - total_loss(losses, theta - e)) / eps
    return left, right


def test_relu_pair_is_d_critical_not_critical():
    losses = relu_pair_losses()
    for r in range(1, 4):
        for batch in itertools.combinations(range(3), r):
            assert backprop_gradient(losses, [0.0], batch).tolist() == [0.0]  # exactly 0, every mini-batch
    left, right = one_sided(losses, np.array([0.0]), 0)
    assert left == pytest.approx(1.0, abs=1e-6) and right == pytest.approx(1.0, abs=1e-6)  # J'(0) = 1
    # away from 0, backprop is the true derivative 1 + theta
    for x in (-1.3, -0.2, 0.4):
        assert backprop_gradient(losses, [x])[0] == pytest.approx(1 + x)


@pytest.mark.parametrize("method", ["sgd", "inna"])
def test_started_at_the_spurious_point_nothing_moves(method):
    path = minibatch_run(relu_pair_losses(), [0.0], method=method, n_steps=300)
    assert np.all(path == 0.0)
    path = minibatch_run(relu_network_losses(), [0.0, 1.0], method=method, n_steps=300)
    assert np.all(path == [0.0, 1.0])


@pytest.mark.parametrize("method", ["sgd", "inna"])
def test_from_random_starts_they_do_not_get_stuck(method):
    rng = np.random.default_rng(0)
    for i, x0 in enumerate(rng.uniform(-2, 2, 3)):
        path = minibatch_run(relu_pair_losses(), [x0], method=method, n_steps=800, seed=i)
        tail = path[-100:, 0].mean()
        assert abs(tail + 1) < 0.3, (x0, tail)  # the minimiser of theta + theta^2/2
        assert total_loss(relu_pair_losses(), [tail]) < -0.4
    net = relu_network_losses()
    for i, x0 in enumerate(rng.normal(0, 0.8, (3, 2))):
        path = minibatch_run(net, x0, method=method, n_steps=800, seed=i)
        assert total_loss(net, path[-1]) < 1.02, (x0, path[-1])  # min J = 1 on vw = 1; the D-critical line has 2


def test_relu_network_instance():
    net = relu_network_losses()
    for v in (-1.5, 0.5, 1.0):
        theta = np.array([0.0, v])
        assert backprop_gradient(net, theta).tolist() == [0.0, 0.0]
        for n in range(2):
            assert backprop_gradient(net, theta, [n]).tolist() == [0.0, 0.0]
        left, right = one_sided(net, theta, 0)
        assert left == pytest.approx(-2 * v, abs=1e-5) and right == pytest.approx(-2 * v, abs=1e-5)
        assert one_sided(net, theta, 1) == (0.0, 0.0)
        assert total_loss(net, theta) == 2.0


def test_minibatch_run_errors():
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 3\]"):
        minibatch_run(relu_pair_losses(), [0.0], batch_size=4)
    with pytest.raises(ValueError, match="method must be 'sgd' or 'inna'"):
        minibatch_run(relu_pair_losses(), [0.0], method="adam")
