"""Aggregation of the observations inside one decision interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from deba.signals.observation import Observation

__all__ = ["IntervalAccumulator"]


class IntervalAccumulator:
    """Sums what the steps of one interval saw; :meth:`result` gives one aggregate observation.

    Loss and gradient norm are averaged, step sketches averaged, and independent micro-batch
    estimates pooled. Only finite steps are added.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.steps = 0  # every step of the interval, finite or not
        self.finite = 0
        self.loss_sum = 0.0
        self.batch_sum = 0
        self.norm_sum = 0.0
        self.norm_count = 0
        self.sketch_sum: np.ndarray | None = None
        self.sketch_count = 0
        self.micro_sketches: list[np.ndarray] = []
        self.micro_sizes: list[int] = []
        self.last_step: int | None = None
        self.last_epoch: int | None = None
        self.last_samples: int | None = None

    def add(self, obs: Observation) -> None:
        self.finite += 1
        self.loss_sum += obs.loss
        self.batch_sum += obs.batch_size
        if obs.grad_norm is not None:
            self.norm_sum += obs.grad_norm
            self.norm_count += 1
        if obs.grad_sketch is not None:
            sketch = np.asarray(obs.grad_sketch, dtype=np.float64)
            if self.sketch_sum is None or self.sketch_sum.shape != sketch.shape:
                self.sketch_sum, self.sketch_count = sketch.copy(), 1
            else:
                self.sketch_sum += sketch
                self.sketch_count += 1
        if obs.micro_sketches is not None and obs.micro_sizes is not None:
            self.micro_sketches.extend(np.asarray(s, dtype=np.float64) for s in obs.micro_sketches)
            self.micro_sizes.extend(int(s) for s in obs.micro_sizes)
        self.last_step, self.last_epoch, self.last_samples = obs.step, obs.epoch, obs.samples

    def result(self) -> Observation | None:
        """The interval's aggregate observation, or ``None`` when no step was finite."""
        if self.finite == 0:
            return None
        if self.micro_sketches and len({s.shape for s in self.micro_sketches}) > 1:
            self.micro_sketches, self.micro_sizes = [], []
        return Observation(
            loss=self.loss_sum / self.finite,
            batch_size=max(1, round(self.batch_sum / self.finite)),
            grad_norm=self.norm_sum / self.norm_count if self.norm_count else None,
            grad_sketch=None if self.sketch_sum is None else self.sketch_sum / self.sketch_count,
            micro_sketches=self.micro_sketches or None,
            micro_sizes=self.micro_sizes or None,
            n_steps=self.finite,
            extra={"grad_norm_steps": float(self.norm_count)} if self.norm_count else {},
            step=self.last_step,
            epoch=self.last_epoch,
            samples=self.last_samples,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "finite": self.finite,
            "loss_sum": self.loss_sum,
            "batch_sum": self.batch_sum,
            "norm_sum": self.norm_sum,
            "norm_count": self.norm_count,
            "sketch_sum": None if self.sketch_sum is None else self.sketch_sum.tolist(),
            "sketch_count": self.sketch_count,
            "micro_sketches": [s.tolist() for s in self.micro_sketches],
            "micro_sizes": list(self.micro_sizes),
            "last": [self.last_step, self.last_epoch, self.last_samples],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self.finite = int(state["finite"])
        self.loss_sum = float(state["loss_sum"])
        self.batch_sum = int(state["batch_sum"])
        self.norm_sum = float(state["norm_sum"])
        self.norm_count = int(state["norm_count"])
        s = state["sketch_sum"]
        self.sketch_sum = None if s is None else np.asarray(s, dtype=np.float64)
        self.sketch_count = int(state["sketch_count"])
        self.micro_sketches = [np.asarray(m, dtype=np.float64) for m in state["micro_sketches"]]
        self.micro_sizes = [int(m) for m in state["micro_sizes"]]
        self.last_step, self.last_epoch, self.last_samples = state["last"]
