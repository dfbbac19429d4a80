"""The small estimates a noise measurement yields, and the pieces they are built from.

A noise measurement step gives the estimator (``deba.signals.noise``) several *small* gradient
estimates of the same step next to its full gradient: halves of a split step, micro-batches, a
shadow half and its pair, single samples (per-sample norms) or the ranks under DDP. What reaches
the :class:`deba.Observation` is their sum of squared norms, their summed sizes and their count:
:class:`SmallEstimates`. Its ``small_batch`` and ``small_grad_sq`` are the means the observation
carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["MicroNorm", "SampleTally", "SmallEstimates"]


@dataclass(frozen=True)
class MicroNorm:
    """One micro-batch's share of the accumulated gradient: ``size`` samples, ``sq = |(b_i/n) g_i|^2``
    (the accumulated gradient holds each micro-batch's mean gradient weighted by ``b_i / n``)."""

    size: int
    sq: float

    def scaled(self, factor: float) -> "MicroNorm":
        """The same micro-batch with ``sq`` divided by ``factor`` (an fp16 loss scale squared)."""
        return MicroNorm(self.size, self.sq / factor)


@dataclass(frozen=True)
class SmallEstimates:
    """``count`` small gradient estimates: ``sq`` the sum of their squared norms ``|g_i|^2``,
    ``samples`` the sum of their sizes ``b_i``.

    Example:
        >>> est = SmallEstimates.from_micro_norms([MicroNorm(2, 0.25), MicroNorm(2, 0.5)])
        >>> est, est.small_batch, est.small_grad_sq
        (SmallEstimates(sq=3.0, samples=4.0, count=2), 2.0, 1.5)
    """

    sq: float
    samples: float
    count: int

    @property
    def usable(self) -> bool:
        """At least two estimates: the estimator needs their spread."""
        return self.count >= 2

    @property
    def small_batch(self) -> float:
        """Mean size of an estimate (the observation's ``small_batch``)."""
        return self.samples / self.count

    @property
    def small_grad_sq(self) -> float:
        """Mean ``|g_i|^2`` (the observation's ``small_grad_sq``)."""
        return self.sq / self.count

    @classmethod
    def from_micro_norms(cls, norms: Iterable[MicroNorm]) -> "SmallEstimates | None":
        """The micro-batches' own gradients, ``|g_i|^2 = sq / (b_i / n)^2`` (``None`` without any)."""
        norms = list(norms)
        if not norms:
            return None
        n = sum(m.size for m in norms)
        # The accumulated gradient holds (b_i / n) g_i per micro-batch: undo the loss weighting.
        sq = sum(m.sq / (m.size / n) ** 2 for m in norms)
        return cls(sq, float(n), len(norms))

    @classmethod
    def from_sample_sum(cls, total: float, n: int) -> "SmallEstimates":
        """``n`` single samples whose shares ``g_i / n`` of a mean loss's gradient sum to ``total``
        in squared norm: each sample's own gradient is ``n`` times its share."""
        return cls(total * n * n, float(n), n)

    @classmethod
    def from_sums(cls, sq: float, samples: float, count: float) -> "SmallEstimates | None":
        """Sums reduced over the ranks (``count`` a float sum); ``None`` under two estimates."""
        return cls(sq, samples, int(round(count))) if count >= 2 else None

    def sums(self) -> list[float]:
        """``[sq, samples, count]`` for a reduction over the ranks."""
        return [self.sq, self.samples, float(self.count)]

    def state_dict(self) -> dict[str, Any]:
        return {"sq": self.sq, "samples": self.samples, "count": self.count}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SmallEstimates":
        return cls(float(state["sq"]), float(state["samples"]), int(state["count"]))


@dataclass
class SampleTally:
    """Per-sample squared norms read micro-batch by micro-batch on one step.

    Attributes:
        total: sum of the samples' squared shares of the accumulated gradient.
        samples: samples read.
        failed: a micro-batch could not be read (a layer the hooks cannot handle): no estimate.
    """

    total: float = 0.0
    samples: int = 0
    failed: bool = False

    def add(self, per_sample: Any, size: int) -> None:
        """One micro-batch of ``size`` samples, ``per_sample`` its squared norms (``None``: unread)."""
        if per_sample is None or per_sample.numel() != size:
            self.failed = True
        else:
            self.total += float(per_sample.sum())
            self.samples += size

    def reset(self) -> None:
        """A retry after out-of-memory: what was read is void."""
        self.total, self.samples, self.failed = 0.0, 0, False

    def estimates(self) -> SmallEstimates | None:
        """One estimate per sample (``None`` when a read failed or under two samples)."""
        if not self.samples or self.failed or self.samples < 2:
            return None
        # Sample i's share of the accumulated gradient is g_i / n: undo the weighting.
        return SmallEstimates.from_sample_sum(self.total, self.samples)
