"""Character-level text for the language-model task, read from local files only.

By default the corpus is a pinned list of the CPython standard library's own source files, read from the running
interpreter's installation (real text that no one here wrote, present on every machine with Python); or any UTF-8
file the user names (``--text FILE``, e.g. tiny-shakespeare's ``input.txt``). The corpus is identified by the
SHA-256 of its text, which the benchmark records with its results: a different Python patch release can ship
slightly different files, and the hash says so.

The text becomes windows of ``block + 1`` consecutive characters (non-overlapping, stride ``block``): the input is
the first ``block`` characters, the target the same window shifted by one. The last ``val_fraction`` of the text
(contiguous, never seen in training) is the validation split. The vocabulary is the sorted set of characters of the
whole text, so every id in either split is valid.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["STDLIB_FILES", "TextCorpus", "load_text_corpus", "stdlib_text"]

#: The standard-library modules of the default corpus, in this order (about 1.1 MB of Python source in 3.11).
STDLIB_FILES: tuple[str, ...] = (
    "argparse.py", "ast.py", "calendar.py", "configparser.py", "contextlib.py", "dataclasses.py", "difflib.py",
    "enum.py", "fractions.py", "functools.py", "heapq.py", "inspect.py", "pathlib.py", "pprint.py", "queue.py",
    "random.py", "shutil.py", "statistics.py", "string.py", "textwrap.py", "threading.py", "typing.py",
)  # fmt: skip


class TextCorpusError(ValueError):
    """A text corpus cannot be built: the message names the file and what is wrong."""


@dataclass(frozen=True)
class TextCorpus:
    """Windows of token ids for next-character prediction.

    Attributes:
        name: ``"stdlib"`` or the file's name.
        source: where the text came from (the stdlib directory or the file's path).
        sha256: hash of the UTF-8 text (identifies the corpus in the results).
        vocab: the characters, index = token id.
        x_train, y_train, x_val, y_val: int64 arrays of shape ``(N, block)``; ``y`` is ``x`` shifted by one char.
    """

    name: str
    source: str
    sha256: str
    vocab: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def stdlib_text(files: tuple[str, ...] = STDLIB_FILES) -> tuple[str, str]:
    """The default corpus: ``(text, directory)``, the pinned stdlib files concatenated in order."""
    directory = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name in files:
        path = directory / name
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TextCorpusError(
                f"{path}: this Python installation lacks a standard-library file of the default corpus; "
                "pass --text FILE to use another text"
            ) from None
    return "\n".join(parts), str(directory)


def _windows(ids: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    n = (len(ids) - 1) // block
    if n < 1:
        return np.zeros((0, block), np.int64), np.zeros((0, block), np.int64)
    x = ids[: n * block].reshape(n, block)
    y = ids[1 : n * block + 1].reshape(n, block)
    return np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(y, dtype=np.int64)


def load_text_corpus(
    text_file: str | os.PathLike[str] | None = None,
    *,
    block: int = 64,
    val_fraction: float = 0.1,
    max_chars: int | None = None,
) -> TextCorpus:
    """Build the corpus from ``text_file`` (UTF-8) or, when ``None``, from the pinned stdlib files.

    ``max_chars`` keeps only the first that many characters (before the split), to size a CPU task.
    """
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise ValueError(f"Invalid block value: {block} (must be an integer >= 2)")
    if not (0 < val_fraction < 1):
        raise ValueError(f"Invalid val_fraction value: {val_fraction} (must be in (0, 1))")
    if text_file is None:
        text, source = stdlib_text()
        name = "stdlib"
    else:
        path = Path(text_file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TextCorpusError(f"{path}: no such text file") from None
        except IsADirectoryError:
            raise TextCorpusError(f"{path}: is a directory, expected a UTF-8 text file") from None
        except UnicodeDecodeError as err:
            raise TextCorpusError(f"{path}: not UTF-8 text (byte {err.start} cannot be decoded)") from None
        source, name = str(path), path.name
    if max_chars is not None:
        if max_chars < 1:
            raise ValueError(f"Invalid max_chars value: {max_chars} (must be >= 1)")
        text = text[:max_chars]
    vocab = "".join(sorted(set(text)))
    lookup = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((lookup[c] for c in text), dtype=np.int64, count=len(text))
    split = int(len(ids) * (1 - val_fraction))
    x_train, y_train = _windows(ids[:split], block)
    x_val, y_val = _windows(ids[split:], block)
    if len(x_train) < 1 or len(x_val) < 1:
        raise TextCorpusError(
            f"{source}: {len(text)} characters are too few for windows of {block + 1} characters in both splits "
            f"(validation fraction {val_fraction})"
        )
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return TextCorpus(name, source, sha, vocab, x_train, y_train, x_val, y_val)
