"""The metric-collector contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from deba.errors import DebaConfigError
from deba.signals.observation import Observation

__all__ = ["MetricCollector"]


class MetricCollector(ABC):
    """Turns a stream of observations into one dimensionless number over a sliding window.

    Subclasses set ``name`` (the key strategies see) and implement the five abstract methods
    (``update``, ``value``, ``reset``, ``state_dict``, ``load_state_dict``); ``count`` is optional.
    docs/plugins.md states the same contract. Memory must stay O(window). Non-finite inputs are counted in ``nonfinite`` and never enter a window.
    ``value()`` is ``None`` until the window holds ``min_samples`` observations.

    Args:
        window: how many observations (decision intervals) the window holds.
        min_samples: observations needed before ``value()`` returns a number.

    Example:
        >>> from deba.signals.collectors import LossVariationCollector
        >>> import deba
        >>> c = LossVariationCollector(window=4, min_samples=3)
        >>> for loss in (1.0, 0.9, 0.8):
        ...     c.update(deba.Observation(loss=loss, batch_size=32))
        >>> round(c.value(), 6)  # a steady linear fall is not instability
        0.0
    """

    name: ClassVar[str] = ""
    #: Whether :meth:`update` reads ``obs.grad_sketch`` / ``obs.micro_sketches``. Reading the sketch
    #: costs a gather per parameter tensor every step (and an all-gather under DDP), so the step
    #: engine skips it when no collector needs it; a collector that sets this ``False`` sees them as
    #: ``None``. The default is ``True`` so a plugin that reads sketches keeps getting them.
    uses_sketch: ClassVar[bool] = True

    def __init__(self, window: int = 8, min_samples: int = 2) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise DebaConfigError.single("window", window, "must be an int >= 2")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not 2 <= min_samples <= window:
            raise DebaConfigError.single("min_samples", min_samples, f"must be an int in [2, window={window}]")
        self.window = window
        self.min_samples = min_samples
        self.nonfinite = 0

    @abstractmethod
    def update(self, obs: Observation) -> None:
        """Take one observation."""

    @abstractmethod
    def value(self) -> float | None:
        """The metric over the current window (>= 0), or ``None`` while too few samples."""

    @abstractmethod
    def reset(self) -> None:
        """Empty the window (called after every batch-size change)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state from which :meth:`load_state_dict` continues exactly."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    @property
    def count(self) -> int | None:
        """Observations currently in the window, when the collector reports it (default ``None``).

        Optional: the scheduler never needs it; ``deba.testing`` checks it only when it is a number.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(window={self.window}, min_samples={self.min_samples})"
