"""Slicing batches into micro-batches, and running them with gradient accumulation.

A batch is whatever a DataLoader yields: a tensor, a tuple/list of them (``(inputs, targets)``), or
a dict (HF style). Micro-batch ``i`` of ``b_i`` samples out of ``B`` has its mean loss weighted by
``b_i / B`` before backward, so the accumulated gradient equals the full-batch mean gradient.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from deba.errors import DebaConfigError, DebaError

__all__ = [
    "MicroBatchResult",
    "OutOfMemory",
    "batch_len",
    "call_model",
    "is_out_of_memory",
    "model_devices",
    "move_to",
    "run_micro_batches",
    "slice_batch",
    "split_sizes",
    "synchronize",
]


class OutOfMemory(DebaError):
    """Even a micro-batch of one sample does not fit."""


def batch_len(batch: Any) -> int:
    """Samples in a batch (the leading dimension of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return batch_len(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_len(next(iter(batch.values())))
    raise DebaConfigError.single("batch", type(batch).__name__, "must be a tensor, a tuple/list or a dict of tensors")


def slice_batch(batch: Any, lo: int, hi: int) -> Any:
    """Samples ``lo:hi`` of every tensor in the batch (non-tensors are kept whole)."""
    if isinstance(batch, torch.Tensor):
        return batch[lo:hi]
    if isinstance(batch, tuple):
        return tuple(slice_batch(b, lo, hi) for b in batch)
    if isinstance(batch, list):
        return [slice_batch(b, lo, hi) for b in batch]
    if isinstance(batch, dict):
        return {k: slice_batch(v, lo, hi) for k, v in batch.items()}
    return batch


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in the batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    return batch


def synchronize(device: torch.device | str) -> None:
    """Wait until ``device`` has run every kernel queued on it.

    CUDA runs kernels asynchronously: a timer read right after a step measures how fast the kernels
    were *launched*, not run. Every timer that feeds a throughput table or model reads through this
    (on the CPU it does nothing).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def model_devices(model: nn.Module) -> list[torch.device]:
    """The distinct devices of ``model``'s parameters and buffers (a model split over GPUs has several)."""
    seen: dict[torch.device, None] = {}
    for t in (*model.parameters(), *model.buffers()):
        seen.setdefault(t.device, None)
    return list(seen)


def split_sizes(n: int, cap: int | None) -> list[int]:
    """Near-equal micro-batch sizes summing to ``n``, none above ``cap``."""
    if cap is None or n <= cap:
        return [n]
    k = math.ceil(n / cap)
    base, extra = divmod(n, k)
    return [base + 1] * extra + [base] * (k - extra)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA or CPU)."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for a dict, ``model(*inputs)`` for a tuple/list, else ``model(inputs)``."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


@dataclass
class MicroBatchResult:
    """What one global batch produced."""

    loss: float
    samples: int
    micro_sizes: list[int]
    micro_sketches: list[np.ndarray] = field(default_factory=list)
    oom_events: list[dict[str, int]] = field(default_factory=list)
    cap: int | None = None

    @property
    def sketch_sizes(self) -> list[int]:
        """The sample counts of the micro-batches that have a sketch (under ``no_sync`` the last has none)."""
        return self.micro_sizes[: len(self.micro_sketches)]


def run_micro_batches(
    model: nn.Module | None,
    batch: Any,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    *,
    cap: int | None,
    forward_loss: Callable[[Any], torch.Tensor] | None = None,
    backward: Callable[[torch.Tensor], None] | None = None,
    sketch: Callable[[], torch.Tensor] | None = None,
    no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
    zero_grad: Callable[[], None] | None = None,
    after_micro: Callable[[int], None] | None = None,
) -> MicroBatchResult:
    """Forward and backward one global batch as micro-batches of at most ``cap`` samples.

    Either ``batch`` is ``(inputs, targets)`` and ``loss_fn(model(inputs), targets)`` is the mean
    loss of a micro-batch, or ``forward_loss(micro_batch)`` computes it for any batch structure
    (a dict for HF models). ``backward(loss)`` defaults to ``loss.backward()``. ``sketch()`` (the
    probe's) is read after each backward; differences between reads give one independent gradient
    estimate per micro-batch. ``no_sync`` wraps every micro-batch but the last (DDP). On
    out-of-memory the gradients are cleared with ``zero_grad``, the cap is halved and the whole
    batch re-run from its first sample, so no sample is lost or counted twice; each retry is
    reported in ``oom_events``. ``after_micro(size)`` is called after each micro-batch's backward
    (the step engine reads per-micro-batch gradient norms there on noise measurement steps); after
    an out-of-memory retry it starts again from the first micro-batch.
    """
    if forward_loss is None:
        if model is None or loss_fn is None:
            raise DebaConfigError.single("loss_fn", loss_fn, "is needed (with a model) when forward_loss is not given")
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DebaConfigError.single("batch", type(batch).__name__, "must be (inputs, targets)")

        def forward_loss(micro: Any) -> torch.Tensor:
            return loss_fn(call_model(model, micro[0]), micro[1])

    n = batch_len(batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor) else batch)
    events: list[dict[str, int]] = []
    while True:
        sizes = split_sizes(n, cap)
        try:
            return _accumulate(batch, forward_loss, backward, n, sizes, sketch, no_sync, events, cap, after_micro)
        except Exception as exc:  # noqa: BLE001 - only allocation failures are handled
            if not is_out_of_memory(exc):
                raise
            if zero_grad is not None:
                zero_grad()
            current = max(sizes)
            if current <= 1:
                raise OutOfMemory(
                    f"out of memory even with micro-batches of 1 sample (batch of {n}); "
                    "reduce the model or input size, or use a device with more memory"
                ) from exc
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            cap = max(1, current // 2)
            events.append({"batch": n, "failed_micro_batch": current, "new_cap": cap})


def _accumulate(batch, forward_loss, backward, n, sizes, sketch, no_sync, events, cap, after_micro=None) -> MicroBatchResult:
    total = None
    micro: list[np.ndarray] = []
    previous = None
    lo = 0
    for i, size in enumerate(sizes):
        hi = lo + size
        last = i == len(sizes) - 1
        ctx = no_sync() if (no_sync is not None and not last) else contextlib.nullcontext()
        with ctx:
            loss = forward_loss(slice_batch(batch, lo, hi) if len(sizes) > 1 else batch)
            scaled = loss * (size / n)
            if backward is None:
                scaled.backward()
            else:
                backward(scaled)
        if after_micro is not None:
            after_micro(size)
        weighted = loss.detach() * (size / n)
        total = weighted if total is None else total + weighted
        # Under DDP the last backward all-reduces .grad, so its difference is no longer this
        # rank's own estimate: only the unsynchronised micro-batches give independent estimates.
        if sketch is not None and len(sizes) > 1 and (no_sync is None or not last):
            now = sketch()
            part = now if previous is None else now - previous
            micro.append((part / (size / n)).double().cpu().numpy())
            previous = now
        lo = hi
    return MicroBatchResult(
        loss=float(total.item()) if total is not None else float("nan"),
        samples=n,
        micro_sizes=list(sizes),
        micro_sketches=micro,
        oom_events=list(events),
        cap=cap,
    )
