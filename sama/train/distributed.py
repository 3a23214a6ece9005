"""Process-group setup, model wrapping (DDP / FSDP2 / DeepSpeed) and the clean-exit teardown for distributed runs.

The same code runs on one CPU, one GPU, or many GPUs/nodes started by ``torchrun`` / ``accelerate launch`` (both set
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). FSDP1 does not run on CPU, so FSDP means FSDP2
``fully_shard`` (DEPENDENCIES.md §7).
"""

from __future__ import annotations

import gc
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sama.errors import ConfigError


@dataclass
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(strategy: str) -> DistInfo:
    """Initialise the process group from the launcher's environment (gloo on CPU, nccl on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if strategy == "single" and world_size > 1:
        raise ConfigError(f"strategy 'single' cannot run with WORLD_SIZE={world_size}; use ddp, fsdp2 or deepspeed_*")
    initialized_here = False
    if world_size > 1 and not dist.is_initialized():
        if strategy.startswith("deepspeed"):
            deepspeed = require_deepspeed(strategy)
            deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
        else:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        initialized_here = True
    return DistInfo(rank, world_size, local_rank, device, initialized_here)


def resolve_strategy(strategy: str, world_size: int) -> str:
    """``auto`` → ``ddp`` when several processes run, else ``single``."""
    if strategy == "auto":
        return "ddp" if world_size > 1 else "single"
    return strategy


def require_deepspeed(strategy: str) -> Any:
    """Import DeepSpeed or explain how to get it."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            f"strategy {strategy!r} needs DeepSpeed, which is not installed; "
            "run `pip install --no-build-isolation deepspeed==0.19.8` or choose ddp / fsdp2"
        )
    import deepspeed

    return deepspeed


def wrap_model(model: nn.Module, strategy: str, info: DistInfo, find_unused_parameters: bool = True) -> nn.Module:
    """Wrap for DDP or shard with FSDP2 (per top-level child holding parameters, then the root)."""
    if strategy == "single" or (strategy == "ddp" and not info.distributed):
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [info.local_rank] if info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
    if strategy == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for child in model.children():
            if any(p.requires_grad for p in child.parameters()):
                fully_shard(child)
        fully_shard(model)
        return model
    raise ConfigError(f"strategy {strategy!r} is handled by the DeepSpeed engine, not wrap_model")


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside a DDP / DeepSpeed wrapper (FSDP2 shards in place)."""
    return getattr(model, "module", model)


def all_reduce_flag(value: bool, info: DistInfo) -> bool:
    """True when ``value`` is true on any rank."""
    if not info.distributed:
        return value
    flag = torch.tensor([1.0 if value else 0.0], device=info.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def mean_across_ranks(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.distributed:
        return values
    values = values.detach().clone().to(info.device)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / info.world_size


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


def teardown(info: DistInfo) -> None:
    """Clean exit: collect the wrapped model's buffers, sync, destroy the group (DEPENDENCIES.md §7 exit-crash fix).

    The caller must drop its own references to the wrapped model before calling this.
    """
    gc.collect()
    if info.initialized_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
