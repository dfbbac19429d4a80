"""``learned``: weights fitted from a calibration phase at fixed batch.

During calibration (``profile.calibration.intervals`` decision intervals, batch held fixed) the
strategy records each interval's instabilities and mean loss. An interval's outcome is *bad* when
over the next ``horizon`` intervals the loss spikes (rises above ``(1 + spike_tolerance)`` times its
value) or stalls (falls by less than ``stall_tolerance`` of it). Non-negative weights are then
fitted by least squares of the outcome on the instabilities (centred, so the base rate does not
leak into the weights, and standardised, so a weight says how strongly a metric predicts bad
outcomes whatever its scale), normalised to sum 1, and the score is ``1 - sum(w * u)``. With too few bad
or good outcomes, or no metric that predicts them, it falls back to equal weights and says so.
A profile whose ``calibration.learned`` is true already carries fitted weights: they are used
from the first interval, with no calibration phase.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.control.scoring import ScoringStrategy, check_metrics, instability

__all__ = ["LearnedStrategy", "nonnegative_least_squares", "outcomes"]


def nonnegative_least_squares(a: np.ndarray, b: np.ndarray, iterations: int = 2000) -> np.ndarray:
    """min ||a w - b||^2 subject to w >= 0, by cyclic coordinate descent (deterministic)."""
    gram = a.T @ a
    rhs = a.T @ b
    w = np.zeros(a.shape[1])
    for _ in range(iterations):
        delta = 0.0
        for j in range(a.shape[1]):
            if gram[j, j] <= 1e-15:
                continue
            new = max(0.0, w[j] + (rhs[j] - gram[j] @ w) / gram[j, j])
            delta = max(delta, abs(new - w[j]))
            w[j] = new
        if delta < 1e-12:
            break
    return w


def outcomes(losses: np.ndarray, horizon: int, spike: float, stall: float) -> np.ndarray:
    """1 where the loss spikes or stalls over the next ``horizon`` intervals, else 0."""
    out = []
    for t in range(losses.size - horizon):
        now, future = losses[t], losses[t + 1 : t + 1 + horizon]
        scale = max(abs(now), 1e-12)
        spiked = future.max() > now + spike * scale
        stalled = (now - future.min()) < stall * scale
        out.append(1.0 if (spiked or stalled) else 0.0)
    return np.asarray(out)


class LearnedStrategy(ScoringStrategy):
    """Scores with non-negative metric weights fitted during a fixed-batch calibration phase.

    Args:
        profile: the architecture profile; ``profile.calibration`` sets the phase.

    Example:
        >>> import deba
        >>> s = LearnedStrategy(deba.load_profile("generic"))
        >>> s.calibrating
        True
        >>> s.status
        'calibrating'
    """

    name = "learned"

    def __init__(self, profile: ArchitectureProfile, **options: Any) -> None:
        super().__init__(profile, **options)
        self._metrics = list(profile.weights)
        self._records: list[list[float | None]] = []
        self._weights: dict[str, float] | None = None
        self.status = "calibrating"
        self.report = ""
        if profile.calibration.learned:
            self._weights = self._normalised(dict(profile.weights))
            self.status = "from-profile"
            self.report = "weights taken from a calibrated profile"

    @staticmethod
    def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
        total = math.fsum(weights.values())
        return {k: v / total for k, v in weights.items()}

    @property
    def calibrating(self) -> bool:
        return self._weights is None

    @property
    def weights(self) -> dict[str, float]:
        """The weights in use: learned, from the profile, or equal during calibration/fallback."""
        if self._weights is None:
            return {m: 1.0 / len(self._metrics) for m in self._metrics}
        return dict(self._weights)

    def update(self, metrics: Mapping[str, float], loss: float) -> None:
        if not self.calibrating:
            return
        check_metrics(metrics)
        if loss is None or not math.isfinite(loss):
            return
        row: list[float | None] = [
            instability(float(metrics[m]), self.profile.tau_for(m)) if m in metrics else None for m in self._metrics
        ]
        self._records.append(row + [float(loss)])
        if len(self._records) >= self.profile.calibration.intervals:
            self._fit()

    def _fallback(self, why: str) -> None:
        self._weights = {m: 1.0 / len(self._metrics) for m in self._metrics}
        self.status = "fallback"
        self.report = f"too little signal to learn weights ({why}); using equal weights"
        warnings.warn(f"deba learned strategy: {self.report}", UserWarning, stacklevel=3)

    def _fit(self) -> None:
        cal = self.profile.calibration
        data = np.array([[np.nan if v is None else v for v in r] for r in self._records], dtype=np.float64)
        u, losses = data[:, :-1], data[:, -1]
        y = outcomes(losses, cal.horizon, cal.spike_tolerance, cal.stall_tolerance)
        u = u[: y.size]
        bad, good = int(y.sum()), int(y.size - y.sum())
        if bad < cal.min_events or good < cal.min_events:
            self._fallback(f"{bad} bad and {good} good outcomes in {y.size} intervals; need {cal.min_events} of each")
            return
        usable = ~np.isnan(u).all(axis=0)
        if not usable.any():
            self._fallback("no metric was available during calibration")
            return
        cols = np.where(usable)[0]
        x = u[:, cols]
        col_mean = np.nanmean(x, axis=0)
        x = np.where(np.isnan(x), col_mean, x)
        # Standardise each instability so a weight measures how strongly a metric predicts bad
        # outcomes, not how small its spread happens to be (an unscaled fit would hand a large
        # weight to a nearly constant metric for fitting noise).
        spread = x.std(axis=0)
        keep = spread > 1e-12
        w = np.zeros(x.shape[1])
        if keep.any():
            z = (x[:, keep] - x[:, keep].mean(axis=0)) / spread[keep]
            w[keep] = nonnegative_least_squares(z, y - y.mean())
        if not w.sum() > 1e-12:
            self._fallback("no metric rises before bad outcomes")
            return
        fitted = {m: 0.0 for m in self._metrics}
        for j, c in enumerate(cols):
            fitted[self._metrics[c]] = float(w[j])
        self._weights = self._normalised(fitted)
        self.status = "learned"
        pretty = ", ".join(f"{k}={v:.3f}" for k, v in self._weights.items())
        self.report = f"learned from {y.size} intervals ({bad} bad, {good} good): {pretty}"
        self._records.clear()  # no longer needed; keeps state small

    def score(self, metrics: Mapping[str, float]) -> float:
        check_metrics(metrics)
        weights = self.weights
        num = den = 0.0
        for name, value in metrics.items():
            w = weights.get(name, 0.0)
            if w > 0.0:
                num += w * instability(float(value), self.profile.tau_for(name))
                den += w
        if den <= 0.0:
            return 0.5
        return min(1.0, max(0.0, 1.0 - num / den))

    def to_profile(self, name: str | None = None) -> ArchitectureProfile:
        """The profile with the learned weights, marked calibrated, to reuse in the next run."""
        if self.calibrating:
            raise DebaConfigError.single(
                "status", self.status, "must be 'learned' or 'fallback' before weights can be exported",
                remedy="Feed at least calibration.intervals intervals first.",
            )
        cal = self.profile.calibration.replace(learned=True)
        return self.profile.replace(
            name=name or self.profile.name, weights=dict(self.weights), calibration=cal.model_dump()
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "records": [list(r) for r in self._records],
            "weights": self._weights,
            "status": self.status,
            "report": self.report,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        missing = {"records", "weights", "status", "report"} - set(state)
        if missing:
            raise DebaConfigError.single("strategy state", sorted(state), f"is missing keys {sorted(missing)}")
        self._records = [[None if v is None else float(v) for v in r] for r in state["records"]]
        w = state["weights"]
        self._weights = None if w is None else {str(k): float(v) for k, v in w.items()}
        self.status = str(state["status"])
        self.report = str(state["report"])
