"""Per-sample norms: a model of linear layers measures a step without splitting it.

The hooks of :class:`deba.signals.per_sample.PerSampleNorms` read every sample's squared share of
the accumulated gradient during the step's own backward, so each sample is one small estimate
(``b_i = 1``) next to the full batch of the same step. The hooks keep their own clock; their
seconds count as DEBA's own.
"""

from __future__ import annotations

from typing import Any

from deba.signals.per_sample import PerSampleNorms
from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import SampleTally, SmallEstimates
from deba.training.stopwatch import Stopwatch

__all__ = ["PerSampleStep", "read_manual"]


class PerSampleStep(Measurement):
    """Run the step with the per-sample hooks on; every sample is one small estimate.

    Example:
        >>> import torch
        >>> from deba.signals.per_sample import PerSampleNorms
        >>> from deba.training.measurement.base import MicroBatchRunner
        >>> model = torch.nn.Linear(3, 2)
        >>> out = PerSampleStep(PerSampleNorms(model)).run(
        ...     (torch.randn(4, 3), torch.tensor([0, 1, 1, 0])), MicroBatchRunner.for_model(model))
        >>> out.small.count, out.small.samples
        (4, 4.0)
    """

    def __init__(self, per_sample: PerSampleNorms) -> None:
        self.per_sample = per_sample

    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        tally = SampleTally()

        def after_micro(size: int) -> None:
            with runner.stopwatch:
                tally.add(self.per_sample.take(), size)  # a layer it cannot read: no measurement this step

        with self.per_sample:
            result = runner.run(batch, after_micro=after_micro, on_retry=tally.reset)
        runner.stopwatch.add(self.per_sample.take_seconds())
        scale = runner.loss_scale()
        if scale is not None:
            tally.total /= scale ** 2
        return Measured(result, tally.estimates())


def read_manual(per_sample: PerSampleNorms, batch_size: int, stopwatch: Stopwatch) -> SmallEstimates | None:
    """Manual mode: the per-sample norms the hooks read while the user ran forward and backward
    of ``batch_size`` samples (``None`` when unread, mismatched, or under two samples)."""
    v = per_sample.take()
    stopwatch.add(per_sample.take_seconds())
    if v is None or v.numel() != batch_size or batch_size < 2:
        return None
    # The mean loss's backward leaves g_i / n per sample.
    return SmallEstimates.from_sample_sum(float(v.sum()), batch_size)
