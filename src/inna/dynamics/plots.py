r"""Plot helpers and the figures of :mod:`inna.dynamics` (rendered by ``inna figures --out DIR``).

matplotlib is imported inside the functions only, and figures are built on ``matplotlib.figure.Figure``
(the Agg canvas), so ``import inna.dynamics`` works without matplotlib and no global backend is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .din import Trajectory, integrate_din
from .objectives import Objective

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIGURES",
    "figure_dcriticality",
    "figure_discrete_vs_continuous",
    "figure_energy",
    "figure_stability",
    "figure_toy",
    "plot_contours",
    "plot_energy",
    "plot_trajectory",
]

DPI = 100


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_contours(
    objective: Objective | Callable[[np.ndarray], np.ndarray],
    ax: Axes,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    levels: int | np.ndarray = 30,
    n: int = 200,
    log: bool = False,
) -> None:
    r"""Filled contours of a 2-D objective on ``ax``.

    ``objective`` is an :class:`~inna.dynamics.objectives.Objective` or a vectorised numpy function of an
    array of shape ``(..., 2)``. ``log`` contours :math:`\log_{10}(1 + J - \min J)`.
    """
    x, y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    pts = np.stack([x, y], axis=-1)
    if isinstance(objective, Objective):
        z = objective.values(pts.reshape(-1, 2)).reshape(x.shape)
    else:
        z = np.asarray(objective(pts), dtype=np.float64)
    if log:
        z = np.log10(1 + z - z.min())
    ax.contourf(x, y, z, levels=levels, cmap="Greys_r", alpha=0.4, antialiased=False)
    ax.contour(x, y, z, levels=levels, colors="0.45", linewidths=0.3)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)


def plot_trajectory(traj: Trajectory, ax: Axes, *, label: str | None = None, **kwargs: Any) -> None:
    r"""The path :math:`t \mapsto (\theta_1(t), \theta_2(t))` of a 2-D trajectory (or iterates) on ``ax``."""
    if traj.theta.shape[1] != 2:
        raise ValueError(f"plot_trajectory needs a 2-D problem, got dimension {traj.theta.shape[1]}")
    ax.plot(traj.theta[:, 0], traj.theta[:, 1], label=label, **kwargs)


def plot_energy(traj: Trajectory, axes: tuple[Axes, Axes, Axes], inf_value: float | None = None) -> None:
    r"""Three panels: :math:`E(t)` and :math:`J(t)`; measured vs predicted :math:`dE/dt`; the :math:`O(1/t)` bound."""
    ax1, ax2, ax3 = axes
    gap = (1 + traj.alpha * traj.beta) * (traj.objective.inf if inf_value is None else inf_value)
    ax1.semilogy(traj.t, traj.energy - gap, label=r"$E - (1+\alpha\beta)\inf J$")
    ax1.semilogy(
        traj.t,
        (1 + traj.alpha * traj.beta) * (traj.values - gap / (1 + traj.alpha * traj.beta)),
        "--",
        label=r"$(1+\alpha\beta)(J - \inf J)$",
    )
    ax1.set_xlabel("t")
    ax1.set_title("energy is non-increasing")
    ax1.legend(fontsize=8)
    measured = np.gradient(traj.energy, traj.t)
    ax2.semilogy(traj.t, traj.dissipation, lw=3, alpha=0.5, label=r"$\alpha\|\dot\theta\|^2+\beta\|\nabla J\|^2$")
    ax2.semilogy(traj.t, -measured, "k:", label=r"$-dE/dt$ (finite differences of $E$)")
    ax2.set_xlabel("t")
    ax2.set_title("dissipation identity")
    ax2.legend(fontsize=8)
    running, bound = traj.rate_bound(inf_value)
    ax3.loglog(traj.t[1:], running[1:], label=r"$\min_{s\leq t}(\alpha\|\dot\theta\|^2+\beta\|\nabla J\|^2)$")
    ax3.loglog(traj.t[1:], bound[1:], "--", label=r"$(E_0-(1+\alpha\beta)\inf J)/t$")
    ax3.set_xlabel("t")
    ax3.set_title("sublinear rate bound")
    ax3.legend(fontsize=8)


# ---------------------------------------------------------------------------------------------------------
# The figures of the issue. Each takes the output directory and returns the written path.


def figure_energy(out: Path) -> Path:
    """DIN on Rosenbrock: path, energy decay, dissipation identity, O(1/t) bound."""
    from .objectives import rosenbrock

    obj = rosenbrock()
    traj = integrate_din(obj, [-1.5, 2.0], 20.0, alpha=0.5, beta=0.1, n_points=2001)
    fig = _figure(15, 3.6)
    axes = fig.subplots(1, 4)
    plot_contours(obj, axes[0], (-2, 2), (-1, 3), levels=np.linspace(0, 4, 25), log=True)
    plot_trajectory(traj, axes[0], color="C3", lw=1.5)
    axes[0].plot(*traj.theta[0], "kx")
    axes[0].plot(1, 1, "r*")
    axes[0].set_title(r"DIN on Rosenbrock, $\alpha=0.5$, $\beta=0.1$")
    plot_energy(traj, (axes[1], axes[2], axes[3]))
    return _save(fig, out / "din_energy.png")


def figure_discrete_vs_continuous(out: Path) -> Path:
    """INNA iterates at three steps beside the DIN solution, and the error against the step."""
    from .discrete import inna_trajectory, tracking_errors
    from .objectives import log_cosh

    obj = log_cosh([3.0, 1.0], [0.5, -0.5])
    theta0, horizon = [-1.0, 1.0], 8.0
    ref = integrate_din(obj, theta0, horizon, alpha=0.5, beta=0.1, method="DOP853", rtol=1e-11, atol=1e-12)
    fig = _figure(11, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    plot_contours(obj, ax1, (-1.3, 1.3), (-1.3, 1.3))
    plot_trajectory(ref, ax1, color="k", lw=2, label="DIN (DOP853)")
    for lr, c in ((0.1, "C3"), (0.05, "C1"), (0.025, "C2")):
        it = inna_trajectory(obj, theta0, lr, round(horizon / lr), alpha=0.5, beta=0.1)
        ax1.plot(it.theta[:, 0], it.theta[:, 1], "o-", ms=2.5, lw=0.8, color=c, label=rf"INNA, $\gamma={lr}$")
    ax1.legend(fontsize=8)
    ax1.set_title(r"INNA iterates vs DIN (log-cosh, $t\in[0,8]$)")
    lrs = np.array([0.1, 0.05, 0.025, 0.0125, 0.00625])
    err = tracking_errors(obj, theta0, horizon, lrs, alpha=0.5, beta=0.1)
    ax2.loglog(lrs, err, "o-", label=r"$\max_{k\gamma\leq 8}\|\theta_k-\theta(k\gamma)\|$")
    ax2.loglog(lrs, err[-1] * lrs / lrs[-1], "k--", label=r"slope 1 ($O(\gamma)$)")
    ax2.set_xticks(lrs, [f"{x:g}" for x in lrs])
    ax2.minorticks_off()
    ax2.set_xlabel(r"step $\gamma$ ($\leq\beta$, the stable range)")
    ax2.set_title("global error is first order: halving the step halves it")
    ax2.legend(fontsize=8)
    return _save(fig, out / "discrete_vs_continuous.png")


def figure_stability(out: Path) -> Path:
    """Stability map of INNA in (lr/beta, beta^2 h), and spectral radius vs curvature beside heavy ball."""
    from .stability import heavy_ball_spectral_radius, spectral_radius

    fig = _figure(12, 4.4)
    ax1, ax2 = fig.subplots(1, 2)
    r = np.linspace(0.01, 3.0, 300)
    kappa = np.logspace(-3, 3, 300)
    R, K = np.meshgrid(r, kappa)
    beta, alpha = 0.1, 0.5
    rho = spectral_radius(R * beta, alpha, beta, K / beta**2)
    im = ax1.pcolormesh(R, K, np.minimum(rho, 1.2), cmap="viridis", shading="auto")
    fig.colorbar(im, ax=ax1, label=r"spectral radius $\rho$ (clipped at 1.2)")
    for ab, style in ((0.0, ":"), (0.05, "-"), (0.5, "--")):
        a = ab / beta
        ax1.contour(
            R,
            K,
            spectral_radius(R * beta, a, beta, K / beta**2),
            levels=[1.0],
            colors="w",
            linestyles=style,
            linewidths=1.2,
        )
        ax1.plot([], [], "k" + style, label=rf"$\rho=1$, $\alpha\beta={ab}$")
    ax1.axvline(1.0, color="r", lw=1)
    ax1.set_yscale("log")
    ax1.set_xlabel(r"$\gamma/\beta$")
    ax1.set_ylabel(r"$\beta^2 h$")
    ax1.set_title(r"INNA stable where $\rho<1$ (colour: $\alpha\beta=0.05$); red: $\gamma=\beta$")
    ax1.legend(fontsize=8, loc="lower left")
    h = np.logspace(-2, 4, 600)
    for lr, c in ((0.05, "C0"), (0.1, "C1"), (0.15, "C3")):
        ax2.semilogx(h, spectral_radius(lr, alpha, beta, h), color=c, label=rf"INNA $\gamma={lr}$")
        ax2.semilogx(
            h,
            heavy_ball_spectral_radius(lr * beta, 1 - lr * alpha, h),
            ":",
            color=c,
            label=rf"heavy ball $\mu=1-{lr}\alpha$, $\eta={lr}\beta$",
        )
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.set_ylim(0.6, 1.3)
    ax2.set_xlabel("curvature h")
    ax2.set_ylabel(r"$\rho$")
    ax2.set_title(r"$\alpha=0.5$, $\beta=0.1$: $\gamma>\beta$ fails from $h=\alpha/(\gamma-\beta)$")
    ax2.legend(fontsize=7, ncol=1)
    return _save(fig, out / "stability.png")


def figure_toy(out: Path, progress_callback: Callable[[], None] | None = None) -> Path:
    """The paper's 2-D picture: three INNA settings, GD and heavy ball on the nonsmooth Rosenbrock."""
    from .toy import TOY_LR, TOY_MINIMUM, TOY_SETTINGS, TOY_START, crossings_label, run_toy

    def j(pts: np.ndarray) -> np.ndarray:
        return 100 * (pts[..., 1] - np.abs(pts[..., 0])) ** 2 + np.abs(1 - pts[..., 0])

    runs = [(rf"INNA $\alpha={a}$, $\beta={b}$", run_toy("inna", alpha=a, beta=b)) for a, b in TOY_SETTINGS]
    runs.append(("gradient descent", run_toy("gd")))
    runs.append((r"heavy ball (DIN with $\beta=0$, $\alpha=0.5$)", run_toy("heavy_ball", alpha=0.5)))
    fig = _figure(15, 8)
    axes = fig.subplots(2, 3).ravel()
    levels = np.linspace(0, np.log10(1 + 300), 16)
    for ax, (title, path), c in zip(axes, runs, ("C3", "C0", "C2", "C1", "C4")):
        plot_contours(j, ax, (-2.2, 2.2), (-0.2, 2.2), levels=levels, n=160, log=True)
        ax.plot(path[::2, 0], path[::2, 1], color=c, lw=1)
        ax.plot(*TOY_START, "kx", ms=9, mew=2)
        ax.plot(*TOY_MINIMUM, "rx", ms=9, mew=2)
        ax.set_title(f"{title}\n{crossings_label(path)}", fontsize=10)
        if progress_callback is not None:
            progress_callback()
    ax = axes[-1]
    t = TOY_LR * np.arange(len(runs[0][1]))
    for (title, path), c in zip(runs, ("C3", "C0", "C2", "C1", "C4")):
        # every 10th iterate: the O(gamma) chatter at the kink of |1 - theta_1| is left out of the picture
        dist = np.linalg.norm(path - np.array(TOY_MINIMUM), axis=1)
        ax.semilogy(t[::10], dist[::10] + 1e-6, color=c, label=title)
    ax.set_xlabel(r"time $t=k\gamma$ ($\gamma=10^{-3}$)")
    ax.set_title(r"distance to $(1,1)$")
    ax.legend(fontsize=7)
    return _save(fig, out / "toy.png")


def figure_dcriticality(out: Path) -> Path:
    """D-critical but not critical: the 1-D ReLU pair and the one-neuron ReLU network."""
    from .dcriticality import backprop_gradient, minibatch_run, relu_network_losses, relu_pair_losses, total_loss

    fig = _figure(15, 4.2)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    losses = relu_pair_losses()
    th = np.linspace(-2, 1, 601)
    th = np.sort(np.append(th, 0.0))
    ax1.plot(
        th,
        [total_loss(losses, [x]) for x in th],
        "k",
        label=r"$J=\mathrm{ReLU}(\theta)-\mathrm{ReLU}(-\theta)"
        r"+\theta^2/2$",
    )
    ax1.plot(th, 1 + th, "C0", lw=5, alpha=0.4, label=r"$J'(\theta)=1+\theta$")
    bp = np.array([backprop_gradient(losses, [x])[0] for x in th])
    ax1.plot(th, bp, "C3.", ms=2, label="backprop (full batch)")
    ax1.plot([0], [0], "C3o", ms=8, mfc="none", mew=2)
    ax1.annotate(
        "backprop = 0 at the D-critical point 0", (0, 0), (-1.9, 1.3), fontsize=8, arrowprops=dict(arrowstyle="->")
    )
    ax1.set_xlabel(r"$\theta$")
    ax1.set_title("1-D: D-critical, not critical")
    ax1.legend(fontsize=7, loc="lower right")
    rng = np.random.default_rng(0)
    starts = [0.0, *rng.uniform(-2, 2, 3)]
    for i, s in enumerate(starts):
        for method, style in (("sgd", "-"), ("inna", "--")):
            path = minibatch_run(losses, [s], method=method, n_steps=1000, seed=i)
            ax2.plot(
                path[:, 0],
                style,
                color=f"C{i}",
                lw=1,
                label=f"{method.upper()} from {s:+.2f}" if method == "sgd" or i == 0 else None,
            )
    ax2.axhline(-1, color="k", lw=0.6)
    ax2.set_xlabel("iteration (mini-batch size 1, $\\gamma_k=0.1/\\sqrt{k+1}$)")
    ax2.set_ylabel(r"$\theta_k$")
    ax2.set_title("SGD —, INNA - -: stuck at 0, not elsewhere")
    ax2.legend(fontsize=7)
    net = relu_network_losses()
    w, v = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-2, 2, 200))
    z = (v * np.maximum(w, 0) - 1) ** 2 + (v * np.maximum(-w, 0) + 1) ** 2
    ax3.contourf(w, v, np.log10(z), levels=30, cmap="Greys_r", alpha=0.55)
    ax3.axvline(0, color="C3", lw=2, alpha=0.6, label=r"$w=0$: D-critical, $\nabla J=(-2v, 0)$")
    ww = np.linspace(0.45, 2, 50)
    ax3.plot(ww, 1 / ww, "C2", lw=1, label="minimisers $vw=1$")
    ax3.plot(-ww, -1 / ww, "C2", lw=1)
    starts2 = [np.array([0.0, 1.0]), *rng.normal(0, 0.8, (3, 2))]
    for i, s in enumerate(starts2):
        for method, style in (("sgd", "-"), ("inna", "--")):
            path = minibatch_run(net, s, method=method, n_steps=1000, seed=i)
            ax3.plot(path[:, 0], path[:, 1], style, color=f"C{i}", lw=1)
            ax3.plot(*path[-1], "o", color=f"C{i}", ms=4)
    ax3.set_xlim(-2, 2)
    ax3.set_ylim(-2, 2)
    ax3.set_xlabel("w")
    ax3.set_ylabel("v")
    ax3.set_title(r"ReLU net $v\,\mathrm{ReLU}(wx)$, data $(\pm1,\pm1)$")
    ax3.legend(fontsize=7, loc="lower right")
    return _save(fig, out / "dcriticality.png")


def _save(fig: Figure, path: Path) -> Path:
    """Save as a 256-colour palette PNG (plots need no more; files are 3-4x smaller)."""
    import io

    from PIL import Image  # a dependency of matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


#: name -> function(out_dir) -> path, in the order ``inna figures`` renders them.
FIGURES: dict[str, Callable[[Path], Path]] = {
    "din_energy": figure_energy,
    "discrete_vs_continuous": figure_discrete_vs_continuous,
    "stability": figure_stability,
    "toy": figure_toy,
    "dcriticality": figure_dcriticality,
}
