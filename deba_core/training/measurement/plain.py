"""The plain step: micro-batches under the memory cap, each one's gradient norm read on a
measurement step (a step of several micro-batches measures itself)."""

from __future__ import annotations

from typing import Any

from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import MicroNorm, SmallEstimates

__all__ = ["PlainStep"]


class PlainStep(Measurement):
    """Run the step as it is; with ``read_norms`` every micro-batch is one small estimate.

    Args:
        read_norms: read each micro-batch's gradient norm (a noise measurement step).

    Example:
        >>> import torch
        >>> from deba.training.measurement.base import MicroBatchRunner
        >>> model = torch.nn.Linear(3, 2)
        >>> runner = MicroBatchRunner.for_model(model, cap=2)
        >>> out = PlainStep(read_norms=True).run((torch.randn(4, 3), torch.tensor([0, 1, 1, 0])), runner)
        >>> out.result.micro_sizes, out.small.count, out.small.samples
        ([2, 2], 2, 4.0)
    """

    def __init__(self, read_norms: bool = False) -> None:
        self.read_norms = read_norms

    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        norms: list[MicroNorm] = []
        after = (lambda size: norms.append(runner.read_norm(size))) if self.read_norms else None
        result = runner.run(batch, after_micro=after, on_retry=norms.clear)
        return Measured(result, SmallEstimates.from_micro_norms(runner.unscaled(norms)))

    def __repr__(self) -> str:
        return f"PlainStep(read_norms={self.read_norms})"
