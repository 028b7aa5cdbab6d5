"""Multi-GPU training through torch.distributed, for runs launched by ``torchrun``.

Launched as ``torchrun --nproc_per_node=N -m odebench.bench.cli run --spec S --device cuda``, every process walks the
same sweep plan. Each training step is data parallel (DistributedDataParallel): rank r draws its own
``batch_size / N`` examples from a generator seeded by (seed, model, r), so the global batch equals the
spec's ``train.batch_size`` and the model cache key is unchanged; gradients are averaged over the ranks, so
all ranks hold the same weights and the same EMA. Rank 0 alone saves models, evaluates cells and writes
records; the other ranks move on to the next training and wait for it there.

A single process (no WORLD_SIZE, or WORLD_SIZE=1) never touches this module's process group: the
single-process path is unchanged.
"""

from __future__ import annotations

import datetime
import os

import torch
from torch import nn

#: how long ranks wait for one another (rank 0 evaluates while the others wait at the next training)
TIMEOUT = datetime.timedelta(hours=6)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True when launched by torchrun (or similar) with more than one process."""
    return world_size() > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Rank 0, or the only process."""
    return rank() == 0


def init(device: str) -> str:
    """Join the process group once (NCCL on CUDA, gloo on CPU); returns this rank's device."""
    import torch.distributed as dist

    dev = torch.device(device)
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def local_batch(batch_size: int) -> int:
    """This rank's share of the global batch; the global batch must split evenly."""
    n = world_size()
    if batch_size % n:
        raise ValueError(f"train.batch_size = {batch_size} does not split over {n} processes; use a multiple "
                         f"of {n}")
    return batch_size // n


def wrap(model: nn.ModuleDict) -> nn.ModuleDict:
    """The same networks, each behind DistributedDataParallel (methods call ``model[name](...)``, so every
    network is wrapped on its own); parameters are shared with ``model``, not copied."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    dev = next(model.parameters()).device
    ids = [dev.index] if dev.type == "cuda" else None
    return nn.ModuleDict({k: DDP(m, device_ids=ids) for k, m in model.items()})


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
