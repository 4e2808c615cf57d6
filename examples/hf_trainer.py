"""INNAprop in a Hugging Face Trainer: Trainer(optimizers=(INNAprop(...), scheduler)), on a GPT-2 built from scratch.

    python examples/hf_trainer.py                    # a 4-layer GPT-2 on Python standard-library source
    python examples/hf_trainer.py --text input.txt   # on your own text
    python examples/hf_trainer.py --smoke            # a few seconds on a CPU

The Trainer takes an optimizer and a scheduler you build yourself: here INNAprop with the usual AdamW weight-decay
groups (no decay on biases and LayerNorm) and transformers' warmup + cosine schedule, which the Trainer steps after
every optimizer step. The model is a GPT2LMHeadModel built from a GPT2Config (nothing downloaded) that reads bytes
(a vocabulary of 256, so no tokenizer is needed); the data set is a list of dicts in memory. The result is the
held-out loss in bits per byte. Needs pip install "inna[torch]" transformers accelerate.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, get_cosine_schedule_with_warmup

import inna


def byte_windows(data: bytes, context: int) -> list[dict[str, torch.Tensor]]:
    """Non-overlapping windows of ``context`` bytes; the model shifts the labels by one itself."""
    ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    n = len(ids) // context
    return [{"input_ids": w, "labels": w} for w in ids[: n * context].view(n, context)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", type=Path, help="a text file (default: the source of Python's argparse and inspect)")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak lr (default: %(default)s)")
    p.add_argument(
        "--weight-decay", type=float, default=0.1, help="on weight matrices and embeddings (default: %(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    p.add_argument("--context", type=int, default=128, help="bytes per training window (default: %(default)s)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks (default: %(default)s)")
    p.add_argument("--dim", type=int, default=128, help="model width (default: %(default)s)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default: %(default)s)")
    p.add_argument(
        "--output-dir", default="runs/hf-trainer", help="the Trainer's output directory (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: a tiny model, 20 steps, 20 kB of text")
    args = p.parse_args()
    if args.text is not None and not args.text.is_file():
        p.error(f"--text {args.text}: no such file")
    if args.smoke:
        args.steps, args.batch_size, args.context, args.layers, args.dim, args.heads = 20, 8, 32, 2, 32, 2
    if min(args.steps, args.batch_size, args.context, args.layers, args.dim, args.heads) < 1:
        p.error("--steps, --batch-size, --context, --layers, --dim and --heads must be at least 1")
    if args.dim % args.heads:
        p.error(f"--dim {args.dim} must be a multiple of --heads {args.heads}")

    if args.text is None:
        data = "\n".join(inspect.getsource(importlib.import_module(m)) for m in ("argparse", "inspect")).encode()
    else:
        try:
            data = args.text.read_bytes()
        except OSError as err:
            raise SystemExit(f"error: --text {args.text}: {err}") from None
    if args.smoke:
        data = data[:20_000]
    split = int(0.9 * len(data))
    train, held_out = byte_windows(data[:split], args.context), byte_windows(data[split:], args.context)
    if not held_out:
        raise SystemExit(f"error: the text is too short ({len(data)} bytes) for --context {args.context}")

    config = GPT2Config(
        vocab_size=256,
        n_positions=args.context,
        n_embd=args.dim,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # weight matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # biases and LayerNorm gains
    optimizer = inna.INNAprop(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        alpha=1.0,
        beta=1.0,
        sigma=0.99,  # the INNAprop authors' setting for language models
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=args.steps // 20, num_training_steps=args.steps
    )
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        max_grad_norm=1.0,
        logging_steps=max(1, args.steps // 5),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        seed=args.seed,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=held_out,
        optimizers=(optimizer, scheduler),  # the Trainer then creates neither
    )
    print(
        f"GPT-2 of {args.layers} layers, width {args.dim} ({model.num_parameters():,} parameters); "
        f"{len(train)} training and {len(held_out)} held-out windows of {args.context} bytes"
    )
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    print(
        f"final: held-out loss {after / math.log(2):.3f} bits/byte after {trainer.state.global_step} steps "
        f"(before training: {before / math.log(2):.3f}); INNAprop's lr is now {optimizer.param_groups[0]['lr']:.3g}"
    )


if __name__ == "__main__":
    main()
