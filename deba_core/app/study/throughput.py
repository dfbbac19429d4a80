"""The study's throughput table: samples/s of full training steps, timed with repeats.

Every size is timed in several interleaved rounds (so a burst of machine load hits all sizes
alike), each round a few full steps (forward, backward, optimizer step; micro-batched at the
memory cap as training would run it). The table is the median over rounds, reported with its
spread (the lowest and highest round), and it is what the study's *modelled time* (sum over steps
of ``B / T(B)``) is computed from.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from deba.training.batching import model_devices, run_micro_batches, synchronize

__all__ = ["measure_table", "table_sizes", "timed_train_steps"]


def table_sizes(b0: int, max_batch: int) -> list[int]:
    """``B0/2, B0, 2 B0, ...`` up to ``max_batch`` (and ``max_batch`` itself)."""
    sizes = [max(1, b0 // 2)]
    b = b0
    while b <= max_batch:
        sizes.append(b)
        b *= 2
    if sizes[-1] != max_batch:
        sizes.append(max_batch)
    return sorted(set(sizes))


def timed_train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple, *, cap: int | None,
                      steps: int = 3) -> float:
    """Samples/s of ``steps`` full training steps on ``batch`` (one untimed warm-up step first)."""
    model.train()

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        run_micro_batches(model, batch, torch.nn.functional.cross_entropy, cap=cap)
        opt.step()

    devices = model_devices(model)
    one()
    for device in devices:  # a GPU's queued kernels are timed too, not only their launches
        synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    for device in devices:
        synchronize(device)
    return len(batch[1]) * steps / (time.perf_counter() - t0)


def measure_table(build: Callable[[], tuple[torch.nn.Module, torch.optim.Optimizer]], data: Any, sizes: list[int], *,
                  cap: int | None, rounds: int = 5, seconds_per_size: float = 0.4, device: str = "cpu"
                  ) -> dict[str, Any]:
    """``{"samples_per_s": {B: median}, "low": {B: min}, "high": {B: max}, "rounds": n}`` over ``sizes``.

    ``build()`` gives a fresh model and optimizer (their state is changed by the timed steps).
    """
    model, opt = build()
    model.to(device)
    x, y = data.train.tensors
    batches = {}
    for b in sizes:
        reps = -(-b // len(y))
        batches[b] = (x.repeat(reps, *([1] * (x.dim() - 1)))[:b].to(device), y.repeat(reps)[:b].to(device))
    # steps per timing from one probe step each, so every size takes about the same time
    steps = {}
    for b in sizes:
        t0 = time.perf_counter()
        timed_train_steps(model, opt, batches[b], cap=cap, steps=1)
        steps[b] = max(1, min(50, int(seconds_per_size / max((time.perf_counter() - t0) / 2, 1e-6))))
    runs: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b in sizes:
            runs[b].append(timed_train_steps(model, opt, batches[b], cap=cap, steps=steps[b]))
    return {"samples_per_s": {str(b): statistics.median(v) for b, v in runs.items()},
            "low": {str(b): min(v) for b, v in runs.items()}, "high": {str(b): max(v) for b, v in runs.items()},
            "rounds": rounds}
