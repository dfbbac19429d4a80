"""``norm-test``: the adaptive-sampling norm test (Byrd et al. 2012; Bollapragada et al. 2018).

The batch is large enough when the batch gradient's variance is small against its norm:
``Var(g) / B <= theta^2 |G|^2``, i.e. ``grad_variance <= theta^2``. When the test fails the batch
must grow; when it holds nothing changes (the norm test never shrinks the batch). The score is
``1 - 0.5 / q`` for ``q = grad_variance / theta^2 > 1`` (so it rises towards 1 the more the test
fails) and the middle of the profile's hold band otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.control.scoring import ScoringStrategy, check_metrics

__all__ = ["NormTestStrategy"]


class NormTestStrategy(ScoringStrategy):
    """Grow while the norm test fails; hold when it passes.

    Args:
        profile: the architecture profile.
        theta: the test's tolerance (0 < theta; Byrd et al. use values around 0.5-0.9).

    Example:
        >>> import deba
        >>> s = NormTestStrategy(deba.load_profile("generic"), theta=0.5)
        >>> s.score({"grad_variance": 1.0})  # q = 4: the test fails badly
        0.875
    """

    name = "norm-test"

    def __init__(self, profile: ArchitectureProfile, *, theta: float = 0.9, metric: str = "grad_variance",
                 **options: Any) -> None:
        super().__init__(profile, **options)
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0 or not math.isfinite(theta):
            raise DebaConfigError.single("theta", theta, "must be a finite float > 0")
        self.theta = float(theta)
        self.metric = metric

    def score(self, metrics: Mapping[str, float]) -> float:
        check_metrics(metrics)
        hold = (self.profile.increase_above + self.profile.decrease_below) / 2.0
        v = metrics.get(self.metric)
        if v is None or math.isnan(float(v)):
            return hold
        q = float(v) / (self.theta**2)
        if q <= 1.0:
            return hold
        return 1.0 if math.isinf(q) else max(hold, 1.0 - 0.5 / q)
