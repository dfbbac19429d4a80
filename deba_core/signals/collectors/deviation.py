"""``loss_deviation`` and ``grad_norm_deviation``: how unsteady a signal is now, relative to warm-up.

DEBA v2's stability signals (docs/design.md, "Signals"). Each interval contributes its mean loss
(or gradient norm) and how many samples it averaged. Over the window the collector takes the
residual spread around the least-squares line (so a steady fall is not instability), scales it
by ``sqrt(samples per interval)`` (an interval mean over more samples is less noisy: without this
a batch growth would read as calm and a shrink as trouble), and divides by the same statistic of
the run's own first full window (its warm-up). So the value means the same thing all run long and
for every model: 1 is "as unsteady as at the start", 3 is a spike or oscillation three times the
start's, and no scale is borrowed from another model. v1's ``loss_variation`` divided by the mean
loss instead, which rises as the loss falls at constant noise.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from typing import Any

import numpy as np

from deba.signals.collectors.base import MetricCollector
from deba.signals.collectors.windowed import check_state
from deba.signals.observation import Observation

__all__ = ["DeviationCollector", "GradientNormDeviationCollector", "LossDeviationCollector", "detrended_std"]

_EPS = 1e-12


def detrended_std(values: np.ndarray) -> float:
    """Residual standard deviation around the least-squares line (0 for fewer than 3 values).

    Example:
        >>> round(detrended_std(np.array([3.0, 2.0, 1.0, 0.0])), 6)
        0.0
    """
    n = values.size
    if n < 3:
        return 0.0
    t = np.arange(n, dtype=np.float64)
    t -= t.mean()
    centred = values - values.mean()
    resid = centred - (float(t @ centred) / float(t @ t)) * t
    return float(np.sqrt((resid @ resid) / (n - 2)))


class DeviationCollector(MetricCollector):
    """Detrended, sample-scaled spread of a scalar over the window, divided by its warm-up value.

    Subclasses define :meth:`extract`. The baseline is fixed the first time the window holds
    ``min_samples`` values and survives :meth:`reset` (a batch change restarts the window, not the
    run's reference).
    """

    uses_sketch = False  # reads one scalar per observation
    #: Measure the spread relative to the window's mean level (a coefficient of variation) rather
    #: than in the signal's own units: for a signal whose level drifts by orders of magnitude.
    relative: bool = False

    def __init__(self, window: int = 8, min_samples: int = 3) -> None:
        super().__init__(window, max(min_samples, 3) if window >= 3 else min_samples)
        self._values: deque[float] = deque(maxlen=window)
        self._samples: deque[float] = deque(maxlen=window)
        self.baseline: float | None = None

    @abstractmethod
    def extract(self, obs: Observation) -> float | None:
        """The scalar this collector tracks, or ``None`` when the observation lacks it."""

    def update(self, obs: Observation) -> None:
        x = self.extract(obs)
        if x is None:
            return
        if not math.isfinite(x):
            self.nonfinite += 1
            return
        self._values.append(float(x))
        self._samples.append(float(obs.batch_size * self.steps_behind(obs)))
        if self.baseline is None and len(self._values) >= self.min_samples:
            # The run's own warm-up spread; a perfectly smooth start falls back to 1 sample's worth.
            self.baseline = max(self._spread(), _EPS)

    def steps_behind(self, obs: Observation) -> int:
        """Steps whose values the observation averages (an interval aggregate: its finite steps)."""
        return max(1, obs.n_steps or 1)

    def _spread(self) -> float:
        values = np.fromiter(self._values, dtype=np.float64)
        spread = detrended_std(values)
        if self.relative:
            spread /= max(abs(float(values.mean())), _EPS)
        return spread * math.sqrt(float(np.mean(np.fromiter(self._samples, dtype=np.float64))))

    def value(self) -> float | None:
        if len(self._values) < self.min_samples or self.baseline is None:
            return None
        out = self._spread() / self.baseline
        return out if math.isfinite(out) else None

    @property
    def count(self) -> int:
        return len(self._values)

    def reset(self) -> None:
        self._values.clear()
        self._samples.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"values": list(self._values), "samples": list(self._samples), "baseline": self.baseline,
                "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state(state, ("values", "samples", "baseline", "nonfinite"), self.name or type(self).__name__)
        self._values = deque((float(v) for v in state["values"]), maxlen=self.window)
        self._samples = deque((float(v) for v in state["samples"]), maxlen=self.window)
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.nonfinite = int(state["nonfinite"])


class LossDeviationCollector(DeviationCollector):
    """Unsteadiness of the loss relative to the run's warm-up (1 = as at the start).

    Example:
        >>> import deba
        >>> c = LossDeviationCollector(window=6, min_samples=3)
        >>> for loss in (2.0, 1.9, 2.0, 1.9, 1.8, 1.7):   # warm-up wobble, then a steady fall
        ...     c.update(deba.Observation(loss=loss, batch_size=32))
        >>> c.value() < 1.0
        True
    """

    name = "loss_deviation"

    def extract(self, obs: Observation) -> float | None:
        return obs.loss


class GradientNormDeviationCollector(DeviationCollector):
    """Unsteadiness of the gradient norm relative to the run's warm-up (1 = as at the start).

    Relative to the window's mean norm (a detrended coefficient of variation): the norm's level
    moves by orders of magnitude during training (a transformer leaving its plateau multiplies it
    tenfold), and a spread in absolute units would read that change of level as instability.

    Example:
        >>> import deba
        >>> c = GradientNormDeviationCollector(window=3, min_samples=3)
        >>> for n in (1.0, 1.1, 0.9, 10.0, 11.0, 9.0):   # the same 10 % wobble, at ten times the level
        ...     c.update(deba.Observation(loss=1.0, batch_size=32, grad_norm=n))
        >>> round(c.value(), 6)
        1.0
    """

    name = "grad_norm_deviation"
    relative = True

    def steps_behind(self, obs: Observation) -> int:
        # The step engine reads the norm on some steps only (docs/design.md, "Overhead").
        return max(1, int(obs.extra.get("grad_norm_steps", obs.n_steps or 1)))

    def extract(self, obs: Observation) -> float | None:
        if obs.grad_norm is None:
            return None
        return obs.grad_norm if obs.grad_finite else float("nan")
