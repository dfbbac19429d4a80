"""A base for collectors whose window holds one scalar per observation."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import deque
from typing import Any

import numpy as np

from deba.errors import DebaConfigError
from deba.signals.observation import Observation
from deba.signals.collectors.base import MetricCollector

__all__ = ["ScalarWindowCollector", "check_state"]


def check_state(state: Any, keys: tuple[str, ...], owner: str) -> dict[str, Any]:
    """Validate that ``state`` is a dict holding ``keys``; raise DebaConfigError otherwise."""
    if not isinstance(state, dict):
        raise DebaConfigError.single(f"{owner}.state", type(state).__name__, "must be a dict from state_dict()")
    missing = [k for k in keys if k not in state]
    if missing:
        raise DebaConfigError.single(f"{owner}.state", sorted(state), f"is missing keys {missing}")
    return state


class ScalarWindowCollector(MetricCollector):
    """Keeps the last ``window`` finite values of :meth:`extract`; subclasses define :meth:`compute`."""

    def __init__(self, window: int = 8, min_samples: int = 2) -> None:
        super().__init__(window, min_samples)
        self._values: deque[float] = deque(maxlen=window)

    @abstractmethod
    def extract(self, obs: Observation) -> float | None:
        """The scalar this collector tracks, or ``None`` when the observation lacks it."""

    @abstractmethod
    def compute(self, values: np.ndarray) -> float:
        """The metric from the window's values (at least ``min_samples`` of them)."""

    def update(self, obs: Observation) -> None:
        x = self.extract(obs)
        if x is None:
            return
        if not math.isfinite(x):
            self.nonfinite += 1
            return
        self._values.append(float(x))

    def value(self) -> float | None:
        if len(self._values) < self.min_samples:
            return None
        out = float(self.compute(np.fromiter(self._values, dtype=np.float64)))
        return out if math.isfinite(out) else None

    @property
    def count(self) -> int:
        return len(self._values)

    def reset(self) -> None:
        self._values.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"values": list(self._values), "nonfinite": self.nonfinite}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = check_state(state, ("values", "nonfinite"), self.name or type(self).__name__)
        values = [float(v) for v in state["values"]][-self.window :]
        self._values = deque(values, maxlen=self.window)
        self.nonfinite = int(state["nonfinite"])
