"""When the scheduler may decide: warm-up, interval, cooldown and freeze, in one of two modes.

:class:`CountedTiming` counts optimizer steps per interval (or epochs) and intervals of warm-up and
cooldown (the v1 rule, and every run whose budget is unknown). :class:`ShareTiming` measures all of
them as shares of a planned run on the budget clock (``SchedulerState.progress``), and adds a final
``freeze`` share in which the batch never grows. :func:`select_timing` picks the mode once per plan.

Both read the scheduler's :class:`~deba.control.state.SchedulerState` passed to each call and keep
nothing of their own, so a restored state needs no extra bookkeeping here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from deba.control.state import SchedulerState
from deba.profiles.schema import ArchitectureProfile, RunShares

__all__ = ["CountedTiming", "ShareTiming", "Timing", "select_timing"]


class Timing(ABC):
    """The timing rules the scheduler asks about (docs/design.md, rules 2 and 3, and the freeze).

    Attributes:
        epoch_closes_interval: whether :meth:`deba.BatchScheduler.end_epoch` closes an interval.
    """

    epoch_closes_interval: bool = False

    @abstractmethod
    def interval_full(self, state: SchedulerState, steps: int) -> bool:
        """Whether the open interval (``steps`` steps so far) is complete."""

    @abstractmethod
    def collecting(self, state: SchedulerState, steps: int) -> str:
        """The reason of a hold while the open interval fills."""

    @abstractmethod
    def in_warmup(self, state: SchedulerState) -> bool:
        """Whether the warm-up is on (no change yet)."""

    @abstractmethod
    def in_cooldown(self, state: SchedulerState) -> bool:
        """Whether the last change is too recent for another."""

    @abstractmethod
    def warmup_reason(self, state: SchedulerState) -> str:
        """The reason of a hold during the warm-up."""

    @abstractmethod
    def cooldown_reason(self, state: SchedulerState) -> str:
        """The reason of a hold during a cooldown."""

    def in_freeze(self, state: SchedulerState) -> bool:
        """Whether the run is in its final share in which the batch never grows."""
        return False

    def freeze_reason(self) -> str:
        """The reason of a growth refused by the freeze (only asked while :meth:`in_freeze`)."""
        return "no growth"

    def blocked(self, state: SchedulerState) -> str | None:
        """Why no change may happen now (warm-up first, then cooldown), or ``None``."""
        if self.in_warmup(state):
            return self.warmup_reason(state)
        if self.in_cooldown(state):
            return self.cooldown_reason(state)
        return None


class CountedTiming(Timing):
    """Timing by counts: ``profile.interval`` steps (or an epoch) per interval, warm-up and cooldown
    in intervals.

    Args:
        profile: the scheduler's profile (its ``interval``, ``warmup`` and ``cooldown``).

    Example:
        >>> import deba
        >>> from deba.control.state import SchedulerState
        >>> timing = CountedTiming(deba.load_profile("generic"))
        >>> state = SchedulerState(batch_size=32)
        >>> timing.interval_full(state, steps=10), timing.collecting(state, steps=3)
        (True, 'collecting 3/10 steps of the interval')
    """

    def __init__(self, profile: ArchitectureProfile) -> None:
        self.profile = profile
        self.epoch_closes_interval = profile.interval == "epoch"

    def interval_full(self, state: SchedulerState, steps: int) -> bool:
        return self.profile.interval != "epoch" and steps >= int(self.profile.interval)

    def collecting(self, state: SchedulerState, steps: int) -> str:
        if self.profile.interval == "epoch":
            return "collecting until the epoch ends"
        return f"collecting {steps}/{self.profile.interval} steps of the interval"

    def in_warmup(self, state: SchedulerState) -> bool:
        return state.intervals < self.profile.warmup

    def in_cooldown(self, state: SchedulerState) -> bool:
        since = state.intervals_since_change
        return since is not None and since <= self.profile.cooldown

    def warmup_reason(self, state: SchedulerState) -> str:
        return f"warmup {state.intervals}/{self.profile.warmup} intervals"

    def cooldown_reason(self, state: SchedulerState) -> str:
        return f"cooldown {state.intervals_since_change}/{self.profile.cooldown} intervals after a change"


class ShareTiming(Timing):
    """Timing as shares of a planned run of ``total`` on the budget clock (``state.progress``).

    Args:
        shares: the profile's :class:`~deba.profiles.schema.RunShares`.
        total: the planned budget, in the clock's units (samples or equivalent samples).

    Example:
        >>> from deba.control.state import SchedulerState
        >>> from deba.profiles.schema import RunShares
        >>> timing = ShareTiming(RunShares(warmup=0.1, interval=0.01, cooldown=0.05, freeze=0.2), 1000.0)
        >>> state = SchedulerState(batch_size=32, progress=50.0)
        >>> timing.blocked(state)
        'warmup 5.0%/10% of the run'
        >>> state.progress = 850.0
        >>> timing.in_freeze(state), timing.interval_full(state, steps=1)
        (True, True)
    """

    def __init__(self, shares: RunShares, total: float) -> None:
        self.shares = shares
        self.total = total

    def interval_full(self, state: SchedulerState, steps: int) -> bool:
        return state.progress - state.interval_start >= self.shares.interval * self.total

    def collecting(self, state: SchedulerState, steps: int) -> str:
        done = (state.progress - state.interval_start) / self.total
        return f"collecting {done:.2%}/{self.shares.interval:.2%} of the run for the interval"

    def in_warmup(self, state: SchedulerState) -> bool:
        return state.progress < self.shares.warmup * self.total

    def in_cooldown(self, state: SchedulerState) -> bool:
        at = state.change_at
        return at is not None and state.progress - at < self.shares.cooldown * self.total

    def in_freeze(self, state: SchedulerState) -> bool:
        return state.progress >= (1.0 - self.shares.freeze) * self.total

    def warmup_reason(self, state: SchedulerState) -> str:
        return f"warmup {state.progress / self.total:.1%}/{self.shares.warmup:.0%} of the run"

    def cooldown_reason(self, state: SchedulerState) -> str:
        since = (state.progress - float(state.change_at or 0.0)) / self.total
        return f"cooldown {since:.1%}/{self.shares.cooldown:.0%} of the run after a change"

    def freeze_reason(self) -> str:
        return f"final {self.shares.freeze:.0%} of the run: no growth"


def select_timing(profile: ArchitectureProfile, total: float | None) -> Timing:
    """Shares of the run when it is planned (``total``) and the profile states ``shares``, else counts.

    Example:
        >>> import deba
        >>> type(select_timing(deba.load_profile("mlp"), 5000.0)).__name__
        'ShareTiming'
        >>> type(select_timing(deba.load_profile("mlp"), None)).__name__
        'CountedTiming'
    """
    if total is not None and profile.shares is not None:
        return ShareTiming(profile.shares, total)
    return CountedTiming(profile)
