"""A small decoder-only transformer for the character-level language-model task, in plain ``torch.nn``.

GPT-style: token + learned position embeddings, ``layers`` pre-norm blocks (causal multi-head self-attention,
then a 4× GELU MLP, each on a residual branch), a final LayerNorm and a linear head tied to the token embedding.
It has the parameter mix of a real transformer (embeddings, attention and MLP matrices, norms, biases), which is
where AdamW is the default optimizer and where INNAprop was evaluated.

``forward`` returns logits of shape ``(B, vocab, T)`` (classes second), so the benchmark's
``cross_entropy(logits, targets)`` with targets ``(B, T)`` is the mean next-character loss, unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TinyGPT"]


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.norm2(x))))


class TinyGPT(nn.Module):
    """Decoder-only transformer over ``vocab`` characters with context ``block``.

    Args:
        vocab: vocabulary size.
        block: the longest sequence (context length).
        dim: embedding width (divisible by ``heads``).
        layers, heads: depth and attention heads.
    """

    def __init__(self, vocab: int, block: int, dim: int = 128, layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Invalid dim value: {dim} (must be divisible by heads={heads})")
        self.block = block
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(block, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.tokens.weight  # tied, as in GPT-2
        self._init(layers)

    def _init(self, layers: int) -> None:
        # GPT-2's scheme: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 * layers).
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            for m in (block.proj, block.out):
                nn.init.normal_(m.weight, std=0.02 / math.sqrt(2 * layers))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.block:
            raise ValueError(f"sequence of {t} tokens is longer than the context of {self.block}")
        x = self.tokens(idx) + self.positions(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)).transpose(1, 2)
