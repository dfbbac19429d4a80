"""The scheduler's counters, in one place, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["SchedulerState"]


@dataclass
class SchedulerState:
    """Where a :class:`deba.BatchScheduler` stands.

    Attributes:
        batch_size: the global batch size in force.
        step: optimizer steps observed.
        intervals: decision intervals closed.
        window_count: intervals fed into the windows since they last restarted.
        intervals_since_change: intervals closed since the last change (``None``: no change yet).
        changes: batch-size changes made.
        nonfinite_total: non-finite steps seen.
        nonfinite_consecutive: non-finite steps in a row up to now.
        interval_nonfinite: non-finite steps in the open interval.
        grown_from: the batch before the last change, when that change was a growth (what a
            safety rollback returns to); ``None`` otherwise.
        progress: the run's budget clock (samples, or starting-batch-equivalent samples) as the
            step engine reports it; drives timing as shares of the run.
        interval_start: ``progress`` when the open interval began.
        change_at: ``progress`` at the last change (``None``: no change yet).

    Example:
        >>> s = SchedulerState(batch_size=32)
        >>> SchedulerState.from_dict(s.to_dict()) == s
        True
    """

    batch_size: int
    step: int = 0
    intervals: int = 0
    window_count: int = 0
    intervals_since_change: int | None = None
    changes: int = 0
    nonfinite_total: int = 0
    nonfinite_consecutive: int = 0
    interval_nonfinite: int = 0
    grown_from: int | None = None
    progress: float = 0.0
    interval_start: float = 0.0
    change_at: float | None = None

    def record_change(self, batch_size: int) -> None:
        """A change to ``batch_size``: the cooldown starts, the windows restart (rule 2)."""
        self.grown_from = self.batch_size if batch_size > self.batch_size else None
        self.batch_size = batch_size
        self.changes += 1
        self.intervals_since_change = 0
        self.change_at = self.progress
        self.window_count = 0
        self.interval_nonfinite = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SchedulerState":
        """The inverse of :meth:`to_dict` (``KeyError``/``TypeError``/``ValueError`` when malformed)."""
        values: dict[str, Any] = {}
        optional = ("intervals_since_change", "grown_from", "change_at")
        # Fields added after the first state format are optional in old states.
        later = {"grown_from": None, "progress": 0.0, "interval_start": 0.0, "change_at": None}
        for f in fields(cls):
            raw = data.get(f.name, later[f.name]) if f.name in later else data[f.name]
            cast = float if f.name in ("progress", "interval_start", "change_at") else int
            values[f.name] = None if raw is None and f.name in optional else cast(raw)
        return cls(**values)
