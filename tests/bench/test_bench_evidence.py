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
from inna.bench.evidence import Margin
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
    suite = Suite("ext", "grid extension", (TASK,), (_spec("LOW"), _spec("HIGH"), _spec("FAR")), seeds=1,
                  default_lr=False)  # fmt: skip
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
    suite = Suite("ext", "events", (TASK,), (_spec("LOW"), _spec("HIGH")), seeds=1, default_lr=False)
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
    assert SUITES["quick"].seeds >= 3 and SUITES["quick"].default_lr  # paired verdicts need more than 2 seeds
    assert "at most 3 minutes on 2 cores" in SUITES["quick"].description  # the budget, in `inna bench --help`
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


def test_report_opens_with_time_to_target_and_the_profile_and_counts_the_tuning_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(E, "train_run", fake_train_run([]))
    # LOW's grid is extended three times below 0.03, BASE's best is interior: the table says how many were tried
    suite = Suite("p", "profile", (TASK,), (_spec("LOW"), _spec("BASE", "adam")), seeds=3)
    run_suite(suite, tmp_path, progress=False, log=quiet)
    path, summary = REP.write_report(tmp_path)
    text = path.read_text()
    assert summary.startswith("## Across tasks: time to target and performance profile")
    # BASE's finals are 1.0, 1.2, 1.1: target 1.1 × 1.1 = 1.21, reached by every seed at epoch 1 (7 steps); LOW's
    # finals 0.5–0.7 reach it at the same epoch: both are the fastest, a score of 1
    assert "Targets: digits-mlp ≤ 1.21 (1.1 × BASE's mean final training loss)" in text
    assert "| LOW | 7 steps, 0.1 s | 1.00 |" in text and "| BASE | 7 steps, 0.1 s | 1.00 |" in text
    assert "![performance profile over 1 task(s)](figures/profile.png)" in text and "How to read it" in text
    assert (tmp_path / "figures" / "profile.png").read_bytes()[:4] == b"\x89PNG"
    assert text.index("## Across tasks") < text.index("## digits-mlp")
    assert "| LOW | 0.003 | 8 (5 + 3) † |" in text and "| BASE | 0.3 | 5 |" in text
    assert "† tried more γ₀ values than the optimizer with the fewest (5)" in text
    # margins stated; LOW wins on loss (−0.5 [−0.75, −0.25] is outside ±0.11) and on accuracy
    assert "Margins: ±0.11 training loss (10 % of BASE's mean final training loss) and ±1 point(s)" in text
    assert "| LOW | -0.5000 [-0.7484, -0.2516] | win |" in text


def test_undecided_names_the_seeds_and_a_larger_margin_turns_it_into_a_tie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = {"LOW": (1.0, 1.3, 0.9), "BASE": (1.0, 1.2, 1.1)}  # d = (0, 0.1, −0.2): mean −0.033, interval ±0.38
    monkeypatch.setattr(E, "train_run", fake_train_run([]))
    monkeypatch.setitem(SEED_OFFSET, "LOW", offsets["LOW"])
    suite = Suite("u", "undecided", (TASK,), (_spec("LOW"), _spec("BASE", "adam")), seeds=3, max_extensions=0)
    run_suite(suite, tmp_path, progress=False, log=quiet)
    (task,) = REP.collect(read_records(tmp_path / "results.jsonl"))
    (v,) = REP.verdicts(task)
    assert v.train_loss is not None and v.train_loss.verdict == "undecided" and v.loss_margin == pytest.approx(0.11)
    text = REP.write_report(tmp_path, figures=False)[0].read_text()
    assert "| undecided (n = 3) |" in text and "(3 seed(s))" in text
    (wide,) = REP.verdicts(task, Margin(loss_fraction=0.5, acc_points=50))
    assert wide.train_loss is not None and wide.train_loss.verdict == "tie" and wide.loss_margin == pytest.approx(0.55)
    assert wide.test_acc is not None and wide.test_acc.verdict == "tie"


def test_default_lrs_are_the_library_classes_own_defaults() -> None:
    import inspect

    import inna
    from inna.bench.optimizers import DEFAULT_LRS

    classes = {"inna": inna.INNA, "innaprop": inna.INNAprop, "sgd": torch.optim.SGD, "sgd-momentum": torch.optim.SGD,
               "adagrad": torch.optim.Adagrad, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "rmsprop": torch.optim.RMSprop, "rmsprop-momentum": torch.optim.RMSprop}  # fmt: skip
    assert set(DEFAULT_LRS) == {s.family for s in OPTIMIZERS.values()} == set(classes)
    for family, cls in classes.items():
        assert DEFAULT_LRS[family] == inspect.signature(cls).parameters["lr"].default, family
    assert DEFAULT_LRS == {
        "inna": 0.1,
        "innaprop": 1e-3,
        "sgd": 1e-3,
        "sgd-momentum": 1e-3,
        "adagrad": 1e-2,
        "adam": 1e-3,
        "adamw": 1e-3,
        "rmsprop": 1e-2,
        "rmsprop-momentum": 1e-2,
    }  # the list


def test_rmsprop_specs_build_torch_rmsprop_with_rho_as_its_average() -> None:
    from inna.bench.optimizers import build_optimizer, parse_optimizer

    p = torch.nn.Parameter(torch.zeros(3))
    opt, sched = build_optimizer(parse_optimizer("rmsprop:rho=0.9"), [p], 0.01)
    assert isinstance(opt, torch.optim.RMSprop) and sched is None
    assert opt.defaults["alpha"] == 0.9 and opt.defaults["momentum"] == 0 and opt.defaults["eps"] == 1e-8
    opt, _ = build_optimizer(parse_optimizer("rmsprop-momentum"), [p], 0.01)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["alpha"] == 0.99
    assert OPTIMIZERS["rmsprop-momentum"].name == "RMSprop-m0.9"
    with pytest.raises(ValueError, match=r"Unknown option 'alpha' for 'rmsprop'; allowed: eps, .*rho"):
        parse_optimizer("rmsprop:alpha=0.9")


def test_every_optimizer_also_runs_at_its_library_default_lr_with_every_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(E, "train_run", fake_train_run(calls))
    suite = Suite("d", "defaults", (TASK,), (_spec("LOW"), _spec("BASE", "adam")), seeds=3, max_extensions=0)
    sel = {s["optimizer"]: s for s in run_suite(suite, tmp_path, progress=False, log=quiet)}
    assert sel["LOW"]["default_lr"] == 0.1 and sel["BASE"]["default_lr"] == 0.001  # INNA's and Adam's
    full = [c for c in calls if c.epochs == TASK.epochs]
    assert sorted((c.optimizer.name, c.lr, c.seed) for c in full if c.lr in (0.1, 0.001)) == [
        ("BASE", 0.001, s) for s in range(3)] + [("LOW", 0.1, s) for s in range(3)]  # fmt: skip
    assert all(len(s["default_run_ids"]) == 3 for s in sel.values())
    text = REP.write_report(tmp_path, figures=False)[0].read_text()
    # the fake's final loss on a full run is its seed offset whatever the lr: LOW 0.5, 0.6, 0.7; BASE 1.0, 1.2, 1.1
    assert "| 0.1: 0.6000 ± 0.1000 |" in text and "| 0.001: 1.1000 ± 0.1000 |" in text
    assert "At the library-default lr (no tuning; same targets):" in text and "| LOW (0.1) |" in text
    calls.clear()
    off = Suite("d", "defaults", (TASK,), (_spec("LOW"),), seeds=1, max_extensions=0, default_lr=False)
    assert "default_lr" not in run_suite(off, tmp_path / "off", progress=False, log=quiet)[0]
    assert {c.lr for c in calls} == set(OPTIMIZERS["inna"].grid)  # only the selection: no default run


def test_the_report_lists_optimizers_in_the_suites_order_whatever_order_their_selections_arrived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FAR needs three grid extensions, BASE none: their selections are written in another order than the suite's
    monkeypatch.setattr(E, "train_run", fake_train_run([]))
    suite = Suite("order", "order", (TASK,), (_spec("FAR"), _spec("BASE", "adam"), _spec("LOW")), seeds=1,
                  default_lr=False)  # fmt: skip
    run_suite(suite, tmp_path, progress=False, log=quiet)
    records = read_records(tmp_path / "results.jsonl")
    written = [r["optimizer"] for r in records if r.get("type") == "selection"]
    assert written != ["FAR", "BASE", "LOW"]  # the case this test is about
    for order in (records, records[::-1]):
        (task,) = REP.collect(order)
        assert [o.optimizer for o in task.optimizers] == ["FAR", "BASE", "LOW"]
