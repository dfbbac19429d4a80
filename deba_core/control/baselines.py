"""Literature batch-size policies, as DEBA policies so they run on the same engine (the study's peers).

* ``seesaw`` (Meterez et al. 2025, "Seesaw"): wherever the run's LR schedule (a cosine by default,
  or the shape passed as ``schedule=``) would have halved the learning rate, double the batch
  instead; with the profile's ``lr_scaling: sqrt`` the LR then falls by ``1/sqrt(2)`` where it would
  have halved, that paper's rule. A schedule, blind to the run: it reads only the share of the
  budget done.
* ``goodput-ungated``: the goodput rule of AdaScale / Pollux (grow to the batch of best
  ``T(B) E(B)``), with no stability gate: DEBA's goodput policy with the score ignored, so the
  study can tell what the gate itself is worth.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from deba.control.goodput import GoodputPolicy
from deba.control.policy import BatchPolicy, Move, PolicySignals
from deba.errors import DebaConfigError

__all__ = ["SeesawPolicy", "UngatedGoodputPolicy", "cosine", "cosine_halvings", "halvings"]


def cosine(progress: float) -> float:
    """The cosine schedule's LR factor ``(1 + cos(pi t)) / 2`` at ``progress`` ``t`` (clamped to [0, 1])."""
    return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def halvings(factor: float) -> int:
    """How many times an LR factor (peak = 1) has halved: ``floor(log2(1 / factor))`` (60 at 0).

    Example:
        >>> [halvings(f) for f in (1.0, 0.51, 0.5, 0.01)]
        [0, 0, 1, 6]
    """
    return 60 if factor <= 0 else max(0, int(math.floor(math.log2(1.0 / factor) + 1e-9)))


def cosine_halvings(progress: float) -> int:
    """How many times a cosine schedule ``(1 + cos(pi t)) / 2`` has halved by ``progress`` ``t``.

    Example:
        >>> [cosine_halvings(t) for t in (0.0, 0.49, 0.5, 0.67, 0.9)]
        [0, 0, 1, 2, 5]
    """
    return halvings(cosine(progress))


class SeesawPolicy(BatchPolicy):
    """Double the batch at each point where the run's LR schedule halves (Seesaw).

    Grows from the starting batch ``B0`` to ``B0 * 2**k`` once the schedule has halved ``k`` times,
    within ``max_batch`` and by at most ``growth_factor`` per decision; never shrinks; ignores the
    score. Needs a known budget (``PolicySignals.progress``); without one it holds.

    Args:
        profile: the architecture profile (its ``max_batch``, ``growth_factor``, ``granularity``).
        schedule: the shape of the LR schedule the run trains with, as a function of the share of
            the budget done to the LR factor (peak = 1); a cosine over the whole budget by
            default. Give the same shape the run's ``lr_scheduler`` follows, or Seesaw doubles at
            the wrong points.

    Example:
        >>> import deba
        >>> from deba.control.policy import PolicySignals
        >>> p = SeesawPolicy(deba.load_profile("mlp"))
        >>> p.propose(32, 0.0, PolicySignals(initial_batch=32, progress=0.55)).batch_size
        64
        >>> step = SeesawPolicy(deba.load_profile("mlp"), schedule=lambda t: 1.0 if t < 0.5 else 0.5)
        >>> step.propose(32, 0.0, PolicySignals(initial_batch=32, progress=0.55)).batch_size
        64
    """

    name = "seesaw"

    def __init__(self, profile: Any, schedule: Callable[[float], float] | None = None, **options: Any) -> None:
        super().__init__(profile, **options)
        if schedule is not None and not callable(schedule):
            raise DebaConfigError.single("schedule", schedule, "must be a function of progress (0-1) to the LR factor")
        self.schedule = cosine if schedule is None else schedule

    def _halvings(self, progress: float) -> int:
        factor = self.schedule(progress)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 0 or factor > 1 + 1e-9:
            raise DebaConfigError.single("schedule", factor, f"must return an LR factor in [0, 1] (at progress {progress:.3f})")
        return halvings(float(factor))

    def propose(self, batch: int, score: float, signals: PolicySignals) -> Move:
        if signals.progress is None:
            return Move(batch, "hold", "seesaw needs the run's budget (progress unknown): hold")
        p, g = self.profile, self.profile.granularity
        k = self._halvings(signals.progress)
        target = min(p.max_batch, signals.initial_batch * 2 ** min(k, 30))
        step_cap = max(batch + g, math.floor(batch * p.growth_factor / g + 1e-9) * g)
        target = min(target, step_cap)
        target -= target % g
        if target <= batch:
            return Move(batch, "hold", f"seesaw: {k} halving(s) of the LR schedule at {signals.progress:.0%}: hold")
        return Move(target, "grow", f"seesaw: the scheduled LR halved ({k}x by {signals.progress:.0%}): double the batch")


class UngatedGoodputPolicy(GoodputPolicy):
    """The goodput rule without DEBA's stability gate (an AdaScale / Pollux-style baseline).

    Example:
        >>> import deba
        >>> from deba.control.policy import PolicySignals
        >>> from deba.control.throughput import ThroughputModel
        >>> fast = ThroughputModel({32: 1000.0, 48: 1400.0, 64: 1800.0})
        >>> s = PolicySignals(initial_batch=32, noise_scale=500.0, noise_scale_low=400.0, throughput=fast)
        >>> UngatedGoodputPolicy(deba.load_profile("mlp")).propose(32, 0.0, s).batch_size
        64
    """

    name = "goodput-ungated"

    def propose(self, batch: int, score: float, signals: PolicySignals) -> Move:
        if batch >= self.profile.max_batch:
            return Move(batch, "hold", f"at max_batch {self.profile.max_batch}")
        return self._grow_or_hold(batch, score, signals)  # grows whatever the score (the reason shows it)
