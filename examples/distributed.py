"""Data-parallel training with INNA: DDP or FSDP2, with a distributed checkpoint you can resume from.

    torchrun --standalone --nproc-per-node 2 examples/distributed.py                  # DDP on CPU (gloo)
    torchrun --standalone --nproc-per-node 2 examples/distributed.py --fsdp           # FSDP2: sharded state
    torchrun --standalone --nproc-per-node 2 examples/distributed.py --fsdp --resume  # continue from checkpoint

Each rank trains on its half of every batch of scikit-learn's digits; INNA runs after the gradients are
averaged, so every rank (or every shard) takes the same step. The checkpoint is written with
torch.distributed.checkpoint (model + INNA state + scheduler), one file per rank.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from sklearn.datasets import load_digits
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from inna import INNA, PowerDecayLR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP2 (fully_shard) instead of DDP")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64, help="global batch size")
    parser.add_argument("--checkpoint", default="runs/distributed-ckpt")
    parser.add_argument("--resume", action="store_true", help="load --checkpoint before training")
    args = parser.parse_args()

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if backend == "nccl" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32, device=device)
    y = torch.tensor(y, device=device)
    torch.manual_seed(0)  # same initial weights on every rank
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model)  # parameters are now DTensors; build the optimizer after this
    else:
        model = nn.parallel.DistributedDataParallel(model)
    opt = INNA(model.parameters(), lr=1.0, alpha=0.5, beta=1.0)
    sched = PowerDecayLR(opt)

    start = 0
    if args.resume:
        model_sd, optim_sd = get_state_dict(model, opt)
        state = {"model": model_sd, "optim": optim_sd, "extra": {"step": 0, "sched": sched.state_dict()}}
        dcp.load(state, checkpoint_id=args.checkpoint)
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
        sched.load_state_dict(state["extra"]["sched"])
        start = state["extra"]["step"]

    gen = torch.Generator().manual_seed(1)
    local = args.batch // world
    loss_fn = nn.CrossEntropyLoss()
    for step in range(start, start + args.steps):
        idx = torch.randint(len(x), (args.batch,), generator=gen)[rank * local : (rank + 1) * local].to(device)
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        sched.step()
        if rank == 0 and (step + 1) % 100 == 0:
            print(f"step {step + 1}: loss {loss.item():.4f}, lr {sched.get_last_lr()[0]:.4f}", flush=True)

    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean()
    model_sd, optim_sd = get_state_dict(model, opt)
    extra = {"step": start + args.steps, "sched": sched.state_dict()}
    dcp.save({"model": model_sd, "optim": optim_sd, "extra": extra}, checkpoint_id=args.checkpoint)
    if rank == 0:
        mode = "FSDP2" if args.fsdp else "DDP"
        print(f"{mode} on {world} ranks: {start + args.steps} steps, training accuracy {acc.item():.3f}")
        print(f"checkpoint: {args.checkpoint}")
    dist.barrier()  # no rank tears gloo down while another is still using it
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
