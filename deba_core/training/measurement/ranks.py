"""Under DDP the ranks are the small estimates: each rank's shard runs with local gradients (no
all-reduce inside the step), its micro-batches' estimates (if any) are summed over the ranks
together with the loss, in one reduction."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

from deba.training.distributed import DistributedContext
from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import SmallEstimates

__all__ = ["AcrossRanks"]


class AcrossRanks(Measurement):
    """Run ``local`` (this rank's shard) with gradients kept local; :meth:`combine` then sums the
    loss, the samples and the small estimates over the ranks.

    Args:
        local: how this rank runs its shard (a :class:`~deba.training.measurement.plain.PlainStep`).
        no_sync: context manager keeping gradients local (``model.no_sync`` for DDP).
    """

    def __init__(self, local: Measurement, no_sync: Callable[[], contextlib.AbstractContextManager]) -> None:
        self.local = local
        self.no_sync = no_sync

    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        with self.no_sync():
            return self.local.run(batch, runner)

    @staticmethod
    def combine(ctx: DistributedContext, loss_sum: float, samples: int,
                small: SmallEstimates | None) -> tuple[float, float, SmallEstimates | None]:
        """``(loss sum, samples, small estimates)`` of all ranks from this rank's, in one reduction:
        every rank (and each of its micro-batches) is an independent small estimate of the step."""
        sums = (small or SmallEstimates(0.0, 0.0, 0)).sums()
        loss_sum, n_total, sq, b, count = ctx.sum([loss_sum, float(samples), *sums])
        return loss_sum, n_total, SmallEstimates.from_sums(sq, b, count)
