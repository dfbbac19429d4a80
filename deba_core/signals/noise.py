"""The gradient noise scale, measured: ``B_simple = tr(Sigma) / |G|^2`` (McCandlish et al. 2018).

One *measurement* is two gradient sizes at the same parameters: a small batch of ``b`` samples
(the first micro-batch of a step, or each rank's shard) and the full batch of ``B`` samples. With
``E|g_b|^2 = |G|^2 + tr(Sigma)/b``,

    |G|^2     ~ (B |g_B|^2 - b |g_b|^2) / (B - b)
    tr(Sigma) ~ (|g_b|^2 - |g_B|^2) / (1/b - 1/B)

are unbiased. Single measurements are very noisy, so the numerator and the denominator are each
averaged over measurements (an exponential moving average), never their ratio. While the averaged
``|G|^2`` is not clearly positive (below ``min_snr`` standard errors) there is no estimate at all:
no growth follows from it (docs/design.md, "Signals"). A sketch's variance *across steps* is drift,
not noise, and is never used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from deba.errors import DebaConfigError

__all__ = ["NoiseMeasurement", "NoiseScaleEstimator"]


@dataclass(frozen=True)
class NoiseMeasurement:
    """One two-size measurement at fixed parameters.

    Attributes:
        small_batch: samples behind each small estimate (``b``).
        small_sq: ``|g_b|^2``, averaged over the independent small estimates of the step.
        big_batch: samples of the full batch (``B > b``).
        big_sq: ``|g_B|^2``.

    Example:
        >>> m = NoiseMeasurement(small_batch=16, small_sq=3.0, big_batch=32, big_sq=2.0)
        >>> round(m.g_sq, 6), round(m.trace, 6)
        (1.0, 32.0)
    """

    small_batch: float
    small_sq: float
    big_batch: float
    big_sq: float

    def __post_init__(self) -> None:
        for name in ("small_batch", "small_sq", "big_batch", "big_sq"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise DebaConfigError.single(name, v, "must be a finite number >= 0")
        if not 0 < self.small_batch < self.big_batch:
            raise DebaConfigError.single("small_batch", self.small_batch, f"must be in (0, big_batch={self.big_batch})")

    @property
    def g_sq(self) -> float:
        """This measurement's unbiased estimate of ``|G|^2`` (may be negative)."""
        b, B = self.small_batch, self.big_batch
        return (B * self.big_sq - b * self.small_sq) / (B - b)

    @property
    def trace(self) -> float:
        """This measurement's unbiased estimate of ``tr(Sigma)`` (per-sample; may be negative)."""
        b, B = self.small_batch, self.big_batch
        return (self.small_sq - self.big_sq) / (1.0 / b - 1.0 / B)


class NoiseScaleEstimator:
    """Averages ``|G|^2`` and ``tr(Sigma)`` separately and reports ``B_simple`` when it is meaningful.

    The averaging horizon is counted in optimizer steps, not measurements: a measurement taken
    ``gap`` steps after the previous one weighs the past by ``1 - gap / horizon``, kept in
    [0.9, 0.99] so about ten measurements or more always count. Measuring every step averages over
    about ``horizon`` steps (EMA 0.98 for 50); measuring every 10 steps over about 100.

    Args:
        horizon: averaging horizon in optimizer steps.
        min_snr: the averaged ``|G|^2`` must exceed this many of its standard errors.
        min_measurements: no estimate before this many measurements.

    Example:
        >>> est = NoiseScaleEstimator(horizon=2, min_measurements=2)
        >>> for _ in range(4):
        ...     est.update(NoiseMeasurement(small_batch=16, small_sq=3.0, big_batch=32, big_sq=2.0))
        >>> round(est.noise_scale, 6)
        32.0
    """

    def __init__(self, horizon: float = 50.0, min_snr: float = 2.0, min_measurements: int = 3) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not math.isfinite(horizon) or horizon < 1:
            raise DebaConfigError.single("noise_horizon", horizon, "must be a finite number of steps >= 1")
        self.horizon = float(horizon)
        if isinstance(min_snr, bool) or not isinstance(min_snr, (int, float)) or not math.isfinite(min_snr) or min_snr < 0:
            raise DebaConfigError.single("noise_min_snr", min_snr, "must be a finite number >= 0")
        self.min_snr = float(min_snr)
        if isinstance(min_measurements, bool) or not isinstance(min_measurements, int) or min_measurements < 1:
            raise DebaConfigError.single("noise_min_measurements", min_measurements, "must be an int >= 1")
        self.min_measurements = min_measurements
        self.reset()

    def reset(self) -> None:
        """Forget every measurement."""
        self.count = 0
        self._w = 0.0  # sum of weights
        self._w2 = 0.0  # sum of squared weights (effective sample size)
        self._g = 0.0  # weighted sums of the |G|^2 estimates, their squares, and tr(Sigma)
        self._g2 = 0.0
        self._s = 0.0
        self._s2 = 0.0

    def update(self, m: NoiseMeasurement, gap: int = 1) -> None:
        """Add one measurement taken ``gap`` optimizer steps after the previous one."""
        if not isinstance(m, NoiseMeasurement):
            raise DebaConfigError.single("measurement", type(m).__name__, "must be a NoiseMeasurement")
        if isinstance(gap, bool) or not isinstance(gap, int) or gap < 1:
            raise DebaConfigError.single("gap", gap, "must be an int >= 1")
        beta = min(0.99, max(0.9, 1.0 - gap / self.horizon))
        g = m.g_sq
        self._w = beta * self._w + 1.0
        self._w2 = beta * beta * self._w2 + 1.0
        self._g = beta * self._g + g
        self._g2 = beta * self._g2 + g * g
        self._s = beta * self._s + m.trace
        self._s2 = beta * self._s2 + m.trace * m.trace
        self.count += 1

    @property
    def g_sq(self) -> float | None:
        """The averaged ``|G|^2`` (``None`` before any measurement)."""
        return None if self.count == 0 else self._g / self._w

    @property
    def trace(self) -> float | None:
        """The averaged ``tr(Sigma)`` (``None`` before any measurement)."""
        return None if self.count == 0 else self._s / self._w

    def _stderr(self, total: float, squares: float) -> float | None:
        if self.count < 2:
            return None
        mean = total / self._w
        var = max(squares / self._w - mean * mean, 0.0)
        n_eff = self._w * self._w / self._w2
        return math.sqrt(var / max(n_eff - 1.0, 1.0))

    @property
    def g_sq_stderr(self) -> float | None:
        """Standard error of :attr:`g_sq` from the spread of the measurements."""
        return self._stderr(self._g, self._g2)

    @property
    def trace_stderr(self) -> float | None:
        """Standard error of :attr:`trace`."""
        return self._stderr(self._s, self._s2)

    @property
    def noise_scale(self) -> float | None:
        """``B_simple = tr(Sigma) / |G|^2``, or ``None`` while ``|G|^2`` is not clearly positive."""
        if self.count < self.min_measurements:
            return None
        g, se, s = self.g_sq, self.g_sq_stderr, self.trace
        if g is None or se is None or s is None or g <= 0 or g <= self.min_snr * se:
            return None
        return max(s, 0.0) / g

    @property
    def noise_scale_low(self) -> float | None:
        """A lower confidence bound on ``B_simple``: ``tr(Sigma)`` lowered and ``|G|^2`` raised by
        ``min_snr`` standard errors each.

        Unlike the point estimate it exists while ``|G|^2`` is not yet clearly positive (a gradient
        buried in noise has a *large* noise scale, and the bound says how large at least), as soon
        as ``tr(Sigma)`` is clearly positive. Decisions that need confidence (growth, the AdaScale
        gain, progress credit) use it; it is ``None`` before ``min_measurements``.
        """
        if self.count < self.min_measurements:
            return None
        g, s = self.g_sq or 0.0, self.trace or 0.0
        se_g, se_s = self.g_sq_stderr or 0.0, self.trace_stderr or 0.0
        s_low = s - self.min_snr * se_s
        g_high = max(g, 0.0) + self.min_snr * se_g
        if s_low <= 0 or g_high <= 0:
            return None
        return s_low / g_high

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able data from which :meth:`load_state_dict` continues exactly."""
        return {"count": self.count, "w": self._w, "w2": self._w2, "g": self._g, "g2": self._g2, "s": self._s,
                "s2": self._s2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        try:
            self.count = int(state["count"])
            self._w, self._w2 = float(state["w"]), float(state["w2"])
            self._g, self._g2, self._s = float(state["g"]), float(state["g2"]), float(state["s"])
            self._s2 = float(state["s2"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DebaConfigError.single("state.noise", type(exc).__name__, f"is malformed ({exc})") from exc
