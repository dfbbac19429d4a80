"""Throughput ``T(B)`` in samples/s: measured where training went, predicted where it did not.

Each optimizer step's training time is recorded under the batch size actually trained. The first
steps after a size change (warm caches, allocator growth, compile) are dropped; the median of the
rest is the measurement. Between the visited sizes the step time ``t(B) = B / T(B)`` is
interpolated linearly between the two neighbours (step time is close to ``a + c B`` locally, and a
single line over all sizes misfits where per-sample cost changes with the batch, as on a CPU whose
caches a larger batch overflows); beyond them it follows the line through the two nearest sizes,
but beyond the largest size never predicts more samples/s than measured there.
Beyond the memory cap a batch runs as micro-batches, so ``T(B) ~ T(cap)``. A fixed ``table`` (batch ->
samples/s) replaces all of this, which makes decisions a pure function of the observations.

Start-up probe times are kept apart from training times: a probe times forward, backward and batch
assembly but not the optimizer step, the loop and DEBA, which cost about the same at any batch
size. So a probed size is predicted as ``t_probe(B) + offset``, the offset being the median gap
between training and probe times at the sizes timed both ways (0 before there is one).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any, Mapping

from deba.errors import DebaConfigError

__all__ = ["ThroughputModel"]

_KEEP = 32  # step times kept per batch size (medians of recent steps)


def _check_table(table: Any) -> dict[int, float]:
    if not isinstance(table, Mapping) or not table:
        raise DebaConfigError.single("throughput", table, "must be a non-empty mapping batch size -> samples/s")
    out: dict[int, float] = {}
    for b, v in table.items():
        try:
            bi = int(b)
        except (TypeError, ValueError) as exc:
            raise DebaConfigError.single("throughput", b, "keys must be batch sizes (ints >= 1)") from exc
        if bi < 1 or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise DebaConfigError.single(f"throughput[{b}]", v, "must be a finite samples/s > 0 for a batch size >= 1")
        out[bi] = float(v)
    return out


class ThroughputModel:
    """Samples per second at each batch size, measured or predicted.

    Args:
        table: a fixed table (batch -> samples/s); nothing is measured then.
        skip_after_resize: steps dropped after each change of the trained size.
        memory_cap: the largest global batch that runs as one micro-batch per rank (``None``: no
            cap known; the step engine sets it from ``max_micro_batch`` and out-of-memory events).
            A larger batch runs as micro-batches, so unless measured its throughput is the cap's.

    Example:
        >>> m = ThroughputModel()
        >>> for b, seconds in [(32, 0.010)] * 5 + [(64, 0.016)] * 5:  # the first 2 after a change are dropped
        ...     m.record(b, seconds)
        >>> round(m.samples_per_second(32)), round(m.samples_per_second(64))
        (3200, 4000)
        >>> round(m.samples_per_second(128))  # above the largest measured size: never more than it
        4000
    """

    def __init__(self, table: Mapping[int, float] | None = None, skip_after_resize: int = 2,
                 memory_cap: int | None = None) -> None:
        self.fixed = None if table is None else _check_table(table)
        if isinstance(skip_after_resize, bool) or not isinstance(skip_after_resize, int) or skip_after_resize < 0:
            raise DebaConfigError.single("skip_after_resize", skip_after_resize, "must be an int >= 0")
        self.skip_after_resize = skip_after_resize
        self.memory_cap = memory_cap
        self._times: dict[int, deque[float]] = {}
        self._probe: dict[int, deque[float]] = {}
        self._last_batch: int | None = None
        self._since_resize = 0

    # Measuring ----------------------------------------------------------------------------------

    def record(self, batch: int, seconds: float) -> None:
        """One optimizer step of ``batch`` samples took ``seconds`` of training time."""
        if self.fixed is not None or not (isinstance(seconds, (int, float)) and math.isfinite(seconds)) or seconds <= 0:
            return
        if batch != self._last_batch:
            self._last_batch, self._since_resize = batch, 0
        self._since_resize += 1
        if self._since_resize <= self.skip_after_resize:
            return
        self._times.setdefault(int(batch), deque(maxlen=_KEEP)).append(float(seconds))

    def record_probe(self, batch: int, seconds: float) -> None:
        """A step time from a start-up probe (no resize warm-up to drop: the probe drops its own)."""
        if self.fixed is None and isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0:
            self._probe.setdefault(int(batch), deque(maxlen=_KEEP)).append(float(seconds))

    def _probe_offset(self) -> float:
        """Median gap between training and probe step times at sizes timed both ways (>= 0)."""
        gaps = [statistics.median(self._times[b]) - statistics.median(self._probe[b])
                for b in self._times if b in self._probe and self._times[b] and self._probe[b]]
        return max(0.0, statistics.median(gaps)) if gaps else 0.0

    def measured(self) -> dict[int, float]:
        """Samples/s at every batch size with a measurement (the fixed table, if given).

        Training measurements first; probe-only sizes with the probe offset added.
        """
        if self.fixed is not None:
            return dict(sorted(self.fixed.items()))
        out = {b: b / statistics.median(ts) for b, ts in self._times.items() if ts}
        offset = self._probe_offset()
        for b, ts in self._probe.items():
            if b not in out and ts:
                out[b] = b / (statistics.median(ts) + offset)
        return dict(sorted(out.items()))

    # Predicting ---------------------------------------------------------------------------------

    @staticmethod
    def _step_time(table: dict[int, float], batch: int) -> float | None:
        """Step time at ``batch`` from the measured step times ``t(B) = B / T(B)``, or ``None`` with
        fewer than 2 sizes: linear between the two neighbouring sizes, and beyond the measured range
        along the line through the two nearest (slope at least 0, time at least proportional)."""
        if len(table) < 2:
            return None
        sizes = sorted(table)
        times = [b / table[b] for b in sizes]
        if batch < sizes[0]:
            lo, hi = 0, 1
        elif batch > sizes[-1]:
            lo, hi = len(sizes) - 2, len(sizes) - 1
        else:
            hi = next(i for i, b in enumerate(sizes) if b >= batch)
            lo = hi - 1
        slope = max((times[hi] - times[lo]) / (sizes[hi] - sizes[lo]), 0.0)
        t = times[lo] + slope * (batch - sizes[lo])
        if batch < sizes[0]:
            # below the smallest size a step costs no less than the same throughput would give
            t = max(t, times[0] * batch / sizes[0])
        if batch > sizes[-1]:
            # beyond the largest size, never faster per sample than there (no optimistic extrapolation)
            t = max(t, times[-1] * batch / sizes[-1])
        return max(t, 1e-12)

    def samples_per_second(self, batch: int) -> float | None:
        """``T(batch)``: measured if visited, else predicted (``None`` when nothing supports it)."""
        table = self.measured()
        if batch in table:
            return table[batch]
        if self.memory_cap is not None and batch > self.memory_cap:
            return self.samples_per_second(self.memory_cap)
        t = self._step_time(table, batch)
        return None if t is None else batch / t

    def is_measured(self, batch: int) -> bool:
        """Whether ``T(batch)`` comes from a measurement (or the fixed table), not the fit."""
        return batch in self.measured()

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: the fixed table or the recent step times, and the resize counter."""
        return {
            "fixed": None if self.fixed is None else {str(b): v for b, v in self.fixed.items()},
            "times": {str(b): list(ts) for b, ts in self._times.items()},
            "probe": {str(b): list(ts) for b, ts in self._probe.items()},
            "last_batch": self._last_batch,
            "since_resize": self._since_resize,
            "memory_cap": self.memory_cap,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resume decides from the same table)."""
        try:
            fixed = state["fixed"]
            self.fixed = None if fixed is None else {int(b): float(v) for b, v in fixed.items()}
            self._times = {int(b): deque((float(t) for t in ts), maxlen=_KEEP) for b, ts in state["times"].items()}
            self._probe = {int(b): deque((float(t) for t in ts), maxlen=_KEEP) for b, ts in state["probe"].items()}
            self._last_batch = state["last_batch"]
            self._since_resize = int(state["since_resize"])
            self.memory_cap = state.get("memory_cap")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DebaConfigError.single("state.throughput", type(exc).__name__, f"is malformed ({exc})") from exc
