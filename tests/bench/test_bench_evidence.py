"""Issue 11: grid extension in the protocol, paired verdicts and the new figures in the report, the GPU suite on
fixture data, the harness's vocabulary from the registries, and the evaluation's speed-ups changing nothing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from bench_fixtures import make_cifar10_dir, make_idx_dir

from inna.bench import execution as E
from inna.bench import report as REP
from inna.bench import training as T
from inna.bench.optimizers import INNA_FAMILIES, OPTIMIZERS, OptimizerSpec, inna_spec
from inna.bench.protocol import run_suite
from inna.bench.records import read_records
from inna.bench.suites import SUITES, Suite, Task
from inna.cli import build_parser, main

TASK = Task("digits-mlp", "digits", "mlp", epochs=2, tune_epochs=1, train_subset=200, test_subset=50)

# where each synthetic optimizer's training loss is lowest (γ₀), and its per-seed offset of the final loss
TARGETS = {"LOW": 0.003, "HIGH": 10.0, "FAR": 1e-6, "BASE": 0.3}
SEED_OFFSET = {"LOW": (0.5, 0.6, 0.7), "BASE": (1.0, 1.2, 1.1)}


def _spec(label: str, family: str = "inna") -> OptimizerSpec:
    """A spec of its own (α differs: the run identity has the options, not the label) on INNA's grid."""
    base = inna_spec(0.1 * (1 + list(TARGETS).index(label)), 0.1) if family == "inna" else OPTIMIZERS["adam"]
    return OptimizerSpec(label, family, dict(base.options), base.power, OPTIMIZERS["inna"].grid)


def fake_train_run(calls: list[Any]) -> Any:
    """A stand-in for training: the final training loss is a parabola in log10(γ₀) around the optimizer's target,
    plus a per-seed offset on the full runs; records exactly as the real loop writes them."""

    def run(cfg: Any, emit: Any, checkpoint_dir: Any, log: Any = None) -> dict[str, Any]:
        calls.append(cfg)
        label = cfg.optimizer.name
        base = cfg.summary()
        emit({"type": "run_start", **base, "config": cfg.to_json()})
        loss = 1.0 + (math.log10(cfg.lr) - math.log10(TARGETS[label])) ** 2
        if cfg.epochs == TASK.epochs:
            loss = SEED_OFFSET.get(label, (2.0, 2.0, 2.0))[cfg.seed]
        for e in range(cfg.epochs + 1):
            emit({"type": "epoch", **base, "epoch": e, "steps": 7 * e, "train_loss": 2.3 if e == 0 else loss,
                  "train_acc": 0.5, "test_loss": 2.0, "test_acc": 0.9 - loss / 10, "wall_time": 0.1 * e,
                  "lr_now": cfg.lr})  # fmt: skip
        end = {"type": "run_end", **base, "status": "completed", "epochs": cfg.epochs, "steps": 7 * cfg.epochs,
               "wall_time": 0.1 * cfg.epochs}  # fmt: skip
        emit(end)
        return end

    return run


def quiet(*_: Any) -> None:
    pass


def test_grid_extends_past_either_edge_until_interior_or_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(E, "train_run", fake_train_run(calls))
    suite = Suite("ext", "grid extension", (TASK,), (_spec("LOW"), _spec("HIGH"), _spec("FAR")), seeds=1)
    sel = {s["optimizer"]: s for s in run_suite(suite, tmp_path, progress=False, log=quiet)}
    # below the grid 0.03..3: 0.01, 0.003 (the best), 0.001 (worse: the best is now interior)
    assert sel["LOW"]["lr"] == 0.003 and sel["LOW"]["edge"] is None
    assert sorted(float(k) for k in sel["LOW"]["losses"]) == [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    assert sel["HIGH"]["lr"] == 10.0 and sel["HIGH"]["edge"] is None
    assert sorted(float(k) for k in sel["HIGH"]["losses"])[-2:] == [10.0, 30.0]
    # beyond the bound (3 steps): stops at 0.001 and says so
    assert sel["FAR"]["lr"] == 0.001 and sel["FAR"]["edge"] == "low"
    assert sel["FAR"]["initial_grid"] == [0.03, 0.1, 0.3, 1.0, 3.0] and sel["FAR"]["max_extensions"] == 3
    for s in sel.values():  # every probe is a recorded run
        assert len(s["tune_run_ids"]) == len(s["losses"])
    assert len(calls) == 8 + 7 + 8 + 3  # the probes of the three, then one full run each
    text = REP.write_report(tmp_path, figures=False)[0].read_text()
    assert "0.001 (grid-extension bound, low end)" in text
    assert "LOW | 0.003 |" in text

    # resume redoes nothing: no run trains, no record is written
    before = (tmp_path / "results.jsonl").read_bytes()
    calls.clear()
    run_suite(suite, tmp_path, progress=False, log=quiet)
    assert calls == [] and (tmp_path / "results.jsonl").read_bytes() == before


def test_each_pair_goes_on_without_waiting_for_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocol's events: a pair's next probe, and its full runs, start as soon as its own runs finish."""
    batches: list[list[tuple[str, str]]] = []
    real = E.LocalExecutor.submit
    monkeypatch.setattr(E, "train_run", fake_train_run([]))

    def spy(self: Any, configs: list[Any]) -> None:
        batches.append([(c.optimizer.name, "tune" if c.epochs == TASK.tune_epochs else "full") for c in configs])
        real(self, configs)

    monkeypatch.setattr(E.LocalExecutor, "submit", spy)
    suite = Suite("ext", "events", (TASK,), (_spec("LOW"), _spec("HIGH")), seeds=1)
    run_suite(suite, tmp_path, progress=False, log=quiet)
    # both initial grids at once; then one run at a time (this process trains them in turn): LOW's probes 0.01,
    # 0.003, 0.001 and HIGH's 10, 30 interleave, and HIGH's full run starts before LOW's last probe has finished
    assert sorted(batches[0]) == sorted([("LOW", "tune")] * 5 + [("HIGH", "tune")] * 5)
    assert batches[1:] == [[("LOW", "tune")], [("HIGH", "tune")], [("LOW", "tune")], [("HIGH", "tune")],
                           [("LOW", "tune")], [("HIGH", "full")], [("LOW", "full")]]  # fmt: skip


def test_paired_verdicts_in_the_report_match_a_hand_computation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(E, "train_run", fake_train_run([]))
    suite = Suite("v", "verdicts", (TASK,), (_spec("LOW"), _spec("BASE", "adam")), seeds=3, max_extensions=0)
    run_suite(suite, tmp_path, progress=False, log=quiet)
    (task,) = REP.collect(read_records(tmp_path / "results.jsonl"))
    (v,) = REP.verdicts(task)
    assert v.optimizer == "LOW" and v.baseline == "BASE"
    # d = (0.5, 0.6, 0.7) − (1.0, 1.2, 1.1) = (−0.5, −0.6, −0.4): mean −0.5, sd 0.1, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert v.train_loss is not None and v.train_loss.mean == pytest.approx(-0.5)
    assert (v.train_loss.low, v.train_loss.high) == (pytest.approx(-0.5 - half, abs=1e-5),
                                                     pytest.approx(-0.5 + half, abs=1e-5))  # fmt: skip
    assert v.train_loss.verdict == "win"
    # test accuracy 0.9 − loss/10, in points: +5 per 0.5 of loss
    assert v.test_acc is not None and v.test_acc.mean == pytest.approx(5.0) and v.test_acc.verdict == "win"
    text = REP.write_report(tmp_path, figures=False)[0].read_text()
    assert "best baseline, **BASE**" in text and "| LOW | -0.5000 [" in text and "| win |" in text


def test_time_and_steps_figures_have_log_scale_and_labelled_axes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    monkeypatch.setattr(E, "train_run", fake_train_run([]))
    suite = Suite("f", "figures", (TASK,), (_spec("LOW"), _spec("BASE", "adam")), seeds=2, max_extensions=0)
    run_suite(suite, tmp_path, progress=False, log=quiet)
    (task,) = REP.collect(read_records(tmp_path / "results.jsonl"))
    fig = REP.curves_figure(task)
    ax_time, ax_steps = fig.axes
    assert "time" in ax_time.get_xlabel() and "steps" in ax_steps.get_xlabel()
    for ax in (ax_time, ax_steps):
        assert ax.get_ylabel() == "training loss" and ax.get_yscale() == "log"
        assert {line.get_label() for line in ax.get_lines()} == {"LOW", "BASE"}
        assert ax.collections  # the min–max bands
    assert list(ax_steps.get_lines()[0].get_xdata()) == [0, 7, 14]
    plt.close(fig)
    text = REP.write_report(tmp_path)[0].read_text()
    for png in ("digits-mlp.png", "digits-mlp-time-steps.png"):
        assert (tmp_path / "figures" / png).stat().st_size > 1000 and f"figures/{png}" in text


def test_gpu_suite_runs_end_to_end_on_cpu_on_fixture_data(tmp_path: Path) -> None:
    data = make_idx_dir(tmp_path / "data" / "fashion-mnist", n_train=40, n_test=20).parent
    make_cifar10_dir(data, per_batch=8, n_test=16)  # cifar100 absent: its task is skipped
    out = tmp_path / "o"
    argv = ["bench", "--suite", "gpu-paper", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            "--width", "0.05", "--epochs", "1", "--tune-epochs", "1", "--seeds", "1", "--grid-points", "2",
            "--grid-extensions", "1", "--optimizers", "inna", "adam", "--workers", "1", "--no-progress",
            "--no-figures"]  # fmt: skip
    assert main(argv) == 0
    records = read_records(out / "results.jsonl")
    sels = [r for r in records if r["type"] == "selection"]
    assert {s["task"] for s in sels} == {"fashion-nin", "cifar10-nin"}
    starts = [r for r in records if r["type"] == "run_start"]
    assert {r["config"]["model"] for r in starts} == {"nin"} and {r["config"]["batch_size"] for r in starts} == {32}
    assert next(r for r in starts if r["optimizer"] == "INNA(0.5,0.1)")["config"]["optimizer"]["power"] == 0.5
    assert all(r["status"] == "completed" for r in records if r["type"] == "run_end")


def test_gpu_suite_definition() -> None:
    suite = SUITES["gpu-paper"]
    assert suite.workers is not None and suite.workers > 1
    assert {t.model for t in suite.tasks} == {"nin"} and {t.width for t in suite.tasks} == {1.0}
    assert {t.batch_size for t in suite.tasks} == {32} and suite.tasks[0].train_subset is None
    assert suite.optional_datasets == {"cifar10", "cifar100"}


def test_quick_suite_shows_the_recommended_inna_and_innaprop_beside_the_papers() -> None:
    quick = SUITES["quick"].optimizers
    assert quick[:3] == ("inna", "inna-guidance", "innaprop")
    assert "guidance.md" in OPTIMIZERS["inna-guidance"].note and "paper" in OPTIMIZERS["inna"].note
    assert REP.INNA_FAMILIES == INNA_FAMILIES  # the report's copy (no torch import there) agrees


def test_cli_vocabulary_comes_from_the_registries(capsys: pytest.CaptureFixture[str]) -> None:
    from inna.bench.data import DATASETS
    from inna.bench.models import MODELS

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]  # type: ignore[union-attr]
    choices = {a.dest: a.choices for a in bench._actions}
    assert list(choices["suite"]) == list(SUITES) and list(choices["model"]) == list(MODELS)
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for name in (*SUITES, *OPTIMIZERS, *DATASETS):
        assert name in out
    assert OPTIMIZERS["inna-guidance"].name in out


def test_task_and_suite_validate_their_values() -> None:
    with pytest.raises(ValueError, match="Invalid epochs value: 0"):
        Task("t", "digits", "mlp", epochs=0, tune_epochs=1)
    with pytest.raises(ValueError, match="Unknown model 'lenet'; allowed values: nin"):
        Task("t", "digits", "lenet", epochs=1, tune_epochs=1)
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        Task("t", "svhn", "mlp", epochs=1, tune_epochs=1)
    with pytest.raises(ValueError, match="Invalid width value"):
        Task("t", "digits", "mlp", epochs=1, tune_epochs=1, width=0.0)
    with pytest.raises(ValueError, match="same label"):
        Suite("s", "", (TASK,), ("inna", "inna:alpha=0.5"))
    with pytest.raises(ValueError, match="Invalid max_extensions value"):
        Suite("s", "", (TASK,), ("inna",), max_extensions=-1)
    with pytest.raises(ValueError, match="Unknown optimizer 'lamb'"):
        Suite("s", "", (TASK,), ("lamb",))


def test_sweep_passes_spec_objects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inna.bench import protocol, sweep

    seen: dict[str, Any] = {}

    def capture(suite: Suite, *args: Any, **kw: Any) -> None:
        seen["suite"] = suite
        raise RuntimeError("stop")

    monkeypatch.setattr(protocol, "run_suite", capture)
    with pytest.raises(RuntimeError, match="stop"):
        sweep.run_sweep(TASK, tmp_path, alphas=(0.1,), betas=(0.5,), powers=(0.25,), grid=(0.1, 1.0))
    spec = seen["suite"].optimizers[0]
    assert isinstance(spec, OptimizerSpec) and spec.name == "INNA(0.1,0.5,q=0.25)" and spec.grid == (0.1, 1.0)
    assert spec.options == {"alpha": 0.1, "beta": 0.5, "initial_speed": 1.0} and spec.power == 0.25


def test_evaluation_batching_changes_only_the_rounding() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    x, y = torch.randn(203, 5), torch.randint(0, 3, (203,))
    loss, acc = T.evaluate(model, x, y)
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-6)
    assert acc == int((logits.argmax(1) == y).sum()) / 203
    assert T.evaluate(model, x, y, batch=7) == (pytest.approx(loss, rel=1e-6), acc)
    assert T.eval_batch_size("cpu") < T.eval_batch_size("cuda")
