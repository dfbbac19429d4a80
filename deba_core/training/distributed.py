"""torch.distributed (DDP) support: one decision per step, made once and broadcast.

What happens each optimizer step on every rank (see docs/distributed.md):

1. the sampler gives this rank its strided shard ``global_batch[rank::world]`` of the global batch
   (every rank walks the same global batches, so every rank runs the same number of steps and
   nobody waits on a collective that never comes - no hang on uneven epoch ends);
2. all micro-batches run under ``no_sync`` (gradients stay local), each loss weighted by its share
   of the rank's shard; the reduction then weights each rank by its shard's share of the global
   batch, so the result is the full-batch mean even when shards differ;
3. this rank's gradient sketches (one per micro-batch, or its whole-shard sketch) are read while
   the gradient is still local, then the gradients are all-reduced (averaged) in one flattened
   bucket per dtype - the same result DDP's own reduction gives;
4. ``[loss * n, n]`` is all-reduced (the global mean loss) and the sketches all-gathered, so every
   rank builds the same observation, with the ranks as independent gradient estimates for
   ``grad_variance``; the gradient norm is read from the reduced gradient (equal on every rank);
5. rank 0's scheduler decides and broadcasts the decision; the other ranks feed their schedulers
   the same observation; when any rank decided otherwise (each rank times its own steps), rank 0's
   whole scheduler state is broadcast and loaded, so every rank holds rank 0's state.

Works with ``gloo`` on CPU and ``nccl`` on GPUs (tensors for collectives live on the gradient's
device).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from deba.control.decision import Decision
from deba.errors import DebaConfigError

__all__ = ["DistributedContext", "allreduce_gradients", "broadcast_module", "context", "is_distributed", "local_no_sync"]


def is_distributed() -> bool:
    """Whether torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass
class DistributedContext:
    """Rank, world size and the device collectives use."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_granularity(self, granularity: int) -> None:
        """Equal per-rank shards need the global batch grid to divide by the world size."""
        if granularity % self.world:
            raise DebaConfigError.single(
                "granularity", granularity, f"must be a multiple of the world size ({self.world}) so every global "
                "batch splits into equal per-rank shards",
                remedy=f"Use a profile with granularity {self.world * max(1, granularity // self.world + 1)} "
                       f"(or any multiple of {self.world}).",
            )

    def sum(self, values: Sequence[float]) -> list[float]:
        """All-reduce (sum) a few floats."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather_sketches(self, sketches: list[np.ndarray], sizes: list[int], length: int) -> tuple[list[np.ndarray], list[int]]:
        """Every rank's micro-batch sketches and sample counts, in rank order."""
        k = torch.tensor([len(sketches)], device=self.device)
        counts = [torch.zeros_like(k) for _ in range(self.world)]
        dist.all_gather(counts, k)
        counts = torch.cat(counts).tolist()  # one host transfer, not one per rank
        most = max(counts)
        pad = torch.zeros(most, length + 1, dtype=torch.float64, device=self.device)
        for i, (s, n) in enumerate(zip(sketches, sizes)):
            pad[i, 0] = float(n)
            pad[i, 1:] = torch.as_tensor(s, dtype=torch.float64, device=self.device)
        gathered = [torch.zeros_like(pad) for _ in range(self.world)]
        dist.all_gather(gathered, pad)
        out_s, out_n = [], []
        for rank_rows, c in zip(gathered, counts):
            for row in rank_rows[:c].cpu().numpy():
                if row[0] > 0:
                    out_n.append(int(row[0]))
                    out_s.append(row[1:])
        return out_s, out_n

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (one small all-reduce)."""
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (JSON-able data), on every rank."""
        box: list[Any] = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_decision(self, decision: Decision) -> Decision:
        """Rank 0's decision, on every rank."""
        box: list[Any] = [decision.to_dict() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return Decision(**box[0])

    def gather_objects(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        dist.barrier()


def context(device: torch.device | None = None) -> DistributedContext | None:
    """The current distributed context, or ``None`` outside a multi-process group."""
    if not is_distributed():
        return None
    backend = dist.get_backend()
    dev = device if device is not None else torch.device("cpu")
    if backend == "nccl" and dev.type != "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    return DistributedContext(dist.get_rank(), dist.get_world_size(), dev)


def allreduce_gradients(params: Sequence[torch.Tensor], world: int, weight: float | None = None,
                        total: float | None = None) -> None:
    """Combine ``.grad`` over ranks in one flattened all-reduce per (device, dtype).

    Plain average by default; with ``weight`` (this rank's samples) and ``total`` (all ranks'
    samples) the sample-weighted mean, which is the full-batch gradient even when shards differ.
    A parameter without a gradient on this rank contributes zeros, so every rank sends the same
    buffer layout.
    """
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for plist in groups.values():
        flat = torch.cat([p.grad.reshape(-1) for p in plist])
        if weight is not None and total:
            flat *= weight / total  # scaled before the sum, so low-precision gradients cannot overflow
            dist.all_reduce(flat)
        else:
            dist.all_reduce(flat)
            flat /= world
        offset = 0
        for p in plist:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def broadcast_module(module: nn.Module, buffers_only: bool = False) -> None:
    """Make every rank hold rank 0's parameters (and buffers such as BatchNorm statistics)."""
    tensors = list(module.buffers()) + ([] if buffers_only else [p.data for p in module.parameters()])
    for t in tensors:
        dist.broadcast(t, src=0)


def local_no_sync(model: nn.Module):
    """``model.no_sync`` for a DDP model, a null context otherwise."""
    return model.no_sync() if isinstance(model, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
