"""``grad_norm_variation``: coefficient of variation of the total gradient norm."""

from __future__ import annotations

import numpy as np

from deba.signals.observation import Observation
from deba.signals.collectors.windowed import ScalarWindowCollector

__all__ = ["GradientNormVariationCollector"]


class GradientNormVariationCollector(ScalarWindowCollector):
    """std / mean of the gradient norm over the window (dimensionless, >= 0).

    Example:
        >>> import deba
        >>> c = GradientNormVariationCollector(window=4, min_samples=2)
        >>> for n in (1.0, 3.0):
        ...     c.update(deba.Observation(loss=1.0, batch_size=8, grad_norm=n))
        >>> round(c.value(), 4)
        0.7071
    """

    name = "grad_norm_variation"
    uses_sketch = False

    def extract(self, obs: Observation) -> float | None:
        if obs.grad_norm is None:
            return None
        return obs.grad_norm if obs.grad_finite else float("nan")

    def compute(self, values: np.ndarray) -> float:
        mean = float(values.mean())
        if mean <= 0.0:
            return 0.0
        return float(values.std(ddof=1)) / mean
