"""Multi-process data-parallel training through torch.distributed.

A job is started by ``torchrun`` (or ``linkgan train --gpus N``, which runs torchrun), which
sets RANK, WORLD_SIZE and LOCAL_RANK in every process. Each process keeps a full copy of
G, D and G_ema; they start from the same weights (rank 0's, broadcast), train on their
own share of the global batch with their own latents, and average their gradients after
every phase's backward pass, so the copies stay identical. NCCL on CUDA, gloo on CPU.

Gradients are averaged by hand, one flat all-reduce per phase, rather than through
``DistributedDataParallel``: the training phases switch ``requires_grad`` on and off per
network and call G in several different ways (mapping only, synthesis of edited latents,
path-length gradients), which DDP's hooks do not follow.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from .device import select_device


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the job: rank r of ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_spec: str = "auto") -> DistEnv:
    """Joins the process group that torchrun set up (a no-op in a single process).

    Under torchrun on a CUDA machine, process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(device_spec)
    if world <= 1:
        return DistEnv(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {rank} has LOCAL_RANK {local_rank} but this machine has only "
                               f"{torch.cuda.device_count()} GPU(s); start at most that many processes per node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # FID/KID at a snapshot run on rank 0 while the others wait in a collective; an hour
        # covers fid50k on a GPU with room to spare (the default is 10-30 minutes).
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
    return DistEnv(rank=rank, world=world, local_rank=local_rank, device=device)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank r's training stream (latents, noise, perturbations); rank 0 keeps ``seed``."""
    return seed + 1_000_003 * rank


def broadcast_module(module: nn.Module, env: DistEnv) -> None:
    """Copies rank 0's parameters and buffers to every rank."""
    if not env.active:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params, env: DistEnv) -> None:
    """Replaces every parameter's gradient by its mean over the ranks (one all-reduce).

    A parameter without a gradient on this rank counts as a zero gradient, so that every
    rank sends the same flat buffer.
    """
    if not env.active:
        return
    params = [p for p in params if p.requires_grad or p.grad is not None]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    flat /= env.world
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset:offset + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += n


def average_tensors(tensors, env: DistEnv) -> None:
    """Averages floating tensors (running statistics such as w_avg) in place over the ranks."""
    if not env.active:
        return
    tensors = [t for t in tensors if t.is_floating_point()]
    if not tensors:
        return
    flat = torch.cat([t.detach().flatten() for t in tensors])
    dist.all_reduce(flat)
    flat /= env.world
    offset = 0
    for t in tensors:
        t.data.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def all_gather_objects(obj, env: DistEnv) -> list:
    """Every rank's ``obj`` (picklable, small), in rank order; [obj] in a single process."""
    if not env.active:
        return [obj]
    out = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.active:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    """Leaves the process group once every rank has arrived (call it after a clean finish only:
    after an error, exit instead, and torchrun stops the other ranks). Destroying the group
    while another rank still works in it can abort the process ("terminate called without an
    active exception")."""
    if env.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command that runs ``linkgan ARGV`` in ``nproc`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "linkgan", *argv]


def strip_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out
