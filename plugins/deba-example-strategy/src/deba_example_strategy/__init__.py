"""A DEBA scoring strategy in a separate distribution: the least stable metric decides."""

from typing import Mapping

from deba import ScoringStrategy
from deba.control.scoring import check_metrics, instabilities


class WorstMetricStrategy(ScoringStrategy):
    """Score = 1 - the largest instability: cautious, one bad signal is enough to hold or shrink.

    Example:
        >>> import deba
        >>> s = WorstMetricStrategy(deba.load_profile("generic"))
        >>> s.score({"loss_variation": 0.05, "grad_norm_variation": 0.0})
        0.5
    """

    name = "worst-metric"

    def score(self, metrics: Mapping[str, float]) -> float:
        u = instabilities(check_metrics(metrics), self.profile)
        return 1.0 - max(u.values()) if u else 0.5
