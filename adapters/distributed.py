"""torch.distributed launch and process-group glue.

The reduction the step engine runs every step (weighted gradient all-reduce, sketch gathering,
rank-0 decisions) is part of the core, ``deba.training.distributed``; this module only starts and
ends a process group the way ``torchrun`` expects, for scripts that use ``deba.fit`` under DDP.
See docs/distributed.md.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from deba.errors import DebaConfigError
from deba.training.adapter import FrameworkAdapter
from deba.training.distributed import DistributedContext, context

__all__ = ["DistributedAdapter", "init_from_env", "shutdown"]

_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_from_env(backend: str | None = None, device: torch.device | str | None = None) -> DistributedContext | None:
    """Join the process group ``torchrun`` describes in the environment; ``None`` for a single process.

    Args:
        backend: ``"gloo"``, ``"nccl"``...; default ``nccl`` when CUDA is available, else ``gloo``.
        device: the device collectives use (default: CPU for gloo, the local CUDA device for nccl).

    Raises:
        DebaConfigError: ``WORLD_SIZE`` > 1 but the rendezvous variables are missing.

    Example:
        >>> from deba.adapters.distributed import init_from_env
        >>> init_from_env() is None  # not launched by torchrun
        True
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise DebaConfigError.single("environment", missing, "must be set (launch with torchrun)",
                                     remedy="Run the script as `torchrun --nproc-per-node N script.py`.")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return context(torch.device(device) if device is not None else None)


def shutdown() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DistributedAdapter(FrameworkAdapter):
    """The ``distributed`` adapter: ``create(backend=None)`` joins torchrun's process group.

    ``deba.fit`` then runs DDP by itself (one reduction, rank 0 decides).
    """

    name = "distributed"
    wraps = "torch.distributed / torchrun (deba.fit under DDP)"

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> DistributedContext | None:
        return init_from_env(*args, **kwargs)
