"""The goodput policy (DEBA v2): the stability score gates, noise and throughput decide how far.

At a decision the gate is the stability score: below ``decrease_below`` the batch shrinks (as in
the published rule), but not below the starting batch ``B0`` unless the profile sets
``shrink_below_start`` (a shut gate early in training is not evidence that the user's batch is
too large; non-finite steps still shrink below it); below ``increase_above`` it holds; at or
above it, growth is *allowed*. How far is decided by goodput (Pollux, Qiao et al. 2021): the
batch ``B`` that maximises ``T(B) * E(B)`` among the grid sizes in
``(current, growth_factor x current]``, where ``T`` is the throughput in samples/s and
``E(B) = (B_noise + B0) / (B_noise + B)`` the statistical efficiency of a sample at ``B``
relative to one at the starting batch ``B0``. Growth is taken only when its gain
over the current batch is at least ``min_gain`` computed with a *pessimistic* noise scale (a lower
confidence bound), and never to a batch that runs slower per sample than the current one
(docs/design.md, rule 9). So a larger batch is taken only when it runs faster per sample **and**
the gradient is noisy enough to use it. An open gate never shrinks, so the policy is monotone in
the score (rule 4).
"""

from __future__ import annotations

import math
from typing import Any

from deba.control.policy import BatchPolicy, Move, PolicySignals, next_batch_size
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile

__all__ = ["GoodputPolicy", "efficiency"]


def efficiency(batch: float, noise_scale: float, initial_batch: float) -> float:
    """``E(B) = (B_noise + B0) / (B_noise + B)``: what one sample at ``batch`` is worth at ``B0``.

    Example:
        >>> efficiency(64, noise_scale=64, initial_batch=32)
        0.75
    """
    return (noise_scale + initial_batch) / (noise_scale + batch)


class GoodputPolicy(BatchPolicy):
    """Grow to the batch of best goodput when the stability gate is open; shrink when it is shut.

    A shut gate shrinks no further than the starting batch unless ``profile.shrink_below_start``.

    Args:
        profile: the profile (bounds, grid, ``growth_factor``, gate thresholds, ``min_gain``).
        min_gain: relative goodput gain a growth must promise (default ``profile.min_gain``).

    Example:
        >>> import deba
        >>> from deba.control.policy import PolicySignals
        >>> from deba.control.throughput import ThroughputModel
        >>> prof = deba.load_profile("mlp")
        >>> fast = ThroughputModel({32: 1000.0, 48: 1400.0, 64: 1800.0})
        >>> s = PolicySignals(initial_batch=32, noise_scale=500.0, noise_scale_low=400.0, throughput=fast)
        >>> GoodputPolicy(prof).propose(32, 0.9, s).batch_size
        64
    """

    name = "goodput"
    needs_noise = True

    def __init__(self, profile: ArchitectureProfile, min_gain: float | None = None, **options: Any) -> None:
        super().__init__(profile, **options)  # unknown options are refused there
        gain = getattr(profile, "min_gain", 0.05) if min_gain is None else min_gain
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain < 0:
            raise DebaConfigError.single("min_gain", gain, "must be a finite number >= 0")
        self.min_gain = float(gain)

    def candidates(self, batch: int) -> list[int]:
        """Grid sizes in ``(batch, growth_factor x batch]`` (at least one grid step), within bounds."""
        p = self.profile
        g = p.granularity
        top = min(p.max_batch, max(batch + g, math.floor(batch * p.growth_factor / g + 1e-9) * g))
        return list(range(batch + g, top + 1, g))

    def propose(self, batch: int, score: float, signals: PolicySignals) -> Move:
        p = self.profile
        if score < p.decrease_below:
            floor = self.shrink_floor(signals.initial_batch)
            if batch > floor:
                target, _ = next_batch_size(p, batch, score)
                return Move(max(target, floor), "shrink", f"score {score:.3f} < {p.decrease_below}: gate shut, shrink")
            if batch > p.min_batch:
                return Move(batch, "hold", f"score {score:.3f} < {p.decrease_below}: gate shut, but the batch is at the "
                            f"starting batch {signals.initial_batch} or below (shrink_below_start=False): hold")
        if score < p.increase_above:
            return Move(batch, "hold", f"score {score:.3f} < {p.increase_above}: gate not open, hold")
        if batch >= p.max_batch:
            return Move(batch, "hold", f"gate open (score {score:.3f}) but at max_batch {p.max_batch}")
        return self._grow_or_hold(batch, score, signals)

    def shrink_floor(self, initial_batch: int) -> int:
        """The smallest batch a shut gate shrinks to: ``min_batch``, or the starting batch (on the grid)
        unless ``shrink_below_start``."""
        p = self.profile
        if p.shrink_below_start:
            return p.min_batch
        g = p.granularity
        return min(p.max_batch, max(p.min_batch, math.ceil(initial_batch / g - 1e-9) * g))

    def _grow_or_hold(self, batch: int, score: float, signals: PolicySignals) -> Move:
        bn = signals.noise_scale_low if signals.noise_scale_low is not None else signals.noise_scale
        if bn is None:
            return Move(batch, "hold", f"gate open (score {score:.3f}) but no clear noise-scale estimate yet: hold")
        t_now = signals.samples_per_second(batch)
        if t_now is None:
            return Move(batch, "hold", f"gate open (score {score:.3f}) but throughput at {batch} not measured yet: hold")
        b0 = signals.initial_batch
        now = t_now * efficiency(batch, bn, b0)
        best, best_gain, slower = batch, 0.0, []
        for c in self.candidates(batch):
            t_c = signals.samples_per_second(c)
            if t_c is None:
                continue
            if t_c < t_now:
                slower.append(c)  # rule 9: never to a batch that runs slower per sample
                continue
            gain = t_c * efficiency(c, bn, b0) / now - 1.0
            if gain > best_gain:
                best, best_gain = c, gain
        why = f"B_noise >= {bn:.0f}, T({batch}) = {t_now:.0f}/s"
        if best != batch and best_gain >= self.min_gain:
            return Move(best, "grow", f"gate open (score {score:.3f}); goodput +{best_gain:.1%} at {best} ({why}): grow")
        if slower and best == batch:
            return Move(batch, "hold", f"gate open; larger batches run slower per sample here ({why}): hold")
        return Move(batch, "hold", f"gate open; best goodput gain {best_gain:.1%} < {self.min_gain:.0%} ({why}): hold")

    def state_dict(self) -> dict[str, Any]:
        return {"min_gain": self.min_gain}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "min_gain" in state:
            self.min_gain = float(state["min_gain"])
