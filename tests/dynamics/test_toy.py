"""The paper's 2-D picture, quantified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inna.dynamics import run_toy, toy_function, toy_objective, valley_crossings
from inna.dynamics.toy import TOY_LR, TOY_SETTINGS, crossing_counts, crossings_label, left_branch, progress


@pytest.fixture(scope="module")
def paths():
    return {setting: run_toy("inna", alpha=setting[0], beta=setting[1]) for setting in TOY_SETTINGS}


def first_time_within(path, radius):
    d = np.linalg.norm(path - np.array([1.0, 1.0]), axis=1)
    return TOY_LR * int(np.argmax(d < radius))


@pytest.mark.slow
def test_all_three_settings_reach_the_minimum(paths):
    for setting, path in paths.items():
        # settled: the last 2 time units (2000 steps) stay within 0.005 of (1, 1)
        assert np.all(np.linalg.norm(path[-2000:] - [1.0, 1.0], axis=1) < 0.005), setting


@pytest.mark.slow
def test_small_beta_zigzags_across_the_valley_and_beta_01_does_not(paths):
    zigzag = valley_crossings(left_branch(paths[(0.5, 0.01)]))
    smooth = valley_crossings(left_branch(paths[(0.5, 0.1)]))
    assert zigzag >= 10
    assert smooth == 0
    assert valley_crossings(left_branch(paths[(1.3, 0.1)])) == 0
    # over the whole run, beta = 0.1 never leaves the valley by more than 0.03; beta = 0.01 by 0.35
    gap = {s: np.abs(p[1000:, 1] - np.abs(p[1000:, 0])).max() for s, p in paths.items()}
    assert gap[(0.5, 0.1)] < 0.03 and gap[(1.3, 0.1)] < 0.03
    assert np.min(paths[(0.5, 0.01)][:, 1] - np.abs(paths[(0.5, 0.01)][:, 0])) < -0.3
    assert valley_crossings(paths[(0.5, 0.01)], tol=0.03) >= 8
    assert valley_crossings(paths[(0.5, 0.1)], tol=0.03) == 0


@pytest.mark.slow
def test_more_friction_progresses_more_slowly(paths):
    slow, fast = paths[(1.3, 0.1)], paths[(0.5, 0.1)]
    assert first_time_within(slow, 0.05) > first_time_within(fast, 0.05) + 1.0
    assert np.all(progress(slow, times=(3.0, 4.0, 5.0)) > progress(fast, times=(3.0, 4.0, 5.0)))


def test_toy_function_and_its_autograd_selection():
    obj = toy_objective()
    assert obj.value([1.0, 1.0]) == 0.0
    assert obj.value([-1.0, 1.5]) == pytest.approx(100 * 0.25 + 2)
    x = np.array([-0.4, 0.9])
    d = x[1] - abs(x[0])
    np.testing.assert_allclose(obj.gradient(x), [200 * d - 1, 200 * d])  # d/dth1 of -|th1| is +1 for th1 < 0
    np.testing.assert_allclose(obj.gradient([0.0, 0.0]), [-1.0, 0.0])  # abs'(0) = 0: the selection
    assert toy_function(torch.tensor([[1.0, 1.0], [0.0, 0.0]])).tolist() == [0.0, 1.0]


def test_valley_crossings_counts_sign_changes():
    path = np.array([[-1.0, 1.5], [-1.0, 0.9], [-1.0, 1.1], [-1.0, 1.0005], [-1.0, 0.8]])
    # d = theta_2 - |theta_1| = 0.5, -0.1, 0.1, (0.0005 ignored), -0.2
    assert valley_crossings(path) == 3
    assert valley_crossings(path, tol=0.15) == 1


def test_gd_and_heavy_ball_short_runs_and_errors():
    gd = run_toy("gd", time=0.01, lr=1e-3)
    np.testing.assert_allclose(gd[1], np.array([-1.0, 1.5]) - 1e-3 * toy_objective().gradient([-1.0, 1.5]))
    hb = run_toy("heavy_ball", time=0.002, lr=1e-3)
    assert hb.shape == (3, 2)
    with pytest.raises(ValueError, match="method must be 'inna', 'gd' or 'heavy_ball'"):
        run_toy("adam")
    with pytest.raises(ValueError, match="lr must be finite and > 0"):
        run_toy(lr=0.0)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "dynamics.md"


def documented_counts() -> dict[str, tuple[int, int]]:
    """run name → (left-branch crossings, whole-run crossings) from the table in docs/dynamics.md §5."""
    section = DOCS.read_text(encoding="utf-8").split("## 5. The 2-D picture", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) == 4 and cells[1].isdigit():
            out[cells[0]] = (int(cells[1]), int(cells[2].split()[0]))
    return out


@pytest.mark.slow
def test_docs_table_and_figure_titles_give_the_true_crossing_counts(paths):
    """The figure's titles counted 19/1/1/0/73 where the docs said 16/0/0/0/16 and 9/0/0/0/103."""
    runs = {f"INNA α = {a}, β = {b}": paths[a, b] for a, b in TOY_SETTINGS}
    runs["gradient descent"] = run_toy("gd")
    runs["heavy ball"] = run_toy("heavy_ball", alpha=0.5)
    documented = documented_counts()
    assert set(documented) == set(runs)
    for name, path in runs.items():
        assert crossing_counts(path) == documented[name], name
        left, whole = documented[name]
        assert crossings_label(path).startswith(f"valley crossings: {left} on the left branch, {whole} in all")


def test_figure_titles_use_the_documented_counts(monkeypatch, tmp_path):
    from inna.dynamics import plots, toy

    fake = np.array([[-1.0, 1.5], [-1.0, 0.9], [-0.5, 0.6], [-0.5, 0.4], [0.2, 0.3]])
    monkeypatch.setattr(toy, "run_toy", lambda *a, **k: fake)
    monkeypatch.setattr(plots, "plot_contours", lambda *a, **k: None)
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.figure_toy(tmp_path)
    titles = [ax.get_title() for ax in figures[0].axes[:5]]
    assert all(t.endswith("\n" + crossings_label(fake)) for t in titles), titles
