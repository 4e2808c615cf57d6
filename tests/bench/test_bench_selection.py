"""γ₀ selection: grid extension past an edge, on synthetic loss curves."""

from __future__ import annotations

import math

import pytest

from inna.bench.selection import decide, next_value, select_lr

GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


def search(loss, grid=GRID, max_extensions=3):
    losses = {lr: loss(lr) for lr in grid}
    while True:
        d = decide(grid, losses, max_extensions=max_extensions)
        if d.probe is None:
            return d, losses
        assert d.probe not in losses
        losses[d.probe] = loss(d.probe)


def bowl(center):
    return lambda lr: (math.log10(lr) - math.log10(center)) ** 2


def test_one_three_steps():
    assert next_value(GRID, -1) == 0.01 and next_value((0.01, *GRID), -1) == 0.003
    assert next_value(GRID, +1) == 10.0 and next_value((*GRID, 10.0), +1) == 30.0
    assert next_value((0.2, 0.4, 0.8), -1) == 0.1 and next_value((0.2, 0.4, 0.8), +1) == 1.6


@pytest.mark.parametrize(
    ("center", "chosen", "added"), [(0.004, 0.003, (0.01, 0.003, 0.001)), (20.0, 30.0, (10.0, 30.0, 100.0))]
)
def test_best_beyond_the_grid_is_found(center, chosen, added):
    d, losses = search(bowl(center))
    assert d.chosen == chosen and d.edge is None
    assert set(losses) == set(GRID) | set(added)  # every probe recorded, one log step at a time


def test_interior_best_needs_no_probe():
    d, losses = search(bowl(0.3))
    assert d.chosen == 0.3 and d.edge is None and set(losses) == set(GRID)


def test_the_bound_is_stated():
    d, losses = search(bowl(1e-6), max_extensions=2)
    assert d.chosen == 0.003 and d.edge == "low" and min(losses) == 0.003


def test_diverged_probes_count_as_inf():
    loss = lambda lr: math.inf if lr > 0.5 else -lr  # noqa: E731  (best just below divergence)
    d, _ = search(loss)
    assert d.chosen == 0.3 and d.edge is None
    assert select_lr({0.1: None, 0.3: math.nan}) is None
