"""The language-model task of `inna bench`: text data sets, the gpt model, the warmup + cosine schedule, the
lm suite end to end on a tiny text, and its bits-per-character report."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import pytest
import torch

from inna.bench.config import RunConfig
from inna.bench.data import load_dataset
from inna.bench.models import build_model, count_parameters
from inna.bench.optimizers import OPTIMIZERS, WarmupCosine, build_optimizer, parse_optimizer
from inna.bench.suites import SUITES, suite_with_text
from inna.bench.training import clear_data_cache, train_run
from inna.cli import main

TINY = ["--epochs", "1", "--tune-epochs", "1", "--train-subset", "64", "--test-subset", "16", "--seeds", "2",
        "--grid-points", "1", "--workers", "1", "--no-progress"]  # fmt: skip


def _text_file(path: Path, lines: int = 600) -> Path:
    rng = random.Random(0)
    words = "the quick brown fox jumps over a lazy dog and runs far away from home to see the wide world".split()
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(lines)), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ data


def test_stdlib_text_is_windows_of_ids_shifted_by_one_and_recorded_by_hash() -> None:
    a, b = load_dataset("stdlib-text"), load_dataset("stdlib-text")
    assert a.x_train.dtype == torch.int64 and a.x_train.ndim == 2 and a.x_train.shape[1] == a.info["block"] == 64
    assert torch.equal(a.x_train[:, 1:], a.y_train[:, :-1]) and torch.equal(a.x_test[:, 1:], a.y_test[:, :-1])
    assert a.num_classes == a.info["vocab_size"] and int(a.x_train.max()) < a.num_classes
    assert a.info["kind"] == "text" and len(a.info["sha256"]) == 64 and "argparse.py" in a.info["files"]
    assert torch.equal(a.x_train, b.x_train) and a.info == b.info  # deterministic


def test_text_subset_is_seeded_deterministic_and_keeps_pairs() -> None:
    ds = load_dataset("stdlib-text")
    s1, s2, s3 = ds.subset(256, 32, seed=0), ds.subset(256, 32, seed=0), ds.subset(256, 32, seed=1)
    assert s1.x_train.shape == (256, 64) and s1.y_train.shape == (256, 64) and s1.x_test.shape == (32, 64)
    assert torch.equal(s1.x_train, s2.x_train) and torch.equal(s1.y_test, s2.y_test)
    assert not torch.equal(s1.x_train, s3.x_train)
    assert torch.equal(s1.x_train[:, 1:], s1.y_train[:, :-1])  # each window keeps its own target
    rows = {tuple(r) for r in ds.x_train.tolist()}
    assert all(tuple(r) in rows for r in s1.x_train.tolist()) and len({tuple(r) for r in s1.x_train.tolist()}) == 256
    assert s1.info == ds.info


def test_text_file_dataset_names_its_path_and_hash(tmp_path: Path) -> None:
    path = _text_file(tmp_path / "t.txt")
    ds = load_dataset(f"text:{path}")
    assert ds.name == f"text:{path}" and ds.info["files"] == [str(path)]
    assert ds.info["sha256"] == hashlib.sha256(path.read_text(encoding="utf-8").encode()).hexdigest()
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset(f"text:{tmp_path / 'missing.txt'}")


# ------------------------------------------------------------------------------------------------ model


def test_gpt_model_returns_classes_second_and_width_scales_dim() -> None:
    torch.manual_seed(0)
    model = build_model("gpt", (16,), 30, 1.0)
    out = model(torch.randint(0, 30, (3, 16)))
    assert out.shape == (3, 30, 16)
    assert count_parameters(build_model("gpt", (16,), 30, 0.5)) < count_parameters(model)
    with pytest.raises(ValueError, match="token windows"):
        build_model("gpt", (1, 16, 16), 30, 1.0)


# ------------------------------------------------------------------------------------------------ schedule


def test_warmup_cosine_values() -> None:
    w = WarmupCosine(100, warmup=0.05, final_lr=0.1)
    assert w.warmup_steps == 5
    assert [w(k) for k in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert w(5) == pytest.approx(1.0) and w(99) == pytest.approx(0.1)
    mid = 5 + (99 - 5) / 2
    assert WarmupCosine(100)(int(mid)) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 47 / 94)))
    for bad, match in (({"total_steps": 0}, "total_steps"), ({"total_steps": 10, "warmup": 1.0}, "warmup"),
                       ({"total_steps": 10, "final_lr": 2.0}, "final_lr")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            WarmupCosine(**bad)


def test_schedule_is_a_spec_option_and_leaves_other_specs_ids_alone() -> None:
    spec = parse_optimizer("innaprop:schedule=warmup-cosine:warmup=0.1")
    assert spec.schedule == {"name": "warmup-cosine", "warmup": 0.1, "final_lr": 0.1}
    assert spec.key()["schedule"] == {"final_lr": 0.1, "name": "warmup-cosine", "warmup": 0.1}
    assert "schedule" not in OPTIMIZERS["adamw"].key()  # the run ids of every existing suite are unchanged
    assert OPTIMIZERS["adamw"].key() == {"family": "adamw", "options": {"weight_decay": 0.01}, "power": 0.0}
    p = torch.nn.Parameter(torch.zeros(2))
    opt, sched = build_optimizer(spec, [p], 0.01, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.005) and max(lrs) == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)
    # resume: a fresh scheduler loaded from the state dict continues the same sequence
    opt2, sched2 = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))], 0.01, total_steps=20)
    o1, s1 = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))], 0.01, total_steps=20)
    for _ in range(7):
        o1.step()
        s1.step()
    sched2.load_state_dict(s1.state_dict())
    opt2.load_state_dict(o1.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(lrs[7])
    with pytest.raises(ValueError, match="total_steps"):
        build_optimizer(spec, [p], 0.01)
    with pytest.raises(ValueError, match="replaces the power decay"):
        build_optimizer(parse_optimizer("inna:schedule=warmup-cosine"), [p], 0.1, total_steps=5)
    with pytest.raises(ValueError, match="Unknown schedule"):
        parse_optimizer("adam:schedule=step")
    with pytest.raises(ValueError, match="without schedule=NAME"):
        parse_optimizer("adam:warmup=0.1")


@pytest.mark.parametrize("suite", ["lm", "cnn-adamw"])
def test_lm_suite_gives_every_optimizer_the_same_schedule_and_decay(suite: str) -> None:
    specs = [parse_optimizer(o) for o in SUITES[suite].optimizers]
    assert len({json.dumps(s.schedule, sort_keys=True) for s in specs}) == 1 and specs[0].schedule
    assert all(s.power == 0 for s in specs)
    decays = {s.name: s.options.get("weight_decay") for s in specs}
    assert {v for k, v in decays.items() if k != "Adam"} == {0.01} and decays["Adam"] is None
    inna = next(s for s in specs if s.family == "inna")
    assert inna.options["decoupled_weight_decay"] is True
    assert {s.name for s in specs} >= {"AdamW(β₂=0.95)", "AdamW(β₂=0.999)", "INNAprop(0.1,0.9)", "INNAprop(1,1)",
                                      "INNAprop(2,2)", "INNA(0.5,0.5)", "Adam"}  # fmt: skip
    # σ: the authors' 0.99 for language-model pre-training, their default 0.999 on the CNN tasks
    sigmas = {s.options.get("sigma") for s in specs if s.family == "innaprop"}
    assert sigmas == ({0.99} if suite == "lm" else {None})


def test_cnn_adamw_suite_runs_on_the_cpu_paper_tasks() -> None:
    assert SUITES["cnn-adamw"].tasks == SUITES["cpu-paper"].tasks


# ------------------------------------------------------------------------------------------------ training


def test_lm_task_trains_well_below_log_vocab(tmp_path: Path) -> None:
    clear_data_cache()
    spec = parse_optimizer("adamw:beta2=0.95:schedule=warmup-cosine")
    cfg = RunConfig("lm-test", "stdlib-text", "gpt", 1.0, spec, 0.003, seed=0, epochs=2, batch_size=32,
                    train_subset=3200, test_subset=64)  # 200 steps  # fmt: skip
    records: list[dict] = []
    end = train_run(cfg, records.append, tmp_path / "ckpt")
    clear_data_cache()
    epochs = [r for r in records if r["type"] == "epoch"]
    log_vocab = math.log(load_dataset("stdlib-text").num_classes)
    assert end["status"] == "completed" and end["steps"] == 200
    assert epochs[0]["train_loss"] == pytest.approx(log_vocab, abs=0.3)  # per token: starts at the uniform guess
    assert epochs[-1]["train_loss"] < 0.6 * log_vocab and epochs[-1]["test_loss"] < 0.65 * log_vocab
    assert 0 < epochs[-1]["train_acc"] < 1  # per token, not per window
    start = next(r for r in records if r["type"] == "run_start")
    assert start["data"]["kind"] == "text" and len(start["data"]["sha256"]) == 64


# ------------------------------------------------------------------------------------------------ suite + report


def test_lm_suite_end_to_end_on_a_tiny_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _text_file(tmp_path / "tiny.txt")
    out = tmp_path / "out"
    assert main(["bench", "--suite", "lm", "--text", str(text), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "tiny-gpt: language model (bits per character)" in printed and "Against the best AdamW" in printed
    for label in ("INNAprop(0.1,0.9)", "INNAprop(1,1)", "INNAprop(2,2)", "INNA(0.5,0.5)", "Adam"):
        assert f"| {label} |" in printed
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    suite = next(r for r in records if r["type"] == "suite")
    sha = hashlib.sha256(text.read_text(encoding="utf-8").encode()).hexdigest()
    assert suite["corpora"][f"text:{text.resolve()}"]["sha256"] == sha
    assert all(r["data"]["sha256"] == sha for r in records if r["type"] == "run_start")
    assert (out / "figures" / "tiny-gpt-lm.png").is_file() and "tiny-gpt-lm.png" in (out / "report.md").read_text()
    # rerun: everything is finished, nothing is trained again
    n = len(records)
    assert main(["bench", "--suite", "lm", "--text", str(text), "--out", str(out), *TINY]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == n


def test_text_option_needs_a_suite_with_a_text_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _text_file(tmp_path / "tiny.txt", lines=50)
    assert main(["bench", "--suite", "quick", "--text", str(text), "--out", str(tmp_path / "o"), *TINY]) == 2
    assert "has no text task" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no text task"):
        suite_with_text(SUITES["cpu-paper"], text)
