"""Every code block of the README and of the guides runs as written.

The pages: README.md, docs/index.md, docs/getting-started.md and docs/guides/*.md. Each fenced block is one of:

- ``python``: run in a fresh interpreter (a subprocess with a timeout, in an empty working directory). A block
  whose imports are not installed is skipped, naming them, except under ``CI=true``, where every extra is
  installed and a missing one is a failure;
- ``bash``: parsed by ``bash -n`` (the commands themselves are the project's own entry points, installs or long
  runs, tested elsewhere), and every ``examples/`` or ``benchmarks/`` script it names exists;
- ``text``, ``bibtex``: read, not run.

A block preceded by ``<!-- skip: REASON -->`` is skipped with that reason (a fragment that needs a process group,
say); one preceded by ``<!-- tested: tests/FILE ... -->`` or ``<!-- keras-example -->`` is run by that test, which
must exist and read this page.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.md"))
PAGES = [README, ROOT / "docs" / "index.md", ROOT / "docs" / "getting-started.md", *GUIDES]
LANGUAGES = {"python", "bash", "text", "bibtex"}
#: a block run by another test: the marker, and the test file that runs it
RUN_ELSEWHERE = {"<!-- keras-example -->": "tests/keras3/keras_backend_checks.py"}
TIMEOUT_S = 240
IN_CI = os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    comments: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, with the HTML comments on the lines just before each."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^```([\w-]*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        comments = []
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("<!--") and lines[j].strip().endswith("-->"):
            comments.append(lines[j].strip())
            j -= 1
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{page.relative_to(ROOT)}:{i + 1}: a code block is never closed"
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(page, i + 1, fence.group(1), code, tuple(comments)))
        i = end + 1
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def _of(language: str) -> list[Block]:
    """The blocks of one language; a block shown twice (the README's in a guide) is checked once."""
    unique: dict[str, Block] = {}
    for b in ALL_BLOCKS:
        if b.language == language:
            unique.setdefault(b.code, b)
    return list(unique.values())


def _skip_reason(block: Block) -> str | None:
    for comment in block.comments:
        skip = re.match(r"<!--\s*skip:\s*(.*?)\s*-->", comment)
        if skip:
            assert skip.group(1), f"{block.name}: a skip needs a reason"
            return skip.group(1)
        tested = re.match(r"<!--\s*tested:\s*(tests/\S+)", comment)
        runner = tested.group(1) if tested else RUN_ELSEWHERE.get(comment)
        if runner:
            test_file = ROOT / runner
            assert test_file.is_file(), f"{block.name}: {runner} does not exist"
            page = str(block.page.relative_to(ROOT))
            assert page in test_file.read_text(encoding="utf-8"), f"{block.name}: {runner} does not read {page}"
            return f"run by {runner}"
    return None


def _missing_imports(code: str) -> list[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return sorted(name for name in names if importlib.util.find_spec(name) is None)


def test_the_pages_hold_only_known_languages() -> None:
    unknown = [f"{b.name} ({b.language or 'no language'})" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert not unknown, f"code blocks this test does not know how to check: {unknown}"
    assert _of("python") and _of("bash")


@pytest.mark.slow
@pytest.mark.parametrize("block", _of("python"), ids=lambda b: b.name)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    reason = _skip_reason(block)
    if reason:
        pytest.skip(reason)
    missing = _missing_imports(block.code)
    if missing:
        message = f"{block.name} imports {', '.join(missing)}, not installed"
        if IN_CI:
            pytest.fail(message + " (CI installs every extra)")
        pytest.skip(message)
    env = dict(os.environ)
    if importlib.util.find_spec("torch") is not None:
        env.setdefault("KERAS_BACKEND", "torch")  # the quickest backend to import; tests/keras3 runs all three
    result = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"{block.name} failed:\n{block.code}\n{result.stderr[-4000:]}"


@pytest.mark.parametrize("block", _of("bash"), ids=lambda b: b.name)
def test_bash_block_parses_and_names_scripts_that_exist(block: Block) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to parse the pages' shell blocks"
    result = subprocess.run([bash, "-n"], input=block.code, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{block.name} is not valid bash: {result.stderr}"
    for script in re.findall(r"(?:examples|benchmarks)/[\w./-]+\.(?:py|sh)", block.code):
        assert (ROOT / script).is_file(), f"{block.name} runs {script}, which does not exist"


def test_readme_is_a_landing_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "the README is a landing page: at most 250 lines"
    make_commands = {m for b in blocks(README) if b.language == "bash" for m in re.findall(r"^make \w+", b.code, re.M)}
    assert make_commands == {"make test", "make bench"}, "the README names exactly two set-up commands"
    assert "<!-- results-section -->" in text or "## Results" in text


def test_license_file_matches_pyproject() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 The inna developers" in text
    assert 'license = "MIT"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
