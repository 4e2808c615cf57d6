r"""A griffe extension: the reST parts of inna's docstrings, read as Markdown by mkdocstrings.

The docstrings in ``src/`` are Google-style with reST inline markup, as Sphinx reads them: ``:math:`...```
roles, ``.. math::`` blocks, ``text::`` literal blocks and the Python-domain roles (``:func:``, ``:class:``,
``:mod:``, ``:meth:``, ``:attr:``, ``:data:``). This extension rewrites each docstring once the package is loaded,
before mkdocstrings parses it, so that the source keeps one style and the site renders it:

- ``:math:`x``` becomes ``\(x\)`` and a ``.. math::`` block becomes a ``$$`` block (pymdownx.arithmatex, rendered
  by KaTeX); a block with ``&`` or ``\\`` is wrapped in ``aligned`` (or ``gathered``), as Sphinx wraps it in
  ``split``;
- ``text::`` + an indented block becomes ``text:`` + a fenced code block (``python`` when it looks like Python);
- a role naming an object of ``inna`` becomes an optional autorefs cross-reference to its canonical path (a link
  where the object is rendered, plain code elsewhere); a role naming another package (``torch.optim.Optimizer``)
  becomes code. A role that names nothing is logged as a warning, which fails ``mkdocs build --strict``.

``convert`` is the pure text transformation (tested in ``tests/docs/test_docs_build.py``).
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Iterator

import griffe

_log = logging.getLogger("mkdocs.plugins.inna_docs")

#: Sphinx's Python-domain roles; ``:math:`` is handled apart.
_XREF_ROLES = ("func", "class", "mod", "meth", "attr", "data", "exc", "obj", "const")
_ROLE = re.compile(r":(?P<role>math|" + "|".join(_XREF_ROLES) + r"):`(?P<text>[^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")
_LITERAL_INTRO = re.compile(r"^(?P<head>.*?)(?P<space>\s?)::[ \t]*$")
_EXPLICIT_TARGET = re.compile(r"^(?P<label>.*?)\s*<(?P<target>[^<>]+)>$")

Resolver = Callable[[str], "str | None"]


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The lines from ``start`` indented deeper than ``base`` (blank lines inside included), and where it ends."""
    end = start
    last_content = start
    while end < len(lines):
        line = lines[end]
        if line.strip():
            if _indent_of(line) <= base:
                break
            last_content = end + 1
        end += 1
    return lines[start:last_content], last_content


def _dedent(lines: list[str]) -> list[str]:
    widths = [_indent_of(line) for line in lines if line.strip()]
    cut = min(widths, default=0)
    return [line[cut:] if line.strip() else "" for line in lines]


def _display_math(body: list[str], indent: str) -> list[str]:
    """``$$`` blocks for a ``.. math::`` body: one per blank-line-separated equation, as Sphinx does."""
    out: list[str] = []
    equations: list[list[str]] = [[]]
    for line in body:
        if line.strip():
            equations[-1].append(line.rstrip())
        elif equations[-1]:
            equations.append([])
    for eq in (e for e in equations if e):
        text = "\n".join(eq)
        if "\\\\" in text or "&" in text:
            env = "aligned" if "&" in text else "gathered"
            eq = [f"\\begin{{{env}}}", *eq, f"\\end{{{env}}}"]
        out += [f"{indent}$$", *(f"{indent}{line}" for line in eq), f"{indent}$$", ""]
    return out[:-1]


def _looks_like_python(code: list[str]) -> bool:
    text = "\n".join(code)
    return bool(re.search(r"^\s*(import |from \S+ import |\w[\w.]* = |>>> |@|def |for |with )", text, flags=re.M))


def _blocks(text: str) -> str:
    """``.. math::`` and ``::`` literal blocks to Markdown (the inline roles are left for ``_roles``)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _MATH_DIRECTIVE.match(line)
        if directive:
            indent = directive["indent"]
            body, i = _block(lines, i + 1, len(indent))
            first = [directive["rest"]] if directive["rest"].strip() else []
            # a first line on the directive's own line sets the indentation the continuation lines are cut to
            rest = _dedent(body)
            if first and body:
                rest = [line.strip() if line.strip() else "" for line in body]
            if out and out[-1].strip():
                out.append("")
            out += _display_math(first + rest, indent)
            if i < len(lines) and lines[i].strip():
                out.append("")
            continue
        literal = _LITERAL_INTRO.match(line)
        if literal and not line.lstrip().startswith(".."):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            base = _indent_of(line)
            if j < len(lines) and _indent_of(lines[j]) > base:
                body, end = _block(lines, j, base)
                head = literal["head"]
                if head.strip():
                    out.append(head + ("" if literal["space"] or head.rstrip().endswith(":") else ":"))
                    out.append("")
                code = _dedent(body)
                fence = "```python" if _looks_like_python(code) else "```text"
                pad = " " * base
                out += [pad + fence, *(pad + c if c else "" for c in code), pad + "```"]
                i = end
                if i < len(lines) and lines[i].strip():
                    out.append("")
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _roles(text: str, resolve: Resolver) -> str:
    def replace(match: re.Match[str]) -> str:
        role, body = match["role"], match["text"].strip()
        if role == "math":
            return f"\\({body}\\)"
        explicit = _EXPLICIT_TARGET.match(body)
        label, target = (explicit["label"], explicit["target"]) if explicit else (None, body)
        short = target.startswith("~")
        target = target.lstrip("~").removesuffix("()")
        if label is None:
            label = target.lstrip(".").rsplit(".", 1)[-1] if short else target.lstrip(".")
        path = resolve(target)
        if path is None:
            return f"`{label}`"
        return f'<autoref identifier="{path}" optional>`{label}`</autoref>'

    return _ROLE.sub(replace, text)


def convert(text: str, resolve: Resolver) -> str:
    """One docstring's reST markup to Markdown; ``resolve`` maps a role's target to a path, or None for code."""
    return _roles(_blocks(text), resolve)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _lookup(root: griffe.Object, path: str) -> griffe.Object | griffe.Alias | None:
    if path == root.path:
        return root
    if not path.startswith(root.path + "."):
        return None
    try:
        return root[path[len(root.path) + 1 :]]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _canonical(found: griffe.Object | griffe.Alias) -> str:
    try:
        return found.final_target.path if found.is_alias else found.path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return found.path


class RstDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: object) -> None:
        names = _names(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                text = _fill_placeholders(obj, obj.docstring.value)
                obj.docstring.value = convert(text, _resolver(pkg, obj, names))


def _names(root: griffe.Object) -> dict[str, list[griffe.Object]]:
    """Every object of the package by its short name, for a bare role name no scope resolves."""
    names: dict[str, list[griffe.Object]] = {}
    for obj in _walk(root):
        names.setdefault(obj.name, []).append(obj)
    return names


_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)\{(?P<name>\w+)\}[ \t]*$", flags=re.M)


def _fill_placeholders(obj: griffe.Object, text: str) -> str:
    """A line ``{base}`` filled from the module's string constant ``_BASE_ARGS``, as the module does at import.

    ``inna.keras.optimizers`` writes the Keras options shared by its classes once and puts them in each
    ``__doc__`` at import time; static analysis sees the placeholder, so the docs fill it the same way.
    """

    def fill(match: re.Match[str]) -> str:
        constant = obj.module.members.get(f"_{match['name'].upper()}_ARGS")
        value = getattr(constant, "value", None)
        try:
            filled = ast.literal_eval(str(value))
        except (ValueError, SyntaxError):
            return match[0]
        if not isinstance(filled, str):
            return match[0]
        return match["indent"] + " ".join(filled.split())  # one line: a Google-style "names: description" item

    return _PLACEHOLDER.sub(fill, text)


def _resolver(root: griffe.Module, obj: griffe.Object, names: dict[str, list[griffe.Object]]) -> Resolver:
    """How a role's target is found: as a full path, then in the scopes around ``obj`` (its members, its
    imports, its parents'), then, for a bare name, as the one object of that name in the nearest enclosing
    subpackage. An ``inna.`` path that names nothing is a broken reference (a warning); any other name that
    resolves to nothing in ``inna`` (``add_param_group``, inherited from torch) is shown as code, as Sphinx does.
    """

    def in_scopes(name: str) -> griffe.Object | griffe.Alias | None:
        scope: griffe.Object | None = obj
        while scope is not None:
            found = _lookup(root, f"{scope.path}.{name}")
            if found is not None:
                return found
            head, _, tail = name.partition(".")
            try:
                resolved = scope.resolve(head)
            except griffe.NameResolutionError:
                resolved = None
            if resolved is not None:
                if not resolved.startswith(root.path + ".") and resolved != root.path:
                    return None  # another package's object
                return _lookup(root, f"{resolved}.{tail}" if tail else resolved)
            scope = scope.parent
        return None

    def by_short_name(name: str) -> griffe.Object | None:
        candidates = names.get(name, [])
        scope: griffe.Object | None = obj.module
        while scope is not None:
            inside = [c for c in candidates if c.path.startswith(scope.path + ".")]
            if len(inside) == 1:
                return inside[0]
            if inside:
                return None  # ambiguous: code
            scope = scope.parent
        return None

    def resolve(target: str) -> str | None:
        name = target.lstrip(".")
        found = _lookup(root, name) or in_scopes(name)
        if found is None and "." not in name:
            found = by_short_name(name)
        if found is not None:
            return _canonical(found)
        if name.split(".")[0] == root.path:
            _log.warning("%s: the docstring's reference %r names nothing in %s", obj.path, target, root.path)
        return None

    return resolve
