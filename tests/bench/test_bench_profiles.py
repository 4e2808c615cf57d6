"""Time to target and performance profiles (inna.bench.profiles) against hand computations."""

from __future__ import annotations

import math

import pytest

from inna.bench.evidence import OptimizerResult, TaskResult
from inna.bench.profiles import (
    TARGET_FACTOR,
    profile,
    profile_score,
    reach,
    task_target,
    time_to_target,
)
from inna.bench.records import RunRecords


def run(seed: int, losses: list[float | None], status: str = "completed", steps: int = 10) -> RunRecords:
    """A run whose epoch e ends at ``e * steps`` steps and ``e * 0.5`` s with training loss ``losses[e]``."""
    epochs = {e: {"epoch": e, "steps": e * steps, "wall_time": 0.5 * e, "train_loss": v, "test_acc": 0.5}
              for e, v in enumerate(losses)}  # fmt: skip
    start = {"seed": seed, "config": {"epochs": len(losses) - 1}}
    end = {"status": status, "epochs": len(losses) - 1, "steps": steps * (len(losses) - 1), "wall_time": 1.0}
    return RunRecords(f"r{seed}-{id(losses)}", start, epochs, end)


def test_reach_is_the_first_epoch_end_at_or_below_the_target() -> None:
    r = run(0, [2.3, 1.0, 0.5, 0.7, 0.4])
    assert reach(r, 0.5) == (20, 1.0) and reach(r, 0.4) == (40, 2.0) and reach(r, 0.3) is None
    assert reach(run(0, [2.3, math.nan, None, 0.2]), 0.3) == (30, 1.5)  # non-finite epochs never count


def test_time_to_target_is_the_median_over_seeds_with_never_as_infinity() -> None:
    three = [run(0, [2.0, 1.0, 0.5]), run(1, [2.0, 0.5, 0.4]), run(2, [2.0, 1.0, 0.9])]
    t = time_to_target(three, 0.5)  # steps 20, 10, never → median 20
    assert (t.steps, t.seconds, t.reached, t.runs) == (20, 1.0, 2, 3)
    assert t.cell() == "20 steps, 1.0 s (2/3 seeds)"
    none = time_to_target(three, 0.45)  # 10 steps on one seed only: the median is never
    assert none.steps is None and none.cell() == "— (1/3 seeds)"
    two = time_to_target(three[:2], 0.5)  # (20 + 10) / 2
    assert two.steps == 15 and two.cell() == "15 steps, 0.8 s"


def test_profile_ratios_and_scores_match_a_hand_computation() -> None:
    costs = {"t1": {"A": 100, "B": 200, "C": None}, "t2": {"A": 300, "B": 100, "C": 150},
             "nobody": {"A": None, "B": None, "C": None}}  # fmt: skip
    ratios = profile(costs)
    assert ratios == {"A": [1.0, 3.0], "B": [2.0, 1.0], "C": [math.inf, 1.5]}  # the unsolved task is left out
    # area under ρ(τ) on [1, 4] / 3: A (3 + 1) / 6, B (2 + 3) / 6, C (0 + 2.5) / 6
    assert profile_score(ratios["A"]) == pytest.approx(4 / 6)
    assert profile_score(ratios["B"]) == pytest.approx(5 / 6)
    assert profile_score(ratios["C"]) == pytest.approx(2.5 / 6)
    for rs in ratios.values():  # the same area by integrating the step function ρ(τ) numerically
        taus = [1 + 3 * (i + 0.5) / 30000 for i in range(30000)]
        area = sum(sum(r <= t for r in rs) / len(rs) for t in taus) * 3 / 30000
        assert profile_score(rs) == pytest.approx(area / 3, abs=1e-3)
    assert profile_score([1.0, 1.0]) == 1.0 and profile_score([math.inf, 5.0]) == 0.0


def _opt(name: str, family: str, finals: list[float]) -> OptimizerResult:
    return OptimizerResult(name, 0.1, {"0.1": 1.0}, [run(s, [2.0, v]) for s, v in enumerate(finals)], family=family)


def test_the_default_target_is_a_stated_factor_of_the_best_baselines_mean() -> None:
    task = TaskResult("t", 1, 1, [_opt("INNA", "inna", [0.1, 0.1]), _opt("SGD", "sgd", [0.4, 0.6]),
                                  _opt("Adam", "adam", [0.2, 0.4])])  # fmt: skip
    target, how = task_target(task)
    assert target == pytest.approx(TARGET_FACTOR * 0.3) and how == "1.1 × Adam's mean final training loss"
    assert task_target(task, 0.7) == (0.7, "given")
    task.target_loss = 0.5
    assert task_target(task) == (0.5, "the suite's")
    diverged = TaskResult("t", 1, 1, [_opt("SGD", "sgd", [math.inf, 0.2])])
    assert task_target(diverged) == (None, "the best baseline diverged")
