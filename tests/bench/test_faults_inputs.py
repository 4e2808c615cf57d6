"""Damaged inputs: every one a one-line error naming the file and what is wrong, before any training."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from bench_fixtures import make_cifar10_dir, make_cifar100_dir, make_idx_dir, write_idx

from inna.bench import data as D
from inna.bench.records import read_records, repair_results
from inna.cli import main

TINY = ["--width", "0.05", "--epochs", "1", "--tune-epochs", "1", "--seeds", "1", "--grid-points", "1",
        "--workers", "1", "--no-progress", "--no-figures", "--optimizers", "sgd"]  # fmt: skip


def run_bench(dataset: str, data: Path, out: Path) -> int:
    return main(["bench", "--suite", "paper", "--dataset", dataset, "--data-dir", str(data), "--out", str(out), *TINY])


def one_error_line(capsys: pytest.CaptureFixture[str], command: str = "bench") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"inna {command}: error: "), err
    return err[0]


def _batch(path: Path) -> dict:
    return pickle.loads(path.read_bytes())


CIFAR10_DAMAGE = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
                  "is not a readable CIFAR python batch (a pickle): UnpicklingError: pickle data was truncated"),
    "not a pickle": (lambda p: p.write_bytes(b"\x00garbage, not a pickle" * 20),
                     "is not a readable CIFAR python batch (a pickle)"),
    "empty": (lambda p: p.write_bytes(b""), "is not a readable CIFAR python batch (a pickle): EOFError"),
    "wrong keys": (lambda p: p.write_bytes(pickle.dumps({b"pixels": 1})),
                   "not a CIFAR python batch (expected a dict with b'data', got [b'pixels'])"),
    "no labels": (lambda p: p.write_bytes(pickle.dumps({b"data": _batch(p)[b"data"]})),
                  "the batch has no b'labels' key"),
    "wrong shape": (lambda p: p.write_bytes(pickle.dumps({**_batch(p), b"data": np.zeros((10, 100), np.uint8)})),
                    "b'data' must be uint8 of shape (N, 3072), got uint8 of shape (10, 100)"),
    "float data": (lambda p: p.write_bytes(pickle.dumps({**_batch(p), b"data": _batch(p)[b"data"] / 255.0})),
                   "b'data' must be uint8 of shape (N, 3072), got float64"),
    "label count": (lambda p: p.write_bytes(pickle.dumps({**_batch(p), b"labels": _batch(p)[b"labels"][:-3]})),
                    "7 labels for 10 images"),
    "label range": (lambda p: p.write_bytes(pickle.dumps({**_batch(p), b"labels": [55] * 10})),
                    "label 55 is outside [0, 10) (10 such labels)"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(CIFAR10_DAMAGE))
def test_damaged_cifar10_batch(damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """UnpicklingError / "pickle data was truncated" / EOFError tracebacks, or a failure mid-training
    (`Expected input batch_size (100) to match target batch_size (87)`, `Target 55 is out of bounds`)."""
    data = make_cifar10_dir(tmp_path / "data", per_batch=10, n_test=10)
    victim = data / "cifar-10-batches-py" / "data_batch_3"
    corrupt, message = CIFAR10_DAMAGE[damage]
    corrupt(victim)
    assert run_bench("cifar10", data, tmp_path / "out") == 2
    line = one_error_line(capsys)
    assert str(victim) in line and message in line
    assert not (tmp_path / "out" / "results.jsonl").exists()  # nothing written, nothing trained


def test_damaged_cifar_archive_and_cifar100_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cifar-10-python.tar.gz").write_bytes(b"not a tar archive at all" * 10)
    assert run_bench("cifar10", tmp_path / "a", tmp_path / "out") == 2
    assert "cifar-10-python.tar.gz is not a readable .tar.gz archive" in one_error_line(capsys)
    data = make_cifar100_dir(tmp_path / "c100", n_train=20, n_test=10)
    train = data / "cifar-100-python" / "train"
    train.write_bytes(pickle.dumps({**_batch(train), b"fine_labels": [100] * 20}))
    assert run_bench("cifar100", data, tmp_path / "out") == 2
    assert f"{train}: label 100 is outside [0, 100)" in one_error_line(capsys)


def _gz(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


IDX_DAMAGE = {
    "not gzip": (lambda r: _gz(r / "train-images-idx3-ubyte").write_bytes(b"plain bytes, not gzip" * 10),
                 "train-images-idx3-ubyte.gz is not a valid gzip file (BadGzipFile"),
    "truncated gzip": (lambda r: _gz(r / "train-images-idx3-ubyte").write_bytes(
                           _gz(r / "train-images-idx3-ubyte").read_bytes()[:200]),
                       "train-images-idx3-ubyte.gz is not a valid gzip file (EOFError"),
    "truncated idx": (lambda r: _gz(r / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(
                          gzip.decompress(_gz(r / "t10k-images-idx3-ubyte").read_bytes())[:500])),
                      "t10k-images-idx3-ubyte.gz is truncated"),
    "float32 images": (lambda r: _write_float_idx(_gz(r / "train-images-idx3-ubyte")),
                       "train-images-idx3-ubyte.gz: images must be uint8 pixels (IDX type 0x08), got float32"),
    "label count": (lambda r: write_idx(r / "train-labels-idx1-ubyte", np.zeros(39, np.uint8), compress=True),
                    "train-labels-idx1-ubyte.gz: 39 labels for 40 images in train-images-idx3-ubyte.gz"),
    "label range": (lambda r: write_idx(r / "t10k-labels-idx1-ubyte", np.full(20, 12, np.uint8), compress=True),
                    "t10k-labels-idx1-ubyte.gz: label 12 is outside [0, 10)"),
    "image shape": (lambda r: write_idx(r / "train-images-idx3-ubyte", np.zeros((40, 784), np.uint8), compress=True),
                    "expected images of shape (N, H, W), got shape (40, 784)"),
}  # fmt: skip


def _write_float_idx(path: Path) -> None:
    images = np.random.default_rng(0).random((40, 28, 28)).astype(">f4")
    header = bytes([0, 0, 0x0D, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    path.write_bytes(gzip.compress(header + images.tobytes()))


@pytest.mark.parametrize("damage", list(IDX_DAMAGE))
def test_damaged_idx_files(damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BadGzipFile tracebacks; float32 IDX images silently divided by 255; label mismatches mid-training."""
    root = make_idx_dir(tmp_path / "mnist", n_train=40, n_test=20)
    corrupt, message = IDX_DAMAGE[damage]
    corrupt(root)
    assert run_bench("mnist", tmp_path, tmp_path / "out") == 2
    line = one_error_line(capsys)
    assert str(root) in line and message in line, line


def test_damaged_mnist1d_cache(tmp_path: Path) -> None:
    (tmp_path / "mnist1d.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(D.DatasetFileError, match=r"mnist1d\.npz is a damaged mnist1d cache .* delete it"):
        D.load_mnist1d(tmp_path)


# --------------------------------------------------------------------------------------------------- results files

GOOD = {"type": "suite", "name": "s", "description": "", "seeds": 1, "tasks": [], "optimizers": []}
BAD_LINES = {
    "a list": (b"[1, 2, 3]", "line 2: not a JSON object but a list"),
    "binary": (b"\xff\xfe\x00\x01junk", "line 2: not UTF-8 text (binary data)"),
    "bare selection": (b'{"type":"selection"}', "line 2: selection record without 'task', 'optimizer'"),
    "unknown type": (b'{"type":"bogus"}', "line 2: unknown record type 'bogus'"),
    "not json": (b'{"type": "epoch", ', "line 2: not valid JSON"),
    "wrong types": (b'{"type":"run_end","run_id":1,"task":"t","optimizer":"o","lr":0.1,"seed":0,"status":"completed",'
                    b'"epochs":1,"steps":1,"wall_time":0}', "line 2: run_end record with wrong-typed 'run_id'=1"),
}  # fmt: skip


@pytest.mark.parametrize("bad", list(BAD_LINES))
def test_bad_results_line_names_it_and_repair_keeps_the_rest(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`inna report` on `[1,2,3]`, binary junk or `{"type":"selection"}` raised AttributeError /
    UnicodeDecodeError / KeyError."""
    line, message = BAD_LINES[bad]
    results = tmp_path / "results.jsonl"
    good = json.dumps(GOOD).encode()
    results.write_bytes(good + b"\n" + line + b"\n" + good + b"\n")
    for argv in (["report", str(tmp_path), "--no-figures"], ["bench", "--out", str(tmp_path), "--no-progress"]):
        assert main(argv) == 2
        err = one_error_line(capsys, argv[0])
        assert f"{results}, {message}" in err and "--repair" in err and "results.jsonl.rejected" in err
    assert results.read_bytes() == good + b"\n" + line + b"\n" + good + b"\n"  # bench wrote nothing
    result = repair_results(results)
    assert (result.kept, result.moved) == (2, 1)
    assert results.read_bytes() == (good + b"\n") * 2
    assert (tmp_path / "results.jsonl.rejected").read_bytes() == line + b"\n"


def test_report_repair_and_empty_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty results file gave an empty report with rc 0."""
    results = tmp_path / "results.jsonl"
    results.write_bytes(b"")
    assert main(["report", str(tmp_path)]) == 2
    assert one_error_line(capsys, "report") == (
        f"inna report: error: {results} holds no records (empty, or the benchmark stopped before its first one)"
    )
    results.write_bytes(json.dumps(GOOD).encode() + b"\n[1]\n")
    assert main(["report", str(tmp_path), "--repair", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert f"{results}: kept 1 valid records, moved 1 bad lines to {tmp_path / 'results.jsonl.rejected'}" in out
    assert read_records(results) == [GOOD]


def test_bench_repair_reruns_the_run_that_lost_a_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--dataset", "digits", "--optimizers", "inna:grid=0.3", "--epochs", "2", "--tune-epochs", "2",
            "--seeds", "1", "--train-subset", "200", "--test-subset", "50", "--workers", "1", "--no-progress",
            "--no-figures", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    results = tmp_path / "results.jsonl"
    before = results.read_text().splitlines()
    i = next(i for i, line in enumerate(before) if '"epoch": 1,' in line)
    results.write_text("\n".join([*before[:i], "\x00damaged\x00", *before[i + 1 :]]) + "\n")
    assert main(argv) == 2
    assert f"line {i + 1}: not valid JSON" in capsys.readouterr().err
    assert main([*argv, "--repair"]) == 0
    strip = [{k: v for k, v in r.items() if k != "wall_time"} for r in map(json.loads, before)]
    after = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_records(results)]
    # the run that lost its epoch-1 record was run again, and wrote the very same records
    assert after[: len(before) - 1] == strip[:i] + strip[i + 1 :]
    assert all(r in strip for r in after)
    assert any(r == strip[i] for r in after[len(before) - 1 :])
