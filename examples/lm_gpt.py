"""A small GPT trained character by character on a text file, twice from the same weights: INNAprop against AdamW.

    python examples/lm_gpt.py                    # the source of a few modules of Python's standard library
    python examples/lm_gpt.py --text input.txt   # your own UTF-8 text (tiny-shakespeare's input.txt, say)
    python examples/lm_gpt.py --smoke            # a few seconds on a CPU

Both optimizers get the same model, initial weights, batches, warmup + cosine schedule, decoupled weight decay
(on the weight matrices and embeddings, not on biases and LayerNorms) and gradient clipping, each with the lr
of --lr. INNAprop uses sigma = 0.99 (the authors' setting for language models) and AdamW the matching
beta_2 = 0.99. The last 10 % of the text is held out; the result is its loss in bits per character.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import inna

#: the default text: these modules' source, read from this Python's standard library (nothing downloaded)
STDLIB_MODULES = ("argparse", "inspect", "textwrap")


class Block(nn.Module):
    """A pre-norm transformer block: causal self-attention, then an MLP, each added to the residual stream."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, dim: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


def read_text(path: Path | None) -> tuple[str, str]:
    """The text and where it came from."""
    if path is None:
        sources = [inspect.getsource(importlib.import_module(name)) for name in STDLIB_MODULES]
        return "\n".join(sources), f"the source of {', '.join(STDLIB_MODULES)} (Python's standard library)"
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"error: --text {path}: cannot read it as UTF-8 text ({err})") from None


def warmup_cosine(warmup: int, total: int):
    """lr factor at step k: linear warmup over ``warmup`` steps, then a cosine down to 1/10 at step ``total``."""

    def factor(k: int) -> float:
        if k < warmup:
            return (k + 1) / warmup
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, (k - warmup) / max(1, total - warmup))))

    return factor


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the matrices and embeddings only (as nanoGPT does), not on biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


@torch.no_grad()
def bits_per_char(model: nn.Module, ids: torch.Tensor, context: int, max_windows: int | None = None) -> float:
    """The mean next-character loss over the non-overlapping windows of ``ids``, in bits."""
    n = (len(ids) - 1) // context
    if max_windows is not None:
        n = min(n, max_windows)
    x = ids[: n * context].view(n, context)
    y = ids[1 : n * context + 1].view(n, context)
    model.eval()
    nats = sum(
        F.cross_entropy(model(xb).flatten(0, 1), yb.flatten(), reduction="sum").item()
        for xb, yb in zip(x.split(64), y.split(64))
    )
    model.train()
    return nats / (n * context) / math.log(2)


def train(name: str, model: nn.Module, opt: torch.optim.Optimizer, train_ids: torch.Tensor, args) -> None:
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(args.warmup, args.steps))
    gen = torch.Generator().manual_seed(args.seed)  # the same batches for every optimizer
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        starts = torch.randint(len(train_ids) - args.context - 1, (args.batch_size, 1), generator=gen)
        window = train_ids[(starts + torch.arange(args.context + 1)).to(train_ids.device)]
        loss = F.cross_entropy(model(window[:, :-1]).flatten(0, 1), window[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(
                f"  {name} step {step}/{args.steps}: train loss {loss.item() / math.log(2):.3f} bits/char, "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", type=Path, help="a UTF-8 text file (default: Python standard-library source)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps, for each optimizer (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=100, help="steps of linear lr warmup (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak lr of both optimizers (default: %(default)s)")
    p.add_argument(
        "--weight-decay", type=float, default=0.1, help="on weight matrices and embeddings (default: %(default)s)"
    )
    p.add_argument(
        "--alpha", type=float, default=1.0, help="INNAprop's alpha (default: %(default)s; its presets: 0.1, 1, 2)"
    )
    p.add_argument(
        "--beta", type=float, default=1.0, help="INNAprop's beta (default: %(default)s; its presets: 0.9, 1, 2)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--context", type=int, default=128, help="characters the model sees at once (default: %(default)s)")
    p.add_argument("--dim", type=int, default=128, help="model width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks (default: %(default)s)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batches (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="(default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: a tiny model, 30 steps, 40,000 characters")
    args = p.parse_args()
    if args.text is not None and not args.text.is_file():
        p.error(f"--text {args.text}: no such file")
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.context = 30, 5, 16, 32
        args.dim, args.layers, args.heads = 32, 2, 2
    if min(args.steps, args.batch_size, args.context, args.dim, args.layers, args.heads) < 1 or args.warmup < 0:
        p.error("--steps, --batch-size, --context, --dim, --layers and --heads must be at least 1, --warmup at least 0")
    if args.dim % args.heads:
        p.error(f"--dim {args.dim} must be a multiple of --heads {args.heads}")

    text, source = read_text(args.text)
    if args.smoke:
        text = text[:40_000]
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], device=args.device)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    if len(val_ids) <= args.context + 1:
        raise SystemExit(
            f"error: {source} is too short: {len(text)} characters, the held-out 10 % must be longer "
            f"than --context {args.context}"
        )
    max_val = 64 if args.smoke else None

    torch.manual_seed(args.seed)
    initial = GPT(len(vocab), args.context, args.dim, args.layers, args.heads).state_dict()
    print(
        f"{source}: {len(text):,} characters, {len(vocab)} distinct; GPT of {args.layers} layers, width "
        f"{args.dim} ({sum(t.numel() for t in initial.values()):,} parameters) on {args.device}"
    )
    optimizers = {
        "AdamW": lambda groups: torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.99)),
        "INNAprop": lambda groups: inna.INNAprop(groups, lr=args.lr, alpha=args.alpha, beta=args.beta, sigma=0.99),
    }
    results = {}
    for name, make in optimizers.items():
        model = GPT(len(vocab), args.context, args.dim, args.layers, args.heads).to(args.device)
        model.load_state_dict(initial)  # both start from the same weights
        if not results:
            print(f"validation before training: {bits_per_char(model, val_ids, args.context, max_val):.3f} bits/char")
        train(name, model, make(param_groups(model, args.weight_decay)), train_ids, args)
        results[name] = bits_per_char(model, val_ids, args.context, max_val)
        print(f"{name}: validation {results[name]:.3f} bits/char", flush=True)
    diff = results["INNAprop"] - results["AdamW"]
    print(
        f"after {args.steps} steps: validation bits/char AdamW {results['AdamW']:.3f}, INNAprop "
        f"{results['INNAprop']:.3f} (INNAprop - AdamW = {diff:+.3f}; one seed, lower is better)"
    )


if __name__ == "__main__":
    main()
