"""Paired statistics of the report, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from inna.bench.stats import VERDICTS, paired_difference, t_quantile


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


def test_an_interval_holding_0_is_undecided_unless_inside_the_margin():
    # d = (−0.2, 0.1, −0.1): mean −0.0667, sd 0.152753, half-width 4.302653 · sd / √3 = 0.379458
    a, b = [1.0, 2.0, 3.0], [1.2, 1.9, 3.1]
    r = paired_difference(a, b, higher_is_better=False)
    assert (r.low, r.high) == (pytest.approx(-0.446125, abs=1e-5), pytest.approx(0.312792, abs=1e-5))
    assert r.verdict == "undecided" and r.margin is None  # no margin: equivalence cannot be shown
    assert paired_difference(a, b, higher_is_better=False, margin=0.3).verdict == "undecided"  # −0.446 < −0.3
    tie = paired_difference(a, b, higher_is_better=False, margin=0.45)
    assert tie.verdict == "tie" and tie.margin == 0.45 and tie.format().endswith("(tie)")
    one = paired_difference([1.0], [2.0], higher_is_better=False, margin=5.0)
    assert one.verdict == "undecided" and math.isnan(one.low) and "n=1" in one.format()


def test_a_difference_shown_smaller_than_the_margin_is_a_tie_even_if_not_zero():
    # the hand-computed example's interval [−1.084, −0.050] excludes 0 (a win) but lies inside ±1.1
    a, b = [1.0, 2.0, 3.0], [1.5, 2.4, 3.8]
    assert paired_difference(a, b, higher_is_better=False, margin=1.0).verdict == "win"  # −1.084 < −1.0
    assert paired_difference(a, b, higher_is_better=False, margin=1.1).verdict == "tie"
    assert paired_difference(b, a, higher_is_better=False, margin=1.0).verdict == "loss"
    # the interval must lie strictly inside: an end on the margin is not enough
    d = paired_difference([0.0, 0.0], [0.5, 0.5], higher_is_better=True, margin=0.5)
    assert d.sd == 0 and d.low == d.high == -0.5 and d.verdict == "loss"


@pytest.mark.parametrize("verdict", VERDICTS)
def test_every_verdict_is_reachable(verdict):
    cases = {"win": ([0.0, 0.1, 0.2], [1.0, 1.1, 1.2]), "loss": ([1.0, 1.1, 1.2], [0.0, 0.1, 0.2]),
             "tie": ([1.0, 1.01, 0.99], [1.0, 1.0, 1.0]), "undecided": ([1.0, 2.0, 0.0], [1.0, 1.0, 1.0])}  # fmt: skip
    assert paired_difference(*cases[verdict], higher_is_better=False, margin=0.1).verdict == verdict


def test_diverged_runs_decide():
    assert paired_difference([math.inf, 1.0], [1.0, 1.0], higher_is_better=False).verdict == "loss"
    assert paired_difference([1.0, 1.0], [math.inf, 1.0], higher_is_better=False).verdict == "win"
    assert paired_difference([math.inf], [math.inf], higher_is_better=False, margin=1.0).verdict == "undecided"


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0], [1.0, 2.0], higher_is_better=True)
    with pytest.raises(ValueError, match="Invalid confidence"):
        paired_difference([1.0], [1.0], higher_is_better=True, confidence=1.5)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="Invalid margin value"):
            paired_difference([1.0], [1.0], higher_is_better=True, margin=bad)
