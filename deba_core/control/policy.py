"""Batch policies: how far the batch moves once the stability score is known.

The scheduler owns timing (warm-up, intervals, cooldown, windows) and safety (non-finite steps);
a policy owns the move. :class:`StabilityPolicy` is the published DEBA rule: grow by
``growth_factor`` when the score clears ``increase_above``, shrink by ``shrink_factor`` when it falls
below ``decrease_below``, hold otherwise (docs/design.md, rules 4 and 5).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from deba.control.scoring import check_extension_args
from deba.profiles.schema import ArchitectureProfile

__all__ = ["BatchPolicy", "Move", "PolicySignals", "StabilityPolicy", "next_batch_size"]

_EPS = 1e-9


@dataclass(frozen=True)
class PolicySignals:
    """What a policy may look at besides the score (all measured by the scheduler).

    Attributes:
        initial_batch: the starting batch ``B0`` (the user's; its LR is the reference).
        noise_scale: the measured ``B_simple`` (``None`` while there is no clear estimate).
        noise_scale_low: a pessimistic bound on it, for decisions that need confidence.
        throughput: ``T(B)`` in samples/s, measured or predicted (``samples_per_second(b)``).
        progress: the share of the run's budget done, in [0, 1] (``None`` when the budget is not
            known; schedule-based policies need it).
    """

    initial_batch: int
    noise_scale: float | None = None
    noise_scale_low: float | None = None
    throughput: Any = None
    progress: float | None = None

    def samples_per_second(self, batch: int) -> float | None:
        """``T(batch)``, or ``None`` when unknown."""
        return None if self.throughput is None else self.throughput.samples_per_second(batch)


@dataclass(frozen=True)
class Move:
    """A policy's answer: the batch it asks for, the action and why (in words)."""

    batch_size: int
    action: Literal["grow", "shrink", "hold", "rollback"]
    reason: str


def next_batch_size(profile: ArchitectureProfile, batch: int, score: float) -> tuple[int, str]:
    """The batch the published rule asks for from ``batch`` and the action (``grow``/``shrink``/``hold``).

    Monotone in ``score`` (rule 4) and bounded by the growth and shrink factors, rounded outward to
    the grid, with a move of at least one grid step (rule 5).

    Example:
        >>> import deba
        >>> deba.policies.next_batch_size(deba.load_profile("generic"), 32, 0.99)
        (48, 'grow')
    """
    g = profile.granularity
    if score >= profile.increase_above and batch < profile.max_batch:
        target = math.ceil(batch * profile.growth_factor / g - _EPS) * g
        return min(profile.max_batch, max(target, batch + g)), "grow"
    if score < profile.decrease_below and batch > profile.min_batch:
        target = math.floor(batch / profile.shrink_factor / g + _EPS) * g
        return max(profile.min_batch, min(target, batch - g)), "shrink"
    return batch, "hold"


class BatchPolicy(ABC):
    """How far to move the batch at a decision, given the stability score.

    Subclasses set ``name`` and implement :meth:`propose`; everything else has a default. The scheduler calls
    :meth:`propose` only when a decision is allowed (after warm-up, outside cooldown, with full
    windows), so a policy never needs to know about timing. A policy must keep rules 1, 4 and 5
    (docs/design.md): stay within ``[min_batch, max_batch]`` on the grid, never ask for a smaller
    batch for a higher score from the same state, and move by at most ``growth_factor`` up and
    ``shrink_factor`` down.

    Args:
        profile: the architecture profile (bounds, grid, factors, thresholds).
        **options: policy-specific options; unknown ones are refused.

    Example:
        >>> import deba
        >>> from deba.control.policy import Move, PolicySignals
        >>> class Hold(deba.BatchPolicy):
        ...     name = "hold"
        ...     def propose(self, batch, score, signals):
        ...         return Move(batch, "hold", "never moves")
        >>> Hold(deba.load_profile("generic")).propose(32, 0.9, PolicySignals(initial_batch=32)).action
        'hold'
    """

    name: ClassVar[str] = ""
    #: Whether the policy uses the measured noise scale: then the step engine takes noise
    #: measurement steps (a one-micro-batch step split in two every k steps).
    needs_noise: ClassVar[bool] = False

    def __init__(self, profile: ArchitectureProfile, **options: Any) -> None:
        self.profile = check_extension_args(self, "policy", profile, options)

    @abstractmethod
    def propose(self, batch: int, score: float, signals: PolicySignals) -> Move:
        """The move from ``batch`` for stability ``score`` (1 = stable, 0 = unstable) given ``signals``."""

    def shrink_target(self, batch: int) -> int:
        """Where a safety shrink (non-finite steps) goes from ``batch``: one ``shrink_factor`` down."""
        return next_batch_size(self.profile, batch, -1.0)[0]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (nothing by default)."""


class StabilityPolicy(BatchPolicy):
    """The published DEBA rule: thresholds on the stability score, fixed growth and shrink factors.

    Example:
        >>> import deba
        >>> from deba.control.policy import PolicySignals
        >>> p, s = deba.policies.StabilityPolicy(deba.load_profile("generic")), PolicySignals(initial_batch=32)
        >>> p.propose(32, 0.99, s).batch_size, p.propose(32, 0.3, s).action
        (48, 'hold')
    """

    name = "stability"

    def propose(self, batch: int, score: float, signals: PolicySignals | None = None) -> Move:
        target, action = next_batch_size(self.profile, batch, score)
        p = self.profile
        if action == "grow":
            reason = f"score {score:.3f} >= {p.increase_above}: grow"
        elif action == "shrink":
            reason = f"score {score:.3f} < {p.decrease_below}: shrink"
        else:
            reason = f"score {score:.3f} within [{p.decrease_below}, {p.increase_above})"
        return Move(target, action, reason)  # type: ignore[arg-type]
