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
import numbers
from typing import Any, Callable

from deba.control.goodput import GoodputPolicy
from deba.control.policy import BatchPolicy, Move, PolicySignals
from deba.errors import DebaConfigError

__all__ = ["SeesawPolicy", "UngatedGoodputPolicy", "cosine", "cosine_halvings"]

#: Points of progress at which a Seesaw policy's schedule is sampled into its state, so a resume
#: with another schedule shape is refused rather than doubling at other points.
_FINGERPRINT = tuple(i / 32 for i in range(33))


def _share(progress: Any, field: str = "progress") -> float:
    if isinstance(progress, bool) or not isinstance(progress, numbers.Real) or not math.isfinite(progress):
        raise DebaConfigError.single(field, progress, "must be a finite real number (the share of the budget done)")
    return min(max(float(progress), 0.0), 1.0)


def cosine(progress: float) -> float:
    """The cosine schedule's LR factor ``(1 + cos(pi t)) / 2`` at ``progress`` ``t`` (clamped to [0, 1]).

    Example:
        >>> [cosine(t) for t in (0.0, 0.5, 2.0)]
        [1.0, 0.5, 0.0]

    Raises:
        DebaConfigError: ``progress`` is not a finite real number.
    """
    return 0.5 * (1.0 + math.cos(math.pi * _share(progress)))


def _halvings(factor: float) -> int:
    """How many times an LR factor (peak = 1) has halved: ``floor(log2(1 / factor))`` (60 at 0)."""
    return 60 if factor <= 0 else max(0, int(math.floor(math.log2(1.0 / factor) + 1e-9)))


def cosine_halvings(progress: float) -> int:
    """How many times a cosine schedule ``(1 + cos(pi t)) / 2`` has halved by ``progress`` ``t``.

    Example:
        >>> [cosine_halvings(t) for t in (0.0, 0.49, 0.5, 0.67, 0.9)]
        [0, 0, 1, 2, 5]
    """
    return _halvings(cosine(progress))


class SeesawPolicy(BatchPolicy):
    """Double the batch at each point where the run's LR schedule halves (Seesaw).

    Grows from the starting batch ``B0`` to ``B0 * 2**k`` once the schedule has halved ``k`` times,
    within ``max_batch`` and by at most ``growth_factor`` per decision; never shrinks; ignores the
    score. Needs a known budget (``PolicySignals.progress``); without one it holds.

    Args:
        profile: the architecture profile (its ``max_batch``, ``growth_factor``, ``granularity``).
            Passed as ``policy=`` to ``deba.fit`` or ``BatchScheduler``, the policy must be built
            on the scheduler's own profile: the loaded profile ``.starting_at(batch_size)``.
        schedule: the shape of the LR schedule the run trains with after its peak: a function of
            the share of the budget done (0-1) to the LR factor in [0, 1], peak = 1, not
            increasing (a warm-up from 0 would read as 60 halvings). A cosine over the whole budget
            by default. Give the shape the run's ``lr_scheduler`` follows, or Seesaw doubles at the
            wrong points. It is sampled into :meth:`state_dict`, so a resume with another shape is
            refused.
        **options: none other; unknown ones are refused.

    Raises:
        DebaConfigError: ``schedule`` is not callable, or returns something other than a factor in
            [0, 1] (checked at progress 0 and 1 when built, and at every decision).

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
        for t in (0.0, 1.0):  # a wrong shape fails here, not at the first decision of a run
            self._factor(t)

    def _factor(self, progress: float) -> float:
        factor = self.schedule(progress)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 <= factor <= 1 + 1e-9:
            raise DebaConfigError.single("schedule", factor, f"must return an LR factor in [0, 1] (at progress {progress:.3f})")
        return float(factor)

    def _fingerprint(self) -> list[float]:
        return [round(self._factor(t), 9) for t in _FINGERPRINT]

    def propose(self, batch: int, score: float, signals: PolicySignals) -> Move:
        if signals.progress is None:
            return Move(batch, "hold", "seesaw needs the run's budget (progress unknown): hold")
        p, g = self.profile, self.profile.granularity
        k = _halvings(self._factor(_share(signals.progress, "signals.progress")))
        target = min(p.max_batch, signals.initial_batch * 2 ** min(k, 30))
        step_cap = max(batch + g, math.floor(batch * p.growth_factor / g + 1e-9) * g)
        target = min(target, step_cap)
        target -= target % g
        if target <= batch:
            return Move(batch, "hold", f"seesaw: {k} halving(s) of the LR schedule at {signals.progress:.0%}: hold")
        return Move(target, "grow", f"seesaw: the scheduled LR halved ({k}x by {signals.progress:.0%}): double the batch")

    def state_dict(self) -> dict[str, Any]:
        """The schedule's shape, sampled at 33 points of progress (the policy keeps no other state)."""
        return {"schedule": self._fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that the saved schedule is this one's (a state saved before it was kept passes).

        Raises:
            DebaConfigError: the saved shape differs from this policy's.
        """
        saved = state.get("schedule") if isinstance(state, dict) else None
        if saved is not None and [round(float(v), 9) for v in saved] != self._fingerprint():
            raise DebaConfigError.single(
                "state.policy.schedule", saved, "must be the shape of this policy's schedule",
                remedy="Resume with policy=SeesawPolicy(profile, schedule=f), f the schedule the run was saved with.")


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
