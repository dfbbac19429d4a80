"""``equal-weight``: one minus the mean instability."""

from __future__ import annotations

from typing import Mapping

from deba.control.scoring import ScoringStrategy, check_metrics, instabilities

__all__ = ["EqualWeightStrategy"]


class EqualWeightStrategy(ScoringStrategy):
    """Score = 1 - mean over metrics of ``m / (m + tau_m)``.

    Every metric counts the same; a profile weight of 0 switches a metric off (other weight values
    are used by ``learned``). With no metric available it returns 0.5, the neutral middle.

    Example:
        >>> import deba
        >>> s = EqualWeightStrategy(deba.load_profile("generic"))
        >>> round(s.score({"loss_variation": 0.05, "grad_norm_variation": 0.2}), 3)
        0.5
    """

    name = "equal-weight"

    def score(self, metrics: Mapping[str, float]) -> float:
        u = instabilities(check_metrics(metrics), self.profile)
        if not u:
            return 0.5
        return 1.0 - sum(u.values()) / len(u)
