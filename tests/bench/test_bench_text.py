"""The language-model task's data (character windows of real text) and network (a small causal transformer)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inna.bench.text import STDLIB_FILES, TextCorpusError, load_text_corpus
from inna.bench.transformer import TinyGPT


def test_stdlib_corpus_is_pinned_and_deterministic():
    a, b = load_text_corpus(block=32), load_text_corpus(block=32)
    assert a.name == "stdlib" and len(STDLIB_FILES) == 22
    assert a.sha256 == b.sha256 and a.vocab == b.vocab
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape[1] == 32 and a.x_train.dtype == np.int64
    assert a.x_train.max() < a.vocab_size and a.x_val.max() < a.vocab_size
    assert len(a.x_train) > 8 * len(a.x_val)  # a 10 % validation split


def test_targets_are_inputs_shifted_by_one_character(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    f = tmp_path / "t.txt"
    f.write_text(text, encoding="utf-8")
    c = load_text_corpus(f, block=10, val_fraction=0.2)
    decode = lambda row: "".join(c.vocab[i] for i in row)  # noqa: E731
    assert decode(c.x_train[0]) == text[:10] and decode(c.y_train[0]) == text[1:11]
    assert decode(c.x_train[1]) == text[10:20]
    assert decode(c.x_val[0]) == text[800:810]  # the held-out split is the end of the text, never trained on
    assert len(c.x_train) == 79 and len(c.x_val) == 19


def test_bad_text_files_are_clear_errors(tmp_path):
    with pytest.raises(TextCorpusError, match="no such text file"):
        load_text_corpus(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"ok\xff\xfe")
    with pytest.raises(TextCorpusError, match=r"bin\.txt: not UTF-8 text"):
        load_text_corpus(tmp_path / "bin.txt")
    (tmp_path / "short.txt").write_text("tiny", encoding="utf-8")
    with pytest.raises(TextCorpusError, match="too few"):
        load_text_corpus(tmp_path / "short.txt", block=8)
    with pytest.raises(ValueError, match="Invalid block value"):
        load_text_corpus(block=1)


def test_tiny_gpt_is_causal_and_shaped_for_cross_entropy():
    torch.manual_seed(0)
    model = TinyGPT(vocab=11, block=8, dim=16, layers=2, heads=2).eval()
    x = torch.randint(0, 11, (3, 8))
    logits = model(x)
    assert logits.shape == (3, 11, 8)
    changed = x.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    torch.testing.assert_close(model(changed)[..., :5], logits[..., :5])  # the future never leaks into the past
    assert not torch.allclose(model(changed)[..., 5:], logits[..., 5:])
    assert model.head.weight is model.tokens.weight


def test_tiny_gpt_learns_real_text_well_below_the_uniform_loss():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    c = load_text_corpus(block=32, max_chars=200_000)
    x, y = torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)
    model = TinyGPT(c.vocab_size, 32, dim=32, layers=1, heads=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        val = torch.nn.functional.cross_entropy(model(torch.from_numpy(c.x_val)), torch.from_numpy(c.y_val))
    assert float(val) < 0.65 * math.log(c.vocab_size)
