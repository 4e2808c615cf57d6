"""``inna figures``, the plot helpers, and the lazy matplotlib import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from inna.cli import main
from inna.dynamics import integrate_din, rosenbrock
from inna.dynamics.plots import FIGURES, plot_energy, plot_trajectory

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_figures_command_writes_pngs(tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path / "f"), "--only", "stability", "dcriticality", "--no-progress"]) == 0
    for name in ("stability", "dcriticality"):
        data = (tmp_path / "f" / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and 5_000 < len(data) < 300_000
    assert "2 figure(s)" in capsys.readouterr().out


def test_figures_command_lists_every_figure_and_rejects_unknown(capsys):
    assert list(FIGURES) == ["din_energy", "discrete_vs_continuous", "stability", "toy", "dcriticality"]
    with pytest.raises(SystemExit):
        main(["figures", "--out", "x", "--only", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_import_does_not_pull_matplotlib():
    code = "import sys, inna.dynamics; print('matplotlib' in sys.modules, 'inna.dynamics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    code = "import sys, inna; print(any(m.startswith('inna.dynamics') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # the core never imports dynamics


def test_plot_helpers_draw_what_they_are_given():
    from matplotlib.figure import Figure

    traj = integrate_din(rosenbrock(), [-1.0, 1.0], 2.0, n_points=50)
    fig = Figure()
    axes = fig.subplots(1, 4)
    plot_trajectory(traj, axes[0])
    np.testing.assert_array_equal(axes[0].lines[0].get_xydata(), traj.theta)
    plot_energy(traj, tuple(axes[1:]))
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), traj.energy)
    one_d = integrate_din(rosenbrock(), [-1.0, 1.0], 1.0, n_points=5)
    one_d.theta = one_d.theta[:, :1]
    with pytest.raises(ValueError, match="needs a 2-D problem"):
        plot_trajectory(one_d, axes[0])
