"""Paired statistics of the report, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from inna.bench.stats import paired_difference, t_quantile


@pytest.mark.parametrize(("df", "value"), [(1, 12.7062), (2, 4.30265), (4, 2.77645), (10, 2.22814), (30, 2.04227)])
def test_t_quantiles_match_the_tables(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-value, abs=1e-4)


def test_hand_computed_example():
    # d = a - b = (-0.5, -0.4, -0.8): mean -0.56667, sd sqrt(0.043333) = 0.208167, half-width 4.302653 * sd / sqrt(3)
    r = paired_difference([1.0, 2.0, 3.0], [1.5, 2.4, 3.8], higher_is_better=False)
    assert r.n == 3 and r.mean == pytest.approx(-0.566667, abs=1e-6) and r.sd == pytest.approx(0.208167, abs=1e-6)
    assert (r.low, r.high) == (pytest.approx(-1.083790, abs=1e-5), pytest.approx(-0.049543, abs=1e-5))
    assert r.verdict == "win"  # a lower loss on every seed, beyond the spread
    assert paired_difference([1.5, 2.4, 3.8], [1.0, 2.0, 3.0], higher_is_better=False).verdict == "loss"
    assert paired_difference([0.9, 0.8, 0.85], [0.8, 0.7, 0.75], higher_is_better=True).verdict == "win"
    assert r.format() == "-0.567 [-1.084, -0.050] (win)"


def test_a_difference_within_the_spread_is_a_tie():
    r = paired_difference([1.0, 2.0, 3.0], [1.2, 1.9, 3.1], higher_is_better=False)
    assert r.low < 0 < r.high and r.verdict == "tie"
    one = paired_difference([1.0], [2.0], higher_is_better=False)
    assert one.verdict == "tie" and math.isnan(one.low) and "n=1" in one.format()


def test_diverged_runs_decide():
    assert paired_difference([math.inf, 1.0], [1.0, 1.0], higher_is_better=False).verdict == "loss"
    assert paired_difference([1.0, 1.0], [math.inf, 1.0], higher_is_better=False).verdict == "win"


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0], [1.0, 2.0], higher_is_better=True)
    with pytest.raises(ValueError, match="Invalid confidence"):
        paired_difference([1.0], [1.0], higher_is_better=True, confidence=1.5)
