"""The split step: a one-micro-batch step run as two halves, so it has two small estimates.

The halves give no micro sketches (the collectors see the step as if it had not been split), and
the step keeps the memory cap it had: the split was for measuring, not for memory. Splitting
changes what a BatchNorm model trains on; such models are measured with a
:class:`~deba.training.measurement.shadow_half.ShadowHalf` instead.
"""

from __future__ import annotations

from typing import Any

from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import MicroNorm, SmallEstimates

__all__ = ["SplitStep"]


class SplitStep(Measurement):
    """Run a step of ``n`` samples (at least 2) as halves of ``ceil(n / 2)`` and ``floor(n / 2)``.

    Example:
        >>> import torch
        >>> from deba.training.measurement.base import MicroBatchRunner
        >>> model = torch.nn.Linear(3, 2)
        >>> out = SplitStep(5).run((torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])), MicroBatchRunner.for_model(model))
        >>> out.result.micro_sizes, out.result.cap, out.small.count
        ([3, 2], None, 2)
    """

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        norms: list[MicroNorm] = []
        result = runner.run(batch, cap=-(-self.n // 2), sketch=None,
                            after_micro=lambda size: norms.append(runner.read_norm(size)), on_retry=norms.clear)
        if not result.oom_events:
            result.cap = runner.cap  # the split was for measuring, not for memory
        return Measured(result, SmallEstimates.from_micro_norms(runner.unscaled(norms)))

    def __repr__(self) -> str:
        return f"SplitStep({self.n})"
