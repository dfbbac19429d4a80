"""The run's budget clock: the planned total, what one step adds, and the timing mode it implies."""

from __future__ import annotations

import math
from typing import Any

from deba.control.timing import Timing, select_timing
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile

__all__ = ["BudgetClock"]


class BudgetClock:
    """The planned budget of a run and how the step engine's steps count against it.

    The clock's reading itself is ``SchedulerState.progress`` (saved with the scheduler's state);
    this holds the plan: ``total`` samples, or starting-batch-equivalent samples when
    ``equivalent``, and the :class:`~deba.control.timing.Timing` the plan implies, chosen once per
    :meth:`plan`.

    Args:
        profile: the scheduler's profile (its ``shares`` decide the timing of a planned run).

    Attributes:
        total: the planned budget, or ``None`` (unknown: timing by counts).
        equivalent: whether a step counts its equivalent credit rather than its samples.
        timing: the timing mode in force.

    Example:
        >>> import deba
        >>> clock = BudgetClock(deba.load_profile("mlp"))
        >>> clock.plan(1000, equivalent=True)
        >>> clock.credit(samples=32, equivalent=20.5), clock.fraction(250.0), type(clock.timing).__name__
        (20.5, 0.25, 'ShareTiming')
        >>> clock.state_dict()
        {'total': 1000.0, 'equivalent': True}
    """

    def __init__(self, profile: ArchitectureProfile) -> None:
        self.profile = profile
        self.total: float | None = None
        self.equivalent = False
        self.timing: Timing = select_timing(profile, None)

    def plan(self, total: float | None, *, equivalent: bool = False) -> None:
        """Set the budget (``None`` forgets it) and choose the timing mode.

        Raises:
            DebaConfigError: ``total`` is not a positive finite number or ``None``.
        """
        if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))
                                  or not math.isfinite(total) or total <= 0):
            raise DebaConfigError.single("total", total, "must be a positive number of samples or None")
        self.total = None if total is None else float(total)
        self.equivalent = bool(equivalent)
        self.timing = select_timing(self.profile, self.total)

    def credit(self, samples: int, equivalent: float) -> float:
        """What one step adds to the clock: its equivalent credit or its samples, as planned."""
        return float(equivalent) if self.equivalent else float(samples)

    def fraction(self, progress: float) -> float | None:
        """The share of the planned run done at ``progress`` (at most 1), or ``None`` unplanned."""
        return None if self.total is None else min(1.0, progress / self.total)

    def state_dict(self) -> dict[str, Any] | None:
        """The plan as saved in the scheduler's state (``None`` when unplanned)."""
        return None if self.total is None else {"total": self.total, "equivalent": self.equivalent}
