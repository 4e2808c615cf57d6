"""CHANGELOG.md and the version: Keep a Changelog's shape, and one version, read by the package metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import inna

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")

ROOT = Path(__file__).resolve().parents[2]


def released_versions() -> list[tuple[int, ...]]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    dated = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    return [tuple(map(int, v.split("."))) for v in dated]


def test_changelog_has_an_unreleased_section_then_releases_newest_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings[0] == "[Unreleased]"
    versions = released_versions()
    assert versions == sorted(versions, reverse=True) and (0, 2, 0) in versions and (0, 1, 0) in versions
    assert len(versions) == len(headings) - 1, f"every other section is a dated release: {headings}"


def test_the_version_lives_in_inna_and_is_newer_than_every_release() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "inna.__version__"}
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(\.dev\d+)?", inna.__version__)
    assert match, f"not a PEP 440 release or dev version: {inna.__version__}"
    version = tuple(int(part) for part in match.groups()[:3])
    newest = released_versions()[0]
    assert version > newest if match.group(4) else version >= newest
