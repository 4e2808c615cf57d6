"""Runner and protocol: JSONL durability, resume, divergence, selection on the training loss only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inna.bench import checkpoints as C
from inna.bench import training as T
from inna.bench.execution import execute_runs
from inna.bench.optimizers import build_optimizer, parse_optimizer
from inna.bench.protocol import run_suite, select_lr
from inna.bench.records import ResultsStore, read_records
from inna.bench.report import write_report
from inna.bench.suites import Suite, Task

TINY = Task("digits-mlp", "digits", "mlp", epochs=2, tune_epochs=1, train_subset=300, test_subset=100)


def tiny_suite(optimizers: tuple[str, ...] = ("inna:grid=0.3,1", "adam:grid=0.001,0.01"), seeds: int = 2) -> Suite:
    return Suite("tiny", "test suite", (TINY,), optimizers, seeds=seeds, max_extensions=0)  # run counts below


def epoch_keys(path: Path) -> list[tuple[str, int]]:
    return [(r["run_id"], r["epoch"]) for r in read_records(path) if r["type"] == "epoch"]


def suite_line(name: str) -> str:
    """A minimal valid record (a ``suite`` record) as one JSON line, without its newline."""
    return json.dumps({"type": "suite", "name": name, "description": "", "seeds": 1, "tasks": [], "optimizers": []})


def test_reader_ignores_torn_last_line_and_store_repairs_it(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(suite_line("a") + "\n" + suite_line("b")[:30])
    assert [r["name"] for r in read_records(path)] == ["a"]
    store = ResultsStore(path)  # cuts the torn line
    store.append({**json.loads(suite_line("c")), "extra": float("nan")})
    assert path.read_text().splitlines() == [suite_line("a"), suite_line("c")[:-1] + ', "extra": null}']
    path.write_text(suite_line("a") + "\nnot json\n" + suite_line("b") + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_records(path)  # corruption in the middle is not silently skipped


def test_end_to_end_jsonl_report_and_figures(tmp_path: Path) -> None:
    selections = run_suite(tiny_suite(), tmp_path, progress=False, log=lambda *a: None)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is complete JSON
    assert {r["type"] for r in records} == {"suite", "run_start", "epoch", "run_end", "selection"}
    # 2 optimizers × 2 γ₀ tuning runs (1 epoch) + 2 optimizers × 2 seeds full runs (2 epochs), each with epoch 0
    ends = [r for r in records if r["type"] == "run_end"]
    assert len(ends) == 8 and all(r["status"] == "completed" for r in ends)
    assert len(epoch_keys(tmp_path / "results.jsonl")) == 4 * 2 + 4 * 3
    epoch = next(r for r in records if r["type"] == "epoch" and r["epoch"] == 2)
    assert epoch["steps"] == 2 * 10  # 300 examples, batch 32 → 10 steps per epoch
    assert 0 <= epoch["test_acc"] <= 1 and epoch["train_loss"] > 0
    assert {s["optimizer"] for s in selections} == {"INNA(0.5,0.1)", "Adam"}
    report, summary = write_report(tmp_path)
    text = report.read_text()
    assert "| INNA(0.5,0.1) |" in text and "| Adam |" in text and "± " in text
    png = tmp_path / "figures" / "digits-mlp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "final test acc" in summary


def test_same_initial_weights_for_every_optimizer(tmp_path: Path) -> None:
    run_suite(tiny_suite(seeds=1), tmp_path, progress=False)
    first = [r for r in read_records(tmp_path / "results.jsonl") if r["type"] == "epoch" and r["epoch"] == 0]
    assert len({round(r["train_loss"], 10) for r in first}) == 1  # all runs (seed 0) start at the same loss


class Interrupt(BaseException):
    pass


def reference_and_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An uninterrupted suite, and the same suite interrupted right after its third checkpoint."""
    reference = tmp_path / "ref"
    run_suite(tiny_suite(), reference, progress=False)
    save = C.atomic_save
    calls = {"n": 0}

    def crash_after_third_checkpoint(obj: object, path: Path) -> None:
        save(obj, path)
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt

    out = tmp_path / "run"
    monkeypatch.setattr(T, "atomic_save", crash_after_third_checkpoint)
    with pytest.raises(Interrupt):
        run_suite(tiny_suite(), out, progress=False)
    monkeypatch.setattr(T, "atomic_save", save)
    return reference, out


def test_resume_after_interruption_redoes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, out = reference_and_interrupted(tmp_path, monkeypatch)
    before = epoch_keys(out / "results.jsonl")
    assert 0 < len(before) < len(epoch_keys(reference / "results.jsonl"))
    assert list((out / "checkpoints").glob("*.pt")), "the interrupted run left its checkpoint"

    trained = {"epochs": 0}
    evaluate = T.evaluate

    def counting_evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000):
        trained["epochs"] += 1
        return evaluate(model, x, y, batch)

    monkeypatch.setattr(T, "evaluate", counting_evaluate)
    run_suite(tiny_suite(), out, progress=False)
    after = epoch_keys(out / "results.jsonl")
    assert len(after) == len(set(after)), "an epoch was run twice"
    assert sorted(after) == sorted(epoch_keys(reference / "results.jsonl"))
    assert trained["epochs"] == 2 * (len(after) - len(before))  # train + test evaluation per new epoch only
    assert not list((out / "checkpoints").glob("*.pt"))
    # the resumed runs give exactly the uninterrupted numbers (seeded per epoch, state restored)
    ref = {(r["run_id"], r["epoch"]): r["train_loss"] for r in read_records(reference / "results.jsonl")
           if r["type"] == "epoch"}  # fmt: skip
    got = {(r["run_id"], r["epoch"]): r["train_loss"] for r in read_records(out / "results.jsonl")
           if r["type"] == "epoch"}  # fmt: skip
    assert got == pytest.approx(ref, rel=1e-6)
    # a third invocation has nothing left to do
    trained["epochs"] = 0
    run_suite(tiny_suite(), out, progress=False)
    assert trained["epochs"] == 0


def test_divergence_is_recorded_and_the_suite_goes_on(tmp_path: Path) -> None:
    logs: list[str] = []
    suite = tiny_suite(("sgd:grid=1e30", "inna:grid=0.3"), seeds=2)
    run_suite(suite, tmp_path / "a", progress=False, log=logs.append)
    records = read_records(tmp_path / "a" / "results.jsonl")
    sel = {r["optimizer"]: r for r in records if r["type"] == "selection"}
    assert sel["SGD"]["lr"] is None and sel["SGD"]["losses"] == {"1e+30": None}
    assert any("every γ₀ diverged" in m for m in logs)
    assert sel["INNA(0.5,0.1)"]["lr"] == 0.3
    inna_ends = [r for r in records if r["type"] == "run_end" and r["optimizer"] == "INNA(0.5,0.1)"]
    assert len(inna_ends) == 2 + 1 - 0 and all(r["status"] == "completed" for r in inna_ends)  # tune + 2 seeds
    # a fixed, diverging γ₀ for the full runs: recorded as diverged, the other optimizer still completes
    run_suite(suite, tmp_path / "b", progress=False, fixed_lrs={"sgd:grid=1e30": 1e30})
    records = read_records(tmp_path / "b" / "results.jsonl")
    sgd_ends = [r for r in records if r["type"] == "run_end" and r["optimizer"] == "SGD"]
    assert len(sgd_ends) == 2 and all(r["status"] == "diverged" for r in sgd_ends)
    assert all(r["epochs"] == 1 for r in sgd_ends)  # stopped in the first epoch
    _, summary = write_report(tmp_path / "b", figures=False)
    assert "| SGD | 1e+30 | — | — | 0/2 runs | 2/2 |" in summary


def test_select_lr_uses_lowest_training_loss() -> None:
    assert select_lr({0.1: 0.5, 0.3: 0.2, 1.0: None, 3.0: float("nan")}) == 0.3
    assert select_lr({0.1: 0.2, 0.3: 0.2}) == 0.1
    assert select_lr({1.0: None}) is None


def test_selection_never_looks_at_the_test_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tiny_suite(("inna:grid=0.1,0.3,1",), seeds=1)
    first = run_suite(suite, tmp_path / "a", progress=False)
    load = T.load_dataset

    def scrambled_test(name: str, data_dir: object = None):
        ds = load(name, data_dir)
        ds.y_test = (ds.y_test + 1) % ds.num_classes  # every test label wrong
        ds.x_test = torch.rand_like(ds.x_test)
        return ds

    T.clear_data_cache()
    monkeypatch.setattr(T, "load_dataset", scrambled_test)
    second = run_suite(suite, tmp_path / "b", progress=False)
    T.clear_data_cache()
    assert first[0]["lr"] == second[0]["lr"]
    assert first[0]["losses"] == second[0]["losses"]
    # and the selected γ₀ is the argmin of the tuning runs' final training losses
    losses = {float(k): v for k, v in first[0]["losses"].items()}
    assert first[0]["lr"] == min(losses, key=lambda k: losses[k])


def test_paper_initial_speed_makes_the_first_step_sgd() -> None:
    torch.manual_seed(0)
    w0 = torch.randn(5)
    g = torch.randn(5)
    for name, factor in (("inna", 1.0), ("inna-libinit", 0.1)):  # s = 1: θ₁ = θ₀ − γ₀g; library ψ₀: θ₀ − γ₀βg
        w = torch.nn.Parameter(w0.clone())
        opt, sched = build_optimizer(parse_optimizer(name), [w], lr=0.05)
        w.grad = g.clone()
        opt.step()
        torch.testing.assert_close(w.detach(), w0 - 0.05 * factor * g)
        assert sched is not None
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.05 / 2**0.5)  # γ₀/√(k+1), per iteration


def test_optimizer_spec_errors_name_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allowed values: inna"):
        parse_optimizer("lamb")
    with pytest.raises(ValueError, match="Unknown option 'momentum' for 'adam'"):
        parse_optimizer("adam:momentum=0.9")
    with pytest.raises(ValueError, match="power"):
        parse_optimizer("inna:power=-1")
    spec = parse_optimizer("inna:alpha=0.3:beta=0.2:power=0:grid=0.1,1")
    assert spec.options["alpha"] == 0.3 and spec.power == 0 and spec.grid == (0.1, 1.0)
    assert spec.name == "INNA(0.3,0.2,q=0)"
    with pytest.raises(ValueError, match="workers"):
        execute_runs([], ResultsStore(tmp_path / "r.jsonl"), tmp_path, workers=0)


@pytest.mark.slow
def test_parallel_workers_give_the_same_results(tmp_path: Path) -> None:
    suite = tiny_suite(("inna:grid=0.3,1",), seeds=2)
    run_suite(suite, tmp_path / "serial", progress=False, workers=1)
    run_suite(suite, tmp_path / "parallel", progress=False, workers=2)

    def losses(p: Path) -> dict[tuple[str, int], float]:
        return {(r["run_id"], r["epoch"]): r["train_loss"] for r in read_records(p / "results.jsonl")
                if r["type"] == "epoch"}  # fmt: skip

    assert losses(tmp_path / "parallel") == pytest.approx(losses(tmp_path / "serial"), rel=1e-5)


def test_widening_the_grid_reuses_runs_and_updates_the_selection(tmp_path: Path) -> None:
    from dataclasses import replace

    narrow = replace(tiny_suite(("inna:grid=0.1,0.3,1",), seeds=1), grid_points=1)
    run_suite(narrow, tmp_path, progress=False)
    ends_before = sum(r["type"] == "run_end" for r in read_records(tmp_path / "results.jsonl"))
    wide = run_suite(replace(narrow, grid_points=None), tmp_path, progress=False)
    records = read_records(tmp_path / "results.jsonl")
    # only the two new γ₀ values were trained (plus a full run if the selection moved)
    assert sum(r["type"] == "run_end" for r in records) - ends_before in (2, 3)
    latest = [r for r in records if r["type"] == "selection"][-1]
    assert set(latest["losses"]) == {"0.1", "0.3", "1"} == set(wide[0]["losses"])


def test_resume_when_a_checkpoint_is_ahead_of_the_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With workers, a run can checkpoint an epoch whose record the parent never wrote (it died in between):
    the resumed suite must still hold every epoch, with the uninterrupted numbers."""
    reference, out = reference_and_interrupted(tmp_path, monkeypatch)
    (ckpt,) = (out / "checkpoints").glob("*.pt")
    lines = (out / "results.jsonl").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if json.loads(line).get("run_id") == ckpt.stem)
    assert json.loads(lines[last])["type"] == "epoch"
    (out / "results.jsonl").write_text("\n".join(lines[:last] + lines[last + 1 :]) + "\n")  # the lost record

    run_suite(tiny_suite(), out, progress=False)
    ref = {(r["run_id"], r["epoch"]): r["train_loss"] for r in read_records(reference / "results.jsonl")
           if r["type"] == "epoch"}  # fmt: skip
    got = {(r["run_id"], r["epoch"]): r["train_loss"] for r in read_records(out / "results.jsonl")
           if r["type"] == "epoch"}  # fmt: skip
    assert got == pytest.approx(ref, rel=1e-6)
