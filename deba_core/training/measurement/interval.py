"""Which steps are noise measurement steps: every ``k`` steps, ``k`` from the scheduler's
``measurement_interval``, priced with what measuring costs DEBA itself beyond an ordinary step
(the median of its own seconds on recent measurement steps, less that on recent other steps)."""

from __future__ import annotations

from typing import Any, Callable

from deba.control.scheduler import BatchScheduler
from deba.training.distributed import DistributedContext

__all__ = ["MeasurementInterval"]

#: Recent steps whose own time is kept (per kind: measurement steps, other steps).
_KEEP = 8
#: Steps after which the interval is re-read even at the same batch size.
_BLOCK = 50


class MeasurementInterval:
    """The measurement interval of a step engine, cached per (batch size, block of 50 steps).

    Args:
        scheduler: asked whether it needs noise, its batch size and ``measurement_interval``.
        dist: under DDP every rank measures on rank 0's steps (``None`` in one process).
    """

    def __init__(self, scheduler: BatchScheduler, dist: DistributedContext | None = None) -> None:
        self.scheduler = scheduler
        self.dist = dist
        self.measure_own: list[float] = []  # DEBA's own seconds on recent measurement steps
        self.normal_own: list[float] = []  # ... and on recent other steps
        self._key: tuple[int, int] | None = None  # (batch, 50-step block) of the cached interval
        self._k: int | None = 1

    def due(self, steps: int, *, alone: bool, shadow: Callable[[], bool]) -> bool:
        """Whether step ``steps + 1`` measures. ``alone``: one process without per-sample norms (a
        measurement splits the step or runs a shadow half); ``shadow()``: it runs a shadow half."""
        if not self.scheduler.needs_noise:
            return False
        key = (self.scheduler.batch_size, steps // _BLOCK)
        if key != self._key:
            # Only one process without per-sample norms splits a step; otherwise only DEBA's reads cost.
            k = self.scheduler.measurement_interval(self.own_cost(), split=alone, shadow=alone and shadow())
            if self.dist is not None:  # ranks time themselves: every rank measures on rank 0's steps
                k = self.dist.broadcast_object(k if self.dist.is_main else None)
            self._key, self._k = key, k
        return self._k is not None and (steps + 1) % self._k == 0

    def own_cost(self) -> float | None:
        """What a measurement step costs DEBA beyond an ordinary step (``None`` before one was timed)."""
        if not self.measure_own:
            return None
        normal = sorted(self.normal_own)[len(self.normal_own) // 2] if self.normal_own else 0.0
        return max(0.0, sorted(self.measure_own)[len(self.measure_own) // 2] - normal)

    def record(self, measured: bool, seconds: float) -> None:
        """DEBA's own ``seconds`` on a step that measured (or not)."""
        if measured:
            self.measure_own = (self.measure_own + [seconds])[-_KEEP:]
        else:
            self.normal_own = (self.normal_own + [seconds])[-_KEEP:]

    def invalidate(self) -> None:
        """Re-read the interval at the next step (what it depends on changed)."""
        self._key = None

    def state_dict(self) -> dict[str, Any]:
        """The engine's ``measurement_seconds``, ``normal_seconds`` and ``measurement_interval``."""
        return {"measurement_seconds": list(self.measure_own), "normal_seconds": list(self.normal_own),
                "measurement_interval": None if self._key is None else [list(self._key), self._k]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.measure_own = [float(x) for x in state.get("measurement_seconds", [])]
        self.normal_own = [float(x) for x in state.get("normal_seconds", [])]
        k = state.get("measurement_interval")
        self._key, self._k = (None, 1) if k is None else (tuple(k[0]), k[1])
