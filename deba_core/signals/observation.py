"""What an adapter hands the scheduler after backward."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from deba.errors import DebaConfigError
from deba.signals.noise import NoiseMeasurement

__all__ = ["Observation", "as_vector"]


def as_vector(value: Any, field_name: str) -> np.ndarray:
    """A 1-D float64 numpy copy of an array-like (list, numpy array, torch tensor)."""
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DebaConfigError.single(field_name, type(value).__name__, "must be a 1-D array of numbers") from exc
    return arr


def _finite(x: float | None) -> bool:
    return x is None or math.isfinite(x)


@dataclass(frozen=True, kw_only=True)
class Observation:
    """One optimizer step as seen by DEBA.

    Args:
        loss: the step's mean loss (NaN or inf marks a failed step).
        batch_size: samples in the step (the real size, e.g. ``len(batch)``).
        grad_norm: total L2 norm of the gradient.
        grad_finite: ``False`` when any gradient entry was NaN or inf.
        grad_sketch: a fixed-index sample of the gradient (1-D, same indices every step).
        micro_sketches: sketches of independent gradient estimates from the same step (one per
            micro-batch or rank); with ``micro_sizes`` they give ``grad_variance`` its estimate.
        micro_sizes: samples behind each entry of ``micro_sketches``.
        n_steps: optimizer steps behind this observation (>1 for an interval aggregate).
        step, epoch, samples: where the run is (informational).
        small_batch, small_grad_sq: on a noise measurement step, the samples behind each small
            independent gradient estimate of the same step (micro-batches or ranks) and the mean of
            their squared norms; with ``batch_size`` and ``grad_norm ** 2`` they give one
            :class:`deba.signals.noise.NoiseMeasurement`.

    Example:
        >>> import deba
        >>> obs = deba.Observation(loss=0.7, batch_size=32, grad_norm=1.5)
        >>> obs.is_finite
        True
    """

    loss: float
    batch_size: int
    grad_norm: float | None = None
    grad_finite: bool = True
    grad_sketch: Any = None
    micro_sketches: Sequence[Any] | None = None
    micro_sizes: Sequence[int] | None = None
    n_steps: int = 1
    step: int | None = None
    epoch: int | None = None
    samples: int | None = None
    small_batch: float | None = None
    small_grad_sq: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        loss = self.loss
        if hasattr(loss, "item"):
            loss = loss.item()
        if isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise DebaConfigError.single("loss", self.loss, "must be a real number")
        object.__setattr__(self, "loss", float(loss))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DebaConfigError.single("batch_size", self.batch_size, "must be an int >= 1")
        if self.grad_norm is not None:
            norm = self.grad_norm.item() if hasattr(self.grad_norm, "item") else self.grad_norm
            if isinstance(norm, bool) or not isinstance(norm, (int, float)):
                raise DebaConfigError.single("grad_norm", self.grad_norm, "must be a real number or None")
            if math.isfinite(norm) and norm < 0:
                raise DebaConfigError.single("grad_norm", norm, "must be >= 0")
            object.__setattr__(self, "grad_norm", float(norm))
        if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1:
            raise DebaConfigError.single("n_steps", self.n_steps, "must be an int >= 1")
        if self.grad_sketch is not None:
            object.__setattr__(self, "grad_sketch", as_vector(self.grad_sketch, "grad_sketch"))
        if (self.micro_sketches is None) != (self.micro_sizes is None):
            raise DebaConfigError.single(
                "micro_sizes", self.micro_sizes, "must be given together with micro_sketches (one size per sketch)"
            )
        if self.micro_sketches is not None:
            sketches = tuple(as_vector(s, "micro_sketches") for s in self.micro_sketches)
            sizes = tuple(self.micro_sizes or ())
            if len(sizes) != len(sketches):
                raise DebaConfigError.single(
                    "micro_sizes", sizes, f"must have one entry per micro sketch ({len(sketches)})"
                )
            if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
                raise DebaConfigError.single("micro_sizes", sizes, "must be ints >= 1")
            if len({s.shape for s in sketches}) > 1:
                raise DebaConfigError.single("micro_sketches", [s.shape for s in sketches], "must all have one length")
            object.__setattr__(self, "micro_sketches", sketches)
            object.__setattr__(self, "micro_sizes", sizes)

    @property
    def noise_measurement(self) -> "NoiseMeasurement | None":
        """The step's two-size noise measurement, when it was a measurement step and is finite."""
        if self.small_grad_sq is None or self.small_batch is None or not self.is_finite or self.grad_norm is None:
            return None
        if not (0 < self.small_batch < self.batch_size and math.isfinite(self.small_grad_sq)):
            return None
        return NoiseMeasurement(self.small_batch, self.small_grad_sq, self.batch_size, self.grad_norm ** 2)

    @property
    def is_finite(self) -> bool:
        """Whether the loss, the gradient norm and the gradient flag are all finite."""
        return math.isfinite(self.loss) and _finite(self.grad_norm) and bool(self.grad_finite)
