"""The docs build's reST-to-Markdown conversion of docstrings (docs/hooks/rst_docstrings.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("griffe", reason="the docs extra (mkdocstrings-python brings griffe) is not installed")

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rst_docstrings", ROOT / "docs" / "hooks" / "rst_docstrings.py")
rst = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rst)


def code_only(target: str) -> None:
    return None


def test_inline_math_becomes_arithmatex_inline_math() -> None:
    assert (
        rst.convert(r"step :math:`\gamma_k` and :math:`\phi = x`.", code_only) == r"step \(\gamma_k\) and \(\phi = x\)."
    )


def test_math_block_becomes_display_math_and_alignment_gets_an_environment() -> None:
    text = "Lines\n\n.. math::\n\n    a &= b \\\\\n    c &= d\n\nafter"
    assert rst.convert(text, code_only) == (
        "Lines\n\n$$\n\\begin{aligned}\na &= b \\\\\nc &= d\n\\end{aligned}\n$$\n\nafter"
    )
    plain = "x\n\n.. math::\n\n    E = mc^2\n\n    F = ma\n"
    assert rst.convert(plain, code_only) == "x\n\n$$\nE = mc^2\n$$\n\n$$\nF = ma\n$$\n"


def test_math_block_with_content_on_the_directive_line_and_inside_an_indented_section() -> None:
    text = "Args:\n    x: the value\n\n        .. math:: a = b,\n                  c = d.\n\n    y: other"
    out = rst.convert(text, code_only)
    assert "        $$\n        \\begin{gathered}" not in out  # no \\ and no &: no environment
    assert "        $$\n        a = b,\n        c = d.\n        $$\n\n    y: other" in out


def test_literal_block_becomes_a_fenced_block() -> None:
    text = "used like ``optax.sgd``::\n\n    import optax\n    opt = optax.sgd(0.1)\n\nThen more."
    assert rst.convert(text, code_only) == (
        "used like ``optax.sgd``:\n\n```python\nimport optax\nopt = optax.sgd(0.1)\n```\n\nThen more."
    )
    diagram = "Blocks::\n\n    conv 5x5 -> pool\n"
    assert "```text\nconv 5x5 -> pool\n```" in rst.convert(diagram, code_only)


def test_roles_become_optional_crossrefs_or_code() -> None:
    paths = {"phase_from_psi": "inna.formulas.phase_from_psi", "inna.torch": "inna.torch"}
    out = rst.convert(":func:`phase_from_psi` in :mod:`inna.torch`, :class:`torch.optim.Optimizer`", paths.get)
    assert out == (
        '<autoref identifier="inna.formulas.phase_from_psi" optional>`phase_from_psi`</autoref> in '
        '<autoref identifier="inna.torch" optional>`inna.torch`</autoref>, `torch.optim.Optimizer`'
    )
    assert rst.convert(":meth:`~inna.torch.INNA.psi`", code_only) == "`psi`"


@pytest.fixture(scope="module")
def package():
    import griffe

    return griffe.load("inna", search_paths=[str(ROOT / "src")], extensions=griffe.load_extensions(rst.RstDocstrings))


def test_the_package_docstrings_keep_no_rest_markup(package) -> None:
    import griffe

    leftovers = []
    for obj in rst._walk(package):
        text = obj.docstring.value if obj.docstring else ""
        if ":math:`" in text or ".. math::" in text or any(f":{r}:`" in text for r in rst._XREF_ROLES):
            leftovers.append(obj.path)
    assert not leftovers, leftovers
    assert isinstance(package, griffe.Module)


def test_roles_resolve_to_canonical_paths(package) -> None:
    doc = package["formulas"].docstring.value
    assert '<autoref identifier="inna.formulas.phase_from_psi" optional>`phase_from_psi`</autoref>' in doc
    keras_inna = package["keras.optimizers.INNA"].docstring.value
    assert "{base}" not in keras_inna and "gradient_accumulation_steps, name: Keras's own" in keras_inna
