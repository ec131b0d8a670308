"""Data-parallel plumbing over ``torch.distributed``: process-group setup from the
environment ``torchrun`` provides (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), gloo on CPU and NCCL on GPU, and the few collectives the trainer
needs. With WORLD_SIZE unset or 1 everything is a cheap no-op."""
from __future__ import annotations

import contextlib
import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # this object initialised the process group (and tears it down)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def gather_bytes(self, data: bytes, device: torch.device) -> list[bytes]:
        """Every rank's ``data``, indexed by rank (for per-rank RNG states)."""
        if not self.active:
            return [data]
        size = torch.tensor([len(data)], device=device)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        dist.all_gather(sizes, size)
        longest = int(max(s.item() for s in sizes))
        buf = torch.zeros(longest, dtype=torch.uint8, device=device)
        buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if data else 0
        bufs = [torch.zeros_like(buf) for _ in range(self.world)]
        dist.all_gather(bufs, buf)
        return [bytes(b[: int(s.item())].cpu().numpy().tobytes()) for b, s in zip(bufs, sizes)]

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
            self.owned = False


def init(device_kind: str) -> Dist:
    """Join the process group the environment describes (already joined: reuse it)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Dist(rank, world, local, owned=True)


def wrap(module: torch.nn.Module, d: Dist, device: torch.device, find_unused: bool = False) -> torch.nn.Module:
    """DDP around ``module`` when there are several ranks (it broadcasts rank 0's weights)."""
    if not d.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else d.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def no_sync(model: torch.nn.Module, skip: bool):
    """DDP's ``no_sync`` (no gradient all-reduce) for all but the last micro-batch."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()
