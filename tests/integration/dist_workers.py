"""Worker functions for the distributed tests: run by torch.multiprocessing.spawn, 2 CPU ranks on gloo.

Every worker compares against a single-process run on the full batch, which rank 0 (or every rank)
builds locally from the same initial weights. Assertion errors propagate to the test through spawn.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from inna import INNA

GLOBAL_BATCH = 8
HPARAMS = dict(lr=0.05, alpha=0.5, beta=0.1, initial_speed=1.0)


def init(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch._inductor.config.compile_threads = 1  # the fused path compiles in-process: no worker pool to outlive us


def finish() -> None:
    """Leave a worker that succeeded without running C++ destructors at interpreter exit.

    A spawned rank that has used gloo sometimes aborted *while exiting* ("terminate called without an active
    exception"), after all its work and checks passed, which spawn reports as a failure; a barrier before
    ``destroy_process_group`` made it rare, this makes it impossible. Errors are raised before this point and
    still reach the test through spawn.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()


def global_batch(k: int):
    gen = torch.Generator().manual_seed(100 + k)
    x = torch.randn(GLOBAL_BATCH, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(GLOBAL_BATCH, 4, generator=gen, dtype=torch.float64)
    return x, y


def local_batch(k: int, rank: int, world: int):
    x, y = global_batch(k)
    n = GLOBAL_BATCH // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def reference_step(model: nn.Module, opt: torch.optim.Optimizer, k: int) -> None:
    opt.zero_grad()
    loss_fn(model, *global_batch(k)).backward()
    opt.step()


def assert_same_on_all_ranks(tensors: list[torch.Tensor]) -> None:
    for t in tensors:
        gathered = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, t.contiguous())
        assert all(torch.equal(gathered[0], g) for g in gathered[1:]), "parameters differ across ranks"


def ddp_and_zero(rank: int, world: int, port: int, steps: int) -> None:
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    init(rank, world, port)
    try:
        # --- DDP: identical on every rank, equal to single-process full-batch training
        for impl in (dict(), dict(foreach=False), dict(fused=True)):
            ref = make_model()
            ref_opt = INNA(ref.parameters(), **HPARAMS, **impl)
            model = DDP(make_model())
            opt = INNA(model.parameters(), **HPARAMS, **impl)
            for k in range(steps):
                opt.zero_grad()
                loss_fn(model, *local_batch(k, rank, world)).backward()
                opt.step()
                reference_step(ref, ref_opt, k)
                params = [p.detach() for p in model.module.parameters()]
                assert_same_on_all_ranks(params)
                for p, q in zip(params, ref.parameters()):
                    torch.testing.assert_close(p, q.detach(), rtol=0, atol=1e-12, msg=f"DDP {impl} step {k}")

        # --- ZeroRedundancyOptimizer(optimizer_class=INNA): parity, then consolidate_state_dict round trip
        ref = make_model()
        ref_opt = INNA(ref.parameters(), **HPARAMS)
        model = DDP(make_model())
        zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=INNA, **HPARAMS)
        for k in range(steps):
            zero.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            zero.step()
            reference_step(ref, ref_opt, k)
        for p, q in zip(model.module.parameters(), ref.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12, msg="ZeRO parity")
        # each rank holds INNA state for its own shard of the parameters only
        local = zero.optim
        owned = sum(len(g["params"]) for g in local.param_groups)
        assert 0 < owned < len(list(model.parameters())) and len(local.state) == owned

        zero.consolidate_state_dict(to=0)
        full = [zero.state_dict() if rank == 0 else None]
        dist.broadcast_object_list(full, src=0)
        consolidated = full[0]
        ref_sd = ref_opt.state_dict()
        assert consolidated["state"].keys() == ref_sd["state"].keys()
        for key, value in ref_sd["state"].items():
            torch.testing.assert_close(consolidated["state"][key]["phase"], value["phase"], rtol=0, atol=1e-12)
        # a fresh ZeRO optimizer resumes from the consolidated state
        fresh = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=INNA, **HPARAMS)
        fresh.load_state_dict(consolidated)
        for k in range(steps, steps + 3):
            fresh.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            fresh.step()
            reference_step(ref, ref_opt, k)
        for p, q in zip(model.module.parameters(), ref.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12, msg="ZeRO resume")
        dist.barrier()  # every rank is done with gloo before any tears it down
    finally:
        dist.destroy_process_group()
    finish()


def _fsdp_model(mesh, seed: int = 0) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    model = make_model(seed)
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def fsdp2(rank: int, world: int, port: int, steps: int, ckpt_dir: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    init(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (world,))
        for impl in (dict(), dict(foreach=False), dict(fused=True)):
            ref = make_model()
            ref_opt = INNA(ref.parameters(), **HPARAMS, **impl)
            model = _fsdp_model(mesh)
            opt = INNA(model.parameters(), **HPARAMS, **impl)  # built after fully_shard, on DTensor params
            for k in range(2 * steps):
                opt.zero_grad()
                loss_fn(model, *local_batch(k, rank, world)).backward()
                opt.step()
                reference_step(ref, ref_opt, k)
                if impl == {} and k == steps - 1:
                    msd, osd = get_state_dict(model, opt)
                    dcp.save({"model": msd, "optim": osd}, checkpoint_id=ckpt_dir)
            for p, q in zip(model.parameters(), ref.parameters()):
                torch.testing.assert_close(p.full_tensor(), q.detach(), rtol=0, atol=1e-12, msg=f"FSDP2 {impl}")
            # the state is sharded like the parameters: each rank holds only its shard
            for p in model.parameters():
                phase = opt.state[p]["phase"]
                assert isinstance(p, DTensor) and isinstance(phase, DTensor)
                assert phase.placements == p.placements and phase.to_local().shape == p.to_local().shape
                assert phase.to_local().shape[0] < p.shape[0]
            if impl == {}:
                full = [p.full_tensor() for p in model.parameters()]  # a collective: every rank takes part
                if rank == 0:
                    torch.save(full, Path(ckpt_dir) / "expected.pt")
        dist.barrier()  # every rank is done with gloo before any tears it down
    finally:
        dist.destroy_process_group()
    finish()


def fsdp2_resume(rank: int, world: int, port: int, steps: int, ckpt_dir: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    init(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (world,))
        model = _fsdp_model(mesh, seed=123)  # other weights: everything must come from the checkpoint
        opt = INNA(model.parameters(), **HPARAMS)
        before = [p.full_tensor() for p in model.parameters()]
        msd, osd = get_state_dict(model, opt)  # materialises INNA's state with a zero-lr, zero-grad step
        assert all(torch.equal(p.full_tensor(), b) for p, b in zip(model.parameters(), before)), "lr=0 step moved"
        assert all("phase" in opt.state[p] for p in model.parameters())
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=ckpt_dir)
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
        for k in range(steps, 2 * steps):
            opt.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            opt.step()
        expected = torch.load(Path(ckpt_dir) / "expected.pt", weights_only=True)
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p.full_tensor(), e, rtol=0, atol=0, msg="DCP resume")
        dist.barrier()  # every rank is done with gloo before any tears it down
    finally:
        dist.destroy_process_group()
    finish()


def hang(rank: int, seconds: float) -> None:
    """A rank that hangs (for the test of the spawn deadline)."""
    import time

    time.sleep(seconds)


INNAPROP_HPARAMS = dict(lr=0.01, alpha=0.5, beta=0.9, sigma=0.99, weight_decay=0.1)


def innaprop_all(rank: int, world: int, port: int, steps: int, ckpt_dir: str) -> None:
    """INNAprop in one worker run (to keep the distributed tests short): DDP, ZeRO, FSDP2 (all three paths) and a
    DCP checkpoint loaded into a fresh model and optimizer, each against single-process full-batch training."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.distributed.tensor import DTensor
    from torch.nn.parallel import DistributedDataParallel as DDP

    from inna import INNAprop

    init(rank, world, port)
    try:
        # --- DDP (default path): identical on every rank, equal to one process on the full batch
        ref = make_model()
        ref_opt = INNAprop(ref.parameters(), **INNAPROP_HPARAMS)
        model = DDP(make_model())
        opt = INNAprop(model.parameters(), **INNAPROP_HPARAMS)
        for k in range(steps):
            opt.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            opt.step()
            reference_step(ref, ref_opt, k)
            assert_same_on_all_ranks([p.detach() for p in model.module.parameters()])
        for p, q in zip(model.module.parameters(), ref.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12, msg="INNAprop DDP")

        # --- ZeroRedundancyOptimizer: parity, sharded state, consolidated state equal to the reference's
        ref = make_model()
        ref_opt = INNAprop(ref.parameters(), **INNAPROP_HPARAMS)
        model = DDP(make_model())
        zero = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=INNAprop, **INNAPROP_HPARAMS)
        for k in range(steps):
            zero.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            zero.step()
            reference_step(ref, ref_opt, k)
        for p, q in zip(model.module.parameters(), ref.parameters()):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-12, msg="INNAprop ZeRO")
        assert 0 < len(zero.optim.state) < len(list(model.parameters()))
        zero.consolidate_state_dict(to=0)
        if rank == 0:
            consolidated = zero.state_dict()
            for key, value in ref_opt.state_dict()["state"].items():
                for name in ("step", "exp_avg_sq", "phase"):
                    torch.testing.assert_close(consolidated["state"][key][name], value[name], rtol=0, atol=1e-12)

        # --- FSDP2 (DTensor parameters), all three paths; a DCP checkpoint of the default run at step `steps`
        mesh = init_device_mesh("cpu", (world,))
        for impl in (dict(), dict(foreach=False), dict(fused=True)):
            ref = make_model()
            ref_opt = INNAprop(ref.parameters(), **INNAPROP_HPARAMS, **impl)
            model = _fsdp_model(mesh)
            opt = INNAprop(model.parameters(), **INNAPROP_HPARAMS, **impl)
            for k in range(2 * steps):
                opt.zero_grad()
                loss_fn(model, *local_batch(k, rank, world)).backward()
                opt.step()
                reference_step(ref, ref_opt, k)
                if impl == {} and k == steps - 1:
                    msd, osd = get_state_dict(model, opt)
                    dcp.save({"model": msd, "optim": osd}, checkpoint_id=ckpt_dir)
            for p, q in zip(model.parameters(), ref.parameters()):
                torch.testing.assert_close(p.full_tensor(), q.detach(), rtol=0, atol=1e-12, msg=f"FSDP2 {impl}")
            for p in model.parameters():
                for name in ("exp_avg_sq", "phase"):
                    t = opt.state[p][name]
                    assert isinstance(t, DTensor) and t.placements == p.placements
                    assert t.to_local().shape == p.to_local().shape
            if impl == {}:
                expected = [p.full_tensor() for p in model.parameters()]

        # --- DCP: a fresh model (other weights) and optimizer load the checkpoint and continue exactly
        model = _fsdp_model(mesh, seed=123)
        opt = INNAprop(model.parameters(), **INNAPROP_HPARAMS)
        msd, osd = get_state_dict(model, opt)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=ckpt_dir)
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
        assert all(opt.state[p]["step"].item() == steps for p in model.parameters())
        for k in range(steps, 2 * steps):
            opt.zero_grad()
            loss_fn(model, *local_batch(k, rank, world)).backward()
            opt.step()
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p.full_tensor(), e, rtol=0, atol=0, msg="INNAprop DCP resume")
        dist.barrier()  # every rank is done with gloo before any tears it down
    finally:
        dist.destroy_process_group()
    finish()
