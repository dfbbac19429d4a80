"""The scheduler's bookkeeping around the gradient noise-scale estimator."""

from __future__ import annotations

from typing import Any

from deba.signals.noise import NoiseMeasurement, NoiseScaleEstimator

__all__ = ["NoiseTracker"]


class NoiseTracker:
    """Feeds noise measurements to a :class:`~deba.signals.noise.NoiseScaleEstimator` with the gap
    (steps since the previous measurement) and remembers the last clear estimate.

    The last clear estimate is the point estimate while it is clear (unbiased), else its lower
    bound: what a step's progress credit is priced with (``deba.profiles.lr_rule.progress_credit``).

    Attributes:
        estimator: the noise-scale estimator (``BatchScheduler.noise``).
        last_measured_step: the step of the last measurement (``None``: none yet).
        last_clear: the last clear estimate (``None``: none yet).

    Example:
        >>> from deba.signals.noise import NoiseMeasurement
        >>> tracker = NoiseTracker()
        >>> tracker.record(NoiseMeasurement(small_batch=16, small_sq=3.0, big_batch=32, big_sq=2.0), step=1)
        >>> tracker.last_measured_step
        1
        >>> sorted(tracker.state_dict())
        ['last_clear_noise', 'last_measured_step', 'noise']
    """

    def __init__(self) -> None:
        self.estimator = NoiseScaleEstimator()
        self.last_measured_step: int | None = None
        self.last_clear: float | None = None

    def record(self, measurement: NoiseMeasurement | None, step: int) -> None:
        """Feed the measurement taken at ``step`` (``None``: the step measured nothing)."""
        if measurement is None:
            return
        gap = 1 if self.last_measured_step is None else max(1, step - self.last_measured_step)
        self.estimator.update(measurement, gap=gap)
        self.last_measured_step = step
        noise = self.estimator
        clear = noise.noise_scale if noise.noise_scale is not None else noise.noise_scale_low
        if clear is not None:
            self.last_clear = clear

    def state_dict(self) -> dict[str, Any]:
        """The three entries of the scheduler's state document, in its order."""
        return {"noise": self.estimator.state_dict(), "last_measured_step": self.last_measured_step,
                "last_clear_noise": self.last_clear}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from the scheduler's state document (``KeyError``/``TypeError`` when malformed)."""
        self.estimator.load_state_dict(state["noise"])
        self.last_measured_step = state["last_measured_step"]
        self.last_clear = state["last_clear_noise"]
