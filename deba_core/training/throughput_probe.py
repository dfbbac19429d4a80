"""A short start-up probe of throughput at a few candidate batch sizes.

Goodput compares ``T(B)`` at sizes training has not visited yet; before the first growth only the
starting batch is measured, so nothing could be predicted. The probe times assembling, forward and
backward of real batches at ``B0/2, B0, 2 B0, 4 B0, ...`` (micro-batched under the memory cap, as training
would run them) before training starts. Sizes up to ``B0`` are always timed; past ``B0`` it stops
after the size at which it has spent 5 s, or ``PROBE_SHARE`` of the run's expected length, whichever
comes first (the size that crosses the limit is timed in full). The probe is time a fixed batch
does not spend: ``deba.fit`` counts it in the run's training time. It leaves the model as it found it: gradients
cleared, buffers (BatchNorm statistics) and torch's CPU and CUDA RNG states restored; no optimizer
step is taken. It runs in full precision (under ``amp`` the training steps are faster than probed;
the training-minus-probe offset corrects only an additive part of that).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from deba.control.throughput import ThroughputModel
from deba.errors import DebaConfigError
from deba.training.batching import model_devices, run_micro_batches, synchronize

__all__ = ["PROBE_REPEATS", "PROBE_SHARE", "candidate_sizes", "passes_per_size", "probe_throughput", "startup_sizes"]

PROBE_REPEATS = 3  # passes per size in fit's start-up probe (the first a warm-up)
# The probe is time a fixed batch does not spend. Past the starting batch it may take at most this
# share of the run's expected length (the budget at the starting batch's measured throughput): on
# a run of 15 s, 5 s of probing cost more than growing could save (a third of the run, measured).
PROBE_SHARE = 0.01


def candidate_sizes(start: int, max_batch: int, granularity: int, count: int = 4) -> list[int]:
    """``start, 2 start, 4 start, ...`` (on the grid, within ``max_batch``), ``count`` sizes at most.

    Example:
        >>> candidate_sizes(32, 200, 8)
        [32, 64, 128, 200]
    """
    sizes, b = [], start
    while len(sizes) < count:
        b = min(max_batch, b)
        b -= b % granularity
        if b < 1 or (sizes and b <= sizes[-1]):
            break
        sizes.append(b)
        b *= 2
    return sizes


def startup_sizes(start: int, max_batch: int, granularity: int, world: int = 1) -> list[int]:
    """The sizes a start-up probe times: half the starting batch (a noise measurement step runs two
    halves, and what that costs, ``T(B)/T(B/2)``, sets how often DEBA measures), then
    :func:`candidate_sizes` from the starting batch. Global sizes; ``world`` ranks share each.

    Example:
        >>> startup_sizes(32, 200, 8)
        [16, 32, 64, 128, 200]
    """
    half = [world * max(1, -(-start // (2 * world)))] if start >= 2 * world else []
    return half + candidate_sizes(start, max_batch, granularity)


def passes_per_size(repeats: int = PROBE_REPEATS) -> int:
    """Passes the probe runs at each size for ``repeats`` (at least one warm-up and one timed).

    Example:
        >>> passes_per_size(3), passes_per_size(1)
        (3, 2)
    """
    return max(2, repeats)


def _check_limits(max_seconds: float, run_samples: float | None, run_share: float) -> None:
    if max_seconds < 0 or (run_samples is not None and run_samples < 0):
        raise DebaConfigError.single("max_seconds, run_samples", (max_seconds, run_samples), "must be >= 0")
    if not 0.0 <= run_share <= 1.0:
        raise DebaConfigError.single("run_share", run_share, "must be in [0, 1]")


def probe_throughput(model: nn.Module, forward_loss: Callable[[Any], torch.Tensor], make_batch: Callable[[int], Any],
                     sizes: Sequence[int], throughput: ThroughputModel, *, cap: int | None = None,
                     repeats: int = PROBE_REPEATS, max_seconds: float = 5.0, start: int | None = None,
                     run_samples: float | None = None, run_share: float = PROBE_SHARE) -> dict[int, float]:
    """Time ``repeats`` forward/backward passes per size (the first is a warm-up, dropped).

    Args:
        model: the model (left exactly as found).
        forward_loss: ``forward_loss(batch) -> loss``, as the step engine uses it.
        make_batch: ``make_batch(n)``: a batch of ``n`` real samples on the model's device.
        sizes: the batch sizes to time, smallest first.
        throughput: where the step times go (``record_probe``).
        cap: the memory cap (micro-batches above it).
        repeats: timed passes per size (the first is dropped).
        max_seconds: stop probing larger sizes once this much time is spent (checked after each
            size past ``start``).
        start: the starting batch: sizes up to it are always probed (a noise measurement's half
            and the start itself; ``None``: no such floor).
        run_samples: the run's budget in samples. With ``start``, the probe also stops once it has
            spent ``run_share`` of the run's expected length, ``run_samples / T(start)``.
        run_share: that share.

    Returns:
        samples/s per probed size.

    Raises:
        DebaConfigError: a negative ``max_seconds`` or ``run_samples``, or a ``run_share`` outside [0, 1].

    Example:
        >>> import torch
        >>> from deba.control.throughput import ThroughputModel
        >>> net = torch.nn.Linear(4, 2)
        >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
        >>> loss = lambda b: torch.nn.functional.cross_entropy(net(b[0]), b[1])
        >>> timed = probe_throughput(net, loss, lambda n: (x[:n], y[:n]), [8, 16, 32, 64], ThroughputModel(),
        ...                          start=16, run_samples=1, run_share=0.01)  # a tiny run: stop at the start
        >>> sorted(timed)
        [8, 16]
    """
    _check_limits(max_seconds, run_samples, run_share)
    buffers = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    devices = model_devices(model)
    started, out = time.perf_counter(), {}
    try:
        for b in sizes:
            times = []
            for i in range(passes_per_size(repeats)):
                for device in devices:  # on a GPU, time the kernels, not their launches
                    synchronize(device)
                t0 = time.perf_counter()
                batch = make_batch(b)  # assembling the batch is part of a training step's cost
                run_micro_batches(None, batch, cap=cap, forward_loss=forward_loss,
                                  zero_grad=lambda: model.zero_grad(set_to_none=True))
                model.zero_grad(set_to_none=True)
                for device in devices:
                    synchronize(device)
                if i > 0:
                    times.append(time.perf_counter() - t0)
            for seconds in times:
                throughput.record_probe(b, seconds)
            out[b] = b / sorted(times)[len(times) // 2]
            if start is not None and b < start:
                continue  # the sizes up to the start are always timed
            limit = max_seconds
            if run_samples is not None and start in out:
                limit = min(limit, run_share * run_samples / out[start])
            if time.perf_counter() - started > limit:
                break
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])  # BatchNorm statistics (and counters) as they were
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return out
