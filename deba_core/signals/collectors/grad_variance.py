"""``grad_variance``: the gradient's noise-to-signal ratio tr(Sigma_B) / |G|^2.

Sigma_B is the covariance of the batch gradient (the per-sample covariance divided by the batch
size), so the ratio is dimensionless and falls as the batch grows - the quantity behind the
gradient noise scale B_simple = batch * ratio (McCandlish et al., 2018).

Two estimators, both on the fixed-index gradient sketch (coordinates sampled uniformly, so the
ratio restricted to them estimates the full ratio):

* **independent estimates** (micro-batches of one step, or DDP ranks): with estimates g_i of b_i
  samples and G their size-weighted mean, ``sum_i b_i |g_i - G|^2 / (k - 1)`` is unbiased for
  tr(Sigma); dividing by ``B |G|^2`` gives the ratio for that step; the window averages steps.
* **sketch across the window** (one estimate per step): the summed per-coordinate variance of the
  step sketches over the window, divided by the squared norm of their mean and multiplied by the
  steps per observation (an interval aggregate averages ``n_steps`` steps). Gradient drift inside
  the window also counts here, so this fallback reads somewhat higher.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from deba.signals.observation import Observation
from deba.signals.collectors.base import MetricCollector
from deba.signals.collectors.windowed import check_state

__all__ = ["GradientVarianceCollector", "noise_ratio_from_estimates"]

_EPS = 1e-30


def noise_ratio_from_estimates(sketches: np.ndarray, sizes: np.ndarray) -> float | None:
    """tr(Sigma_B)/|G|^2 from k >= 2 independent estimates (rows of ``sketches``) of ``sizes`` samples."""
    k = sketches.shape[0]
    if k < 2:
        return None
    total = float(sizes.sum())
    mean = (sizes[:, None] * sketches).sum(axis=0) / total
    dev = sketches - mean
    trace_sigma = float((sizes * np.einsum("ij,ij->i", dev, dev)).sum()) / (k - 1)
    signal = float(mean @ mean)
    if signal <= _EPS:
        return None
    return trace_sigma / (total * signal)


class GradientVarianceCollector(MetricCollector):
    """Noise-to-signal ratio of the batch gradient over the window (dimensionless, >= 0)."""

    name = "grad_variance"

    def __init__(self, window: int = 8, min_samples: int = 2) -> None:
        super().__init__(window, min_samples)
        self._ratios: deque[float] = deque(maxlen=window)
        self._sketches: deque[np.ndarray] = deque(maxlen=window)
        self._steps: deque[int] = deque(maxlen=window)

    def update(self, obs: Observation) -> None:
        if not obs.grad_finite:
            self.nonfinite += 1
            return
        if obs.micro_sketches is not None and len(obs.micro_sketches) >= 2:
            sketches = np.stack(obs.micro_sketches)
            sizes = np.asarray(obs.micro_sizes, dtype=np.float64)
            if not np.isfinite(sketches).all():
                self.nonfinite += 1
                return
            ratio = noise_ratio_from_estimates(sketches, sizes)
            if ratio is not None and math.isfinite(ratio):
                self._ratios.append(ratio)
        if obs.grad_sketch is not None:
            sketch = np.asarray(obs.grad_sketch, dtype=np.float64)
            if not np.isfinite(sketch).all():
                self.nonfinite += 1
                return
            if self._sketches and self._sketches[0].shape != sketch.shape:
                # A different sketch length means a different probe; old entries are not comparable.
                self._sketches.clear()
                self._steps.clear()
            self._sketches.append(sketch)
            self._steps.append(obs.n_steps)

    @property
    def count(self) -> int:
        return max(len(self._ratios), len(self._sketches))

    @property
    def source(self) -> str | None:
        """Which estimator ``value()`` uses now: ``"estimates"``, ``"sketch"`` or ``None``."""
        if len(self._ratios) >= self.min_samples:
            return "estimates"
        if len(self._sketches) >= self.min_samples:
            return "sketch"
        return None

    def value(self) -> float | None:
        source = self.source
        if source == "estimates":
            return float(np.mean(np.fromiter(self._ratios, dtype=np.float64)))
        if source == "sketch":
            stack = np.stack(self._sketches)
            mean = stack.mean(axis=0)
            signal = float(mean @ mean)
            if signal <= _EPS:
                return None
            spread = float(stack.var(axis=0, ddof=1).sum())
            return spread * float(np.mean(self._steps)) / signal
        return None

    def reset(self) -> None:
        self._ratios.clear()
        self._sketches.clear()
        self._steps.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "ratios": list(self._ratios),
            "sketches": [s.tolist() for s in self._sketches],
            "steps": list(self._steps),
            "nonfinite": self.nonfinite,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state(state, ("ratios", "sketches", "steps", "nonfinite"), self.name)
        self._ratios = deque((float(r) for r in state["ratios"]), maxlen=self.window)
        self._sketches = deque((np.asarray(s, dtype=np.float64) for s in state["sketches"]), maxlen=self.window)
        self._steps = deque((int(s) for s in state["steps"]), maxlen=self.window)
        self.nonfinite = int(state["nonfinite"])
