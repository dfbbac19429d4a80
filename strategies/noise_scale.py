"""``noise-scale``: follow the gradient noise scale (McCandlish et al. 2018, as used by AdaptDL).

The simple noise scale ``B_simple = tr(Sigma) / |G|^2`` is the batch size at which gradient noise
and signal balance. DEBA's ``grad_variance`` metric is ``tr(Sigma) / (B |G|^2) = B_simple / B``
(estimated from micro-batch or sketch statistics), so the ratio of the batch the rule wants to
the batch in use is the metric itself. The score ``r / (r + c)`` (``c`` = ``critical_ratio``,
default 1) is 0.5 exactly when ``B_simple = c * B``; above it the batch grows, well below it
shrinks, at the profile's thresholds and step bounds. Unlike DEBA's stability view, high gradient
noise here asks for a *larger* batch.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.control.scoring import ScoringStrategy, check_metrics, instability

__all__ = ["NoiseScaleStrategy"]


class NoiseScaleStrategy(ScoringStrategy):
    """Score = r / (r + c) with r = B_simple / B (the ``grad_variance`` metric).

    Example:
        >>> import deba
        >>> s = NoiseScaleStrategy(deba.load_profile("generic"))
        >>> s.score({"grad_variance": 3.0})   # B_simple = 3 B: grow
        0.75
        >>> s.score({})                       # no estimate yet: neutral
        0.5
    """

    name = "noise-scale"

    def __init__(self, profile: ArchitectureProfile, *, critical_ratio: float = 1.0, metric: str = "grad_variance",
                 **options: Any) -> None:
        super().__init__(profile, **options)
        if isinstance(critical_ratio, bool) or not isinstance(critical_ratio, (int, float)) or not critical_ratio > 0 \
                or not math.isfinite(critical_ratio):
            raise DebaConfigError.single("critical_ratio", critical_ratio, "must be a finite float > 0")
        self.critical_ratio = float(critical_ratio)
        self.metric = metric

    def score(self, metrics: Mapping[str, float]) -> float:
        check_metrics(metrics)
        r = metrics.get(self.metric)
        if r is None:
            return 0.5
        r = float(r)
        if math.isnan(r):
            return 0.5
        return instability(r, self.critical_ratio)  # +-inf -> 1.0, negatives clamp to 0
