"""The shadow half: for a BatchNorm model, a forward and backward of the first half of the batch
before the unchanged step (:func:`deba.training.shadow.shadow_half_pass`), paired with the full step.

The other half is taken as ``(n g - h g1) / (n - h)`` (exact without BatchNorm), so the pair's
spread is the paired ``|g1 - g|^2`` a split gives, free of the ``|G|^2`` terms one half alone would
carry. Like a split's extra cost, the pass's own is in the step's time and in the interval rule
(``measurement_interval``), not in DEBA's own time; its gradient read and the pairing are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deba.signals.probe import GradientProbe
from deba.training.measurement.base import Measured, Measurement, MicroBatchRunner
from deba.training.measurement.estimates import MicroNorm, SmallEstimates
from deba.training.shadow import shadow_half_pass

__all__ = ["ShadowHalf", "pair_with_full"]


def pair_with_full(half: MicroNorm, n: int, probe: GradientProbe) -> list[MicroNorm]:
    """Both halves' micro-batch norms from the shadow half ``g1`` (``half.size = h`` samples,
    ``half.sq = |g1|^2``) and the full step's gradient ``g`` in ``.grad``, the probe still holding
    ``g1`` (so ``probe.increment_sq() = |g - g1|^2``). In the convention of
    :class:`MicroNorm`: ``(b_i, |(b_i/n) g_i|^2)``."""
    h, g1 = half.size, half.sq
    d = probe.increment_sq()  # |g - g1|^2 (the probe kept g1 from the shadow pass)
    full = sum(float(torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64)) ** 2
               for p in probe.params if p.grad is not None and not p.grad.is_sparse)
    dot = 0.5 * (full + g1 - d)  # g . g1
    rest = n - h
    g2 = max(0.0, (n * n * full - 2.0 * n * h * dot + h * h * g1) / (rest * rest))
    return [MicroNorm(h, (h / n) ** 2 * g1), MicroNorm(rest, (rest / n) ** 2 * g2)]


class ShadowHalf(Measurement):
    """Measure a one-micro-batch step of ``n`` samples (at least 2) with a shadow half.

    Args:
        n: the step's samples.
        modules: the batch-dependent modules whose buffers the pass restores
            (:func:`deba.training.shadow.batch_dependent_modules`).
    """

    def __init__(self, n: int, modules: list[nn.Module]) -> None:
        self.n = n
        self.modules = modules

    def run(self, batch: Any, runner: MicroBatchRunner) -> Measured:
        half: list[MicroNorm] = []
        # The probe keeps the half's gradient (increment_sq's copy) for the pairing below.
        measured = shadow_half_pass(runner.model, batch, self.n, runner.forward_loss, runner.backward,
                                    lambda size: half.append(runner.read_norm(size)), self.modules)
        result = runner.run(batch)  # the step itself, unchanged
        norms: list[MicroNorm] = []
        if measured and half and not result.oom_events:
            with runner.stopwatch:
                norms = pair_with_full(half[0], self.n, runner.probe)
        return Measured(result, SmallEstimates.from_micro_norms(runner.unscaled(norms)))

    def __repr__(self) -> str:
        return f"ShadowHalf({self.n})"
