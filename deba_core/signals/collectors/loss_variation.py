"""``loss_variation``: coefficient of variation of the loss after removing its linear trend."""

from __future__ import annotations

import numpy as np

from deba.signals.observation import Observation
from deba.signals.collectors.windowed import ScalarWindowCollector

__all__ = ["LossVariationCollector", "detrended_cv"]

_EPS = 1e-12


def detrended_cv(values: np.ndarray) -> float:
    """Residual standard deviation around the least-squares line, over ``|mean|``.

    A steadily falling loss has zero residual, so it does not count as instability; spikes and
    oscillation do.
    """
    n = values.size
    if n < 3:
        return 0.0
    t = np.arange(n, dtype=np.float64)
    t -= t.mean()
    centred = values - values.mean()
    slope = float(t @ centred) / float(t @ t)
    resid = centred - slope * t
    std = float(np.sqrt((resid @ resid) / (n - 2)))
    return std / max(abs(float(values.mean())), _EPS)


class LossVariationCollector(ScalarWindowCollector):
    """Detrended coefficient of variation of the loss over the window (dimensionless, >= 0)."""

    name = "loss_variation"
    uses_sketch = False

    def extract(self, obs: Observation) -> float | None:
        return obs.loss

    def compute(self, values: np.ndarray) -> float:
        return detrended_cv(values)
