"""What every way of running a step's micro-batches shares: the :class:`Measurement` interface and
the :class:`MicroBatchRunner` a measurement drives.

A measurement runs the micro-batches of one step (forward and backward of this rank's shard,
gradients left in ``.grad``) and returns the step's :class:`~deba.training.batching.MicroBatchResult`
with the small gradient estimates it read (:class:`SmallEstimates`, ``None`` when it read none).
The step engine picks one per step (:meth:`deba.training.step.StepEngine.run`):

* :class:`~deba.training.measurement.plain.PlainStep`: micro-batches under the memory cap, reading
  each one's gradient norm on a measurement step;
* :class:`~deba.training.measurement.split.SplitStep`: a one-micro-batch step run as two halves;
* :class:`~deba.training.measurement.shadow_half.ShadowHalf`: a shadow half-batch pass before the
  unchanged step (BatchNorm models);
* :class:`~deba.training.measurement.per_sample.PerSampleStep`: per-sample norms (linear layers);
* :class:`~deba.training.measurement.ranks.AcrossRanks`: under DDP, the ranks' shards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from deba.signals.per_sample import PerSampleNorms
from deba.signals.probe import GradientProbe
from deba.training.batching import MicroBatchResult, run_micro_batches
from deba.training.measurement.estimates import MicroNorm, SmallEstimates
from deba.training.precision import Precision
from deba.training.stopwatch import Stopwatch

__all__ = ["Measured", "Measurement", "MicroBatchRunner"]

_UNSET: Any = object()


@dataclass
class Measured:
    """What a measurement's step produced: this rank's micro-batch run and the small estimates read."""

    result: MicroBatchResult
    small: SmallEstimates | None = None


class MicroBatchRunner:
    """Runs one step's micro-batches for a :class:`Measurement`, with the step's loss, backward,
    memory cap and sketch reads, and reads gradient norms on DEBA's clock.

    Args:
        model: the model (its gradients are cleared on an out-of-memory retry).
        probe: the gradient probe (its increments give each micro-batch's gradient norm).
        forward_loss: ``forward_loss(micro_batch) -> mean loss``.
        backward: ``backward(loss)`` (``None``: ``loss.backward()``).
        cap: samples per forward/backward (``None``: no cap).
        sketch: read a gradient sketch after each micro-batch (collectors that use them).
        stopwatch: DEBA's own time.
        precision: autocast around ``forward_loss`` and the fp16 loss scale the reads undo.
        per_sample: per-sample hooks to clear on a retry (``None``: none).
    """

    def __init__(self, *, model: nn.Module, probe: GradientProbe, forward_loss: Callable[[Any], torch.Tensor],
                 backward: Callable[[torch.Tensor], None] | None, cap: int | None, sketch: bool,
                 stopwatch: Stopwatch, precision: Precision, per_sample: PerSampleNorms | None = None) -> None:
        self.model = model
        self.probe = probe
        self.cap = cap
        self.stopwatch = stopwatch
        self.precision = precision
        self.per_sample = per_sample
        self.sketch = self._timed_sketch if sketch else None
        self.forward_loss, self.backward = forward_loss, backward
        if precision.enabled:
            def autocast_loss(micro: Any) -> torch.Tensor:
                with precision.autocast():
                    return forward_loss(micro)

            self.forward_loss, self.backward = autocast_loss, backward or precision.backward
        self._scale: float | None = None

    @classmethod
    def for_model(cls, model: nn.Module, *, cap: int | None = None, sketch_size: int = 8) -> "MicroBatchRunner":
        """A runner for ``(inputs, targets)`` batches and a cross-entropy loss, full precision (tests, examples)."""
        from deba.training.batching import call_model

        def forward_loss(micro: Any) -> torch.Tensor:
            return nn.functional.cross_entropy(call_model(model, micro[0]), micro[1])

        return cls(model=model, probe=GradientProbe(model, sketch_size), forward_loss=forward_loss, backward=None,
                   cap=cap, sketch=False, stopwatch=Stopwatch(), precision=Precision(None, "cpu"))

    def run(self, batch: Any, *, cap: int | None = _UNSET, sketch: Callable[[], torch.Tensor] | None = _UNSET,
            after_micro: Callable[[int], None] | None = None,
            on_retry: Callable[[], None] | None = None) -> MicroBatchResult:
        """Forward and backward ``batch`` as micro-batches (``cap`` and ``sketch`` default to the
        runner's); ``after_micro(size)`` after each backward; ``on_retry()`` when an out-of-memory
        retry voids what was read."""

        def zero_grad() -> None:
            # A retry after out-of-memory: the micro-batch norms of the failed try are void.
            self.model.zero_grad(set_to_none=True)
            if on_retry is not None:
                on_retry()
            if self.per_sample is not None:
                self.per_sample.take()
            self.probe.reset_increments()

        return run_micro_batches(
            None, batch, cap=self.cap if cap is _UNSET else cap, forward_loss=self.forward_loss,
            backward=self.backward, sketch=self.sketch if sketch is _UNSET else sketch, zero_grad=zero_grad,
            after_micro=after_micro,
        )

    def read_norm(self, size: int) -> MicroNorm:
        """The squared norm of the gradient added since the last read (one micro-batch of ``size``)."""
        with self.stopwatch:
            return MicroNorm(size, self.probe.increment_sq())

    def loss_scale(self) -> float | None:
        """The fp16 loss scale of this step (``None`` without a GradScaler): reads divide it out."""
        if self.precision.scaler is None:
            return None
        if self._scale is None:
            self._scale = self.precision.scale()
        return self._scale

    def unscaled(self, norms: list[MicroNorm]) -> list[MicroNorm]:
        """``norms`` of the true (unscaled) gradient."""
        scale = self.loss_scale()
        return norms if scale is None else [m.scaled(scale ** 2) for m in norms]

    def _timed_sketch(self) -> torch.Tensor:
        with self.stopwatch:
            return self.probe.sketch()


class Measurement(ABC):
    """One way of running a step's micro-batches and reading its small gradient estimates."""

    @abstractmethod
    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        """Forward and backward ``batch`` through ``runner``; gradients stay in ``.grad``."""
