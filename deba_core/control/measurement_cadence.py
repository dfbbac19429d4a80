"""How often the step engine takes a noise measurement step (docs/design.md, "Signals")."""

from __future__ import annotations

import math

from deba.control.throughput import ThroughputModel
from deba.errors import DebaConfigError

__all__ = ["MEASUREMENT_SHARE", "MeasurementCadence"]

#: Share of training time that noise measurement steps may cost (DEBA's own work gets the rest of 1 %).
MEASUREMENT_SHARE = 0.005


class MeasurementCadence:
    """Steps between noise measurement steps at a batch size, priced from the throughput model.

    A measurement splits a one-micro-batch step in two, which costs ``T(B)/T(B/2) - 1`` of a step,
    plus DEBA's own reads of the halves (``own_seconds``, timed by the step engine; ignored with a
    fixed table); measuring every ``k = ceil(cost / 0.5 %)`` steps (at most 200) keeps that cost at
    0.5 % of training time, leaving the other half of DEBA's 1 % budget to its per-step work. With
    no throughput known yet (the first steps), every 10 steps. With ``T(B)`` known and ``T(B/2)``
    not (a fixed batch, or no start-up probe), the costliest case is assumed, a half-batch pass as
    slow as a whole step (``T(B)/T(B/2) = 2``), so the 0.5 % holds whatever the half costs.
    ``split=False``: the step engine reads per-sample norms instead of splitting (a model of linear
    layers), so only its own reads cost. ``shadow=True`` (with ``split``): a model with BatchNorm,
    measured by an extra pass over half the batch that leaves training untouched
    (``deba.training.shadow``), which costs ``0.5 T(B)/T(B/2)`` of a step.

    Asked every step, it re-reads the throughput model (medians over its step times) only when the
    batch changes or every 50 steps; :meth:`forget` drops the remembered answer.

    Example:
        >>> from deba.control.throughput import ThroughputModel
        >>> cadence = MeasurementCadence()
        >>> table = ThroughputModel({16: 800.0, 32: 1000.0})
        >>> cadence.steps_between(table, batch=32, step=0)  # T(B)/T(B/2) = 1.25: cost 0.25 of a step
        50
        >>> cadence.steps_between(ThroughputModel(), batch=32, step=0)  # cached until the batch or step//50 moves
        50
        >>> cadence.forget(); cadence.steps_between(ThroughputModel(), batch=32, step=0)  # nothing timed yet
        10
    """

    def __init__(self) -> None:
        self.cache: tuple[tuple[int, int, bool, bool], int] | None = None

    def forget(self) -> None:
        """Drop the remembered answer (the next call re-reads the throughput model)."""
        self.cache = None

    def steps_between(self, throughput: ThroughputModel, batch: int, step: int, own_seconds: float | None = None,
                      split: bool = True, shadow: bool = False) -> int:
        """Steps between measurement steps at ``batch`` at optimizer step ``step``.

        Raises:
            DebaConfigError: ``split`` or ``shadow`` is not a bool.
        """
        if not isinstance(split, bool) or not isinstance(shadow, bool):
            raise DebaConfigError.single("split" if not isinstance(split, bool) else "shadow",
                                         split if not isinstance(split, bool) else shadow, "must be True or False")
        key = (batch, step // 50, split, shadow)
        if self.cache is not None and self.cache[0] == key:
            return self.cache[1]
        k = self._price(throughput, batch, own_seconds, split, shadow)
        self.cache = (key, k)
        return k

    @staticmethod
    def _price(throughput: ThroughputModel, batch: int, own_seconds: float | None, split: bool, shadow: bool) -> int:
        full, half = throughput.samples_per_second(batch), throughput.samples_per_second(max(1, -(-batch // 2)))
        if not split and full is not None:
            half = full  # nothing is split: the step runs as it would
        if full is not None and half is None:
            # Never timed at B/2 (a fixed batch never trains there): bound the cost, do not guess it.
            # Measuring every 10 steps here cost a fixed batch of 32 4.3 % of its time on a small CNN,
            # 7.2 % on ResNet-18 (benchmarks/fixed_measurement_overhead.py).
            half = full / 2.0
        if full is None or half is None:
            return 10
        own = max(own_seconds or 0.0, 0.0) if throughput.fixed is None else 0.0  # rule 6 with a table
        extra = 0.5 * full / half if split and shadow else max(full / half - 1.0, 0.0)
        cost = extra + own * full / batch
        return int(min(200, max(1, math.ceil(cost / MEASUREMENT_SHARE - 1e-9))))
