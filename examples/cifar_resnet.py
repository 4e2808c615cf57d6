"""ResNet-18 on CIFAR-10 or CIFAR-100 with INNA or INNAprop: a schedule, mixed precision, checkpoint and resume.

    python examples/cifar_resnet.py --data-dir ~/data                                  # INNA, gamma_0/sqrt(k+1)
    python examples/cifar_resnet.py --data-dir ~/data --optimizer innaprop --amp       # INNAprop, warmup + cosine
    python examples/cifar_resnet.py --data-dir ~/data --checkpoint runs/c10.pt         # rerun it to resume
    python examples/cifar_resnet.py --data-dir ~/data --smoke                          # a few seconds on a CPU

--data-dir holds the official "python version" of CIFAR (cifar-10-python.tar.gz from
https://www.cs.toronto.edu/~kriz/cifar.html, or its extracted cifar-10-batches-py/ folder; cifar-100-python for
--dataset cifar100), read and checked by inna.bench.load_dataset. Nothing is downloaded.

INNA starts from the paper's setting (alpha=0.5, beta=0.1, lr 0.1 decayed as lr/sqrt(k+1) once per mini-batch);
INNAprop from its authors' CIFAR setting (alpha=beta=2, lr 1e-3, weight decay 0.01, cosine). Tune the lr.
--amp trains under autocast: bfloat16 on a CPU, float16 with a GradScaler on a GPU. With --checkpoint, the run
saves everything after every epoch (atomically) and a rerun of the same command continues from there: on a CPU
the resumed run ends on exactly the weights of an uninterrupted one (the batch order is derived from the seed
and the epoch).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import inna
from inna.bench import BenchError, load_dataset

#: optimizer -> (lr, alpha, beta, weight decay, schedule) it starts from
DEFAULTS = {
    "inna": (0.1, 0.5, 0.1, 0.0, "power"),
    "innaprop": (1e-3, 2.0, 2.0, 0.01, "cosine"),
}


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images: a 3x3 stem without max-pool, four stages of two basic blocks."""

    def __init__(self, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, c_in = [], width
        for stage, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**stage
            blocks += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The standard CIFAR augmentation: a random horizontal flip and a random 32x32 crop of the 4-pixel padded image.
    The random numbers come from ``gen`` (on the CPU), so the batches are the same on every device."""
    n, dev = len(x), x.device
    flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (4, 4, 4, 4))
    rows, cols = torch.randint(0, 9, (2, n, 1), generator=gen).to(dev) + torch.arange(32, device=dev)
    batch, channel = torch.arange(n, device=dev)[:, None, None, None], torch.arange(3, device=dev)[:, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def warmup_cosine(warmup: int, total: int):
    """lr factor at step k: linear warmup over ``warmup`` steps, then a cosine from 1 to 0 at step ``total``."""

    def factor(k: int) -> float:
        if k < warmup:
            return (k + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (k - warmup) / max(1, total - warmup))))

    return factor


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad(), autocast():
        for i in range(0, len(x), 500):
            logits = model(x[i : i + 500]).float()
            loss += F.cross_entropy(logits, y[i : i + 500], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + 500]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with the CIFAR python batches or their .tar.gz")
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar10", help="(default: %(default)s)")
    p.add_argument("--optimizer", choices=list(DEFAULTS), default="inna", help="(default: %(default)s)")
    p.add_argument(
        "--schedule",
        choices=["power", "cosine"],
        help="power: lr/sqrt(k+1) per mini-batch; "
        "cosine: 1 epoch of linear warmup then a cosine to 0 (default: power for INNA, cosine for INNAprop)",
    )
    p.add_argument("--lr", type=float, help="initial step gamma_0 (default: 0.1 for INNA, 1e-3 for INNAprop)")
    p.add_argument("--alpha", type=float, help="friction alpha (default: 0.5 for INNA, 2 for INNAprop)")
    p.add_argument("--beta", type=float, help="Newtonian damping beta (default: 0.1 for INNA, 2 for INNAprop)")
    p.add_argument("--weight-decay", type=float, help="default: 0 for INNA, 0.01 (decoupled) for INNAprop")
    p.add_argument("--epochs", type=int, default=30, help="epochs in all (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    p.add_argument(
        "--width", type=int, default=64, help="channels of the first stage (default: %(default)s, the real ResNet-18)"
    )
    p.add_argument("--amp", action="store_true", help="autocast: bfloat16 on CPU, float16 + GradScaler on CUDA")
    p.add_argument("--checkpoint", type=Path, help="save here after every epoch; resume from it if it exists")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N epochs of this run (rerun to go on)")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batch order (default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="(default: %(default)s)")
    p.add_argument("--smoke", action="store_true", help="a few seconds: width 8, 128 images, at most 2 epochs")
    args = p.parse_args()
    lr, alpha, beta, wd, schedule = DEFAULTS[args.optimizer]
    args.lr = lr if args.lr is None else args.lr
    args.alpha = alpha if args.alpha is None else args.alpha
    args.beta = beta if args.beta is None else args.beta
    args.weight_decay = wd if args.weight_decay is None else args.weight_decay
    args.schedule = args.schedule or schedule
    if args.smoke:
        args.width, args.batch_size, args.epochs = 8, 32, min(args.epochs, 2)
    if args.epochs < 1 or args.batch_size < 2 or args.width < 1:
        p.error("--epochs and --width must be at least 1, --batch-size at least 2")
    if args.stop_after is not None and (args.checkpoint is None or args.stop_after < 1):
        p.error("--stop-after N needs N >= 1 and a --checkpoint to continue from")
    return args


#: what a checkpoint must agree on with the command that resumes it
SETTINGS = "dataset optimizer schedule lr alpha beta weight_decay epochs batch_size width amp seed smoke".split()


def load_checkpoint(path: Path, args: argparse.Namespace) -> dict:
    ckpt = torch.load(path, map_location=args.device, weights_only=True)  # tensors and plain values only
    for name in SETTINGS:
        if ckpt["settings"][name] != getattr(args, name):
            raise SystemExit(
                f"{path} was written with {name}={ckpt['settings'][name]!r}, this run has "
                f"{getattr(args, name)!r}: rerun with the same options, or pass another --checkpoint"
            )
    return ckpt


def save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint whole


def build_optimizer(model: nn.Module, args: argparse.Namespace, steps_per_epoch: int):
    hyper = dict(lr=args.lr, alpha=args.alpha, beta=args.beta, weight_decay=args.weight_decay)
    if args.optimizer == "inna":
        opt = inna.INNA(model.parameters(), **hyper, decoupled_weight_decay=True)
    else:
        opt = inna.INNAprop(model.parameters(), **hyper)
    if args.schedule == "power":  # the paper's gamma_0 / sqrt(k + 1), k = mini-batches so far
        return opt, inna.PowerDecayLR(opt)
    total = args.epochs * steps_per_epoch
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps_per_epoch, total))


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    try:
        data = load_dataset(args.dataset, args.data_dir)  # every file checked; nothing in it can run code
    except BenchError as err:  # a missing or damaged file: the message names it
        raise SystemExit(f"error: {err}") from None
    if args.smoke:
        data = data.subset(train=128, test=64)
    mean, std = data.x_train.mean(dim=(0, 2, 3), keepdim=True), data.x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, y_train = ((data.x_train - mean) / std).to(device), data.y_train.to(device)
    x_test, y_test = ((data.x_test - mean) / std).to(device), data.y_test.to(device)
    steps_per_epoch = len(x_train) // args.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the {len(x_train)} training images")

    torch.manual_seed(args.seed)
    model = ResNet18(data.num_classes, args.width).to(device)
    opt, sched = build_optimizer(model, args, steps_per_epoch)
    # bfloat16 needs no loss scaling; float16 does (its small gradients would underflow)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp)

    start = 0
    if args.checkpoint is not None and args.checkpoint.exists():
        ckpt = load_checkpoint(args.checkpoint, args)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start = ckpt["epoch"]
        print(f"resumed from {args.checkpoint} after epoch {start}")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.dataset}: {len(x_train)} train / {len(x_test)} test images, ResNet-18 of width {args.width} "
        f"({n_params:,} parameters) on {device}; {args.optimizer} lr={args.lr} alpha={args.alpha} "
        f"beta={args.beta}, {args.schedule} schedule{', AMP' if args.amp else ''}"
    )

    end = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    for epoch in range(start, end):
        t0, total = time.perf_counter(), 0.0
        gen = torch.Generator().manual_seed(args.seed * 100_003 + epoch)  # the epoch's batches: seed and epoch
        order = torch.randperm(len(x_train), generator=gen).to(device)
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            with autocast():
                loss = F.cross_entropy(model(augment(x_train[idx], gen)), y_train[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # with the scaler disabled: loss.backward(), opt.step()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += loss.item()
        test_loss, test_acc = evaluate(model, x_test, y_test, autocast)
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {total / steps_per_epoch:.4f}, test loss "
            f"{test_loss:.4f}, test accuracy {100 * test_acc:.2f} %, lr {sched.get_last_lr()[0]:.3g}, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        if args.checkpoint is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
            }
            settings = {name: getattr(args, name) for name in SETTINGS}
            save_checkpoint(args.checkpoint, {"epoch": epoch + 1, "settings": settings, **state})
    if end < args.epochs:
        print(f"stopped after epoch {end} of {args.epochs}: rerun the same command to continue")
    else:
        test_loss, test_acc = evaluate(model, x_test, y_test, autocast)
        print(f"final: test accuracy {100 * test_acc:.2f} %, test loss {test_loss:.4f}")


if __name__ == "__main__":
    main()
