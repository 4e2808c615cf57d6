"""inna.keras on the TensorFlow, JAX and PyTorch backends.

Keras picks its backend once per process, so the checks (``keras_backend_checks.py``, written once for every
backend) run in one subprocess per backend, each a pytest run of the whole module with ``KERAS_BACKEND`` set and
a timeout. The three subprocesses start together at the first test that needs one; each check is then reported
here by name, per backend, with the subprocess's failure message. One subprocess per backend, not per check: the
framework imports alone cost seconds.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = pathlib.Path(__file__).resolve().parent
CHECKS_FILE = HERE / "keras_backend_checks.py"
REPO = HERE.parents[1]
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> module it needs
TIMEOUT_S = 600  # per backend; the three run together (about 130 s each alone on a loaded 2-core machine)


def _check_names() -> list[str]:
    tree = ast.parse(CHECKS_FILE.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


CHECKS = _check_names()


def _available(backend: str) -> bool:
    return importlib.util.find_spec("keras") is not None and importlib.util.find_spec(BACKENDS[backend]) is not None


class _Runs:
    """The three backend subprocesses, started together on first use; results parsed from their JUnit XML."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.procs: dict[str, tuple[subprocess.Popen, pathlib.Path, pathlib.Path]] = {}
        self.results: dict[str, dict[str, list[tuple[str, str]]]] = {}

    def _start_all(self) -> None:
        for backend in BACKENDS:
            if not _available(backend):
                continue
            out = self.root / backend
            out.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ)
            env.update(
                KERAS_BACKEND=backend,
                PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")]),
                TF_CPP_MIN_LOG_LEVEL="2",
                # two host devices for the keras.distribution check (read when jax initialises)
                XLA_FLAGS=(env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip(),
            )
            log = out / "log.txt"
            command = [
                sys.executable, "-m", "pytest", str(CHECKS_FILE), "-q", "--noconftest", "-p", "no:cacheprovider",
                "--rootdir", str(REPO), "--basetemp", str(out / "tmp"), "--junitxml", str(out / "junit.xml"),
                "-o", "junit_family=xunit2", "-W", "ignore::DeprecationWarning",
            ]  # fmt: skip
            with open(log, "w") as fh:
                proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
            self.procs[backend] = (proc, out / "junit.xml", log)

    def result(self, backend: str) -> dict[str, list[tuple[str, str]]]:
        if not self.procs:
            self._start_all()
        if backend not in self.results:
            proc, xml, log = self.procs[backend]
            try:
                proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired as err:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"the {backend} checks ran past {TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
                ) from err
            if not xml.exists():
                raise AssertionError(f"the {backend} checks left no report (rc {proc.returncode}):\n"
                                     f"{log.read_text()[-4000:]}")  # fmt: skip
            self.results[backend] = _parse(xml)
        return self.results[backend]

    def close(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _parse(xml: pathlib.Path) -> dict[str, list[tuple[str, str]]]:
    """check name -> [(outcome, message)], one entry per parametrisation."""
    results: dict[str, list[tuple[str, str]]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                message = f"{name}: {node.get('message', '')}\n{node.text or ''}"
                break
        results.setdefault(name.split("[")[0], []).append((outcome, message))
    return results


@pytest.fixture(scope="session")
def keras_runs(tmp_path_factory):
    runs = _Runs(tmp_path_factory.mktemp("keras_backends"))
    yield runs
    runs.close()


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras(backend: str, check: str, keras_runs: _Runs) -> None:
    if not _available(backend):
        pytest.skip(f"keras or {BACKENDS[backend]} is not installed")
    outcomes = keras_runs.result(backend).get(check)
    assert outcomes, f"{check} did not run on {backend} (collection error?)"
    failures = [message for outcome, message in outcomes if outcome == "failed"]
    assert not failures, "\n\n".join(failures)
    if all(outcome == "skipped" for outcome, _ in outcomes):
        pytest.skip(outcomes[0][1].split("\n")[0])
