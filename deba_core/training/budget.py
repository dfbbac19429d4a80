"""``RunBudget``: how long a run trains, in what it counts, and when it is spent.

A budget counts samples, or starting-batch-equivalent samples (``sum E(B_i) B_i``: a larger batch
makes each sample worth less, so a run on that clock trains until it has made the progress of the
fixed-batch run; docs/design.md, "A budget in starting-batch-equivalent samples"). An equivalent
budget never trains more than :data:`SAMPLE_CAP` times the strict budget's samples: an LR factor
that makes little progress per sample must not run forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from deba.errors import DebaConfigError

__all__ = ["SAMPLE_CAP", "RunBudget"]

#: An equivalent-sample budget never trains more than this many times the strict budget's samples.
SAMPLE_CAP = 4


@dataclass(frozen=True)
class RunBudget:
    """The run's budget.

    Attributes:
        total: the budget in samples (equivalent or strict); ``None`` when the run has no known
            length (the framework stops it).
        equivalent: whether ``total`` counts starting-batch-equivalent samples.
        owned: whether DEBA stops the run at the budget (``False``: the framework stops it, and
            ``total`` only sizes the profile's share timing).

    Example:
        >>> b = RunBudget(total=1000, equivalent=True)
        >>> b.progress(samples=600, equivalent_samples=450.0), b.spent(samples=600, equivalent_samples=450.0)
        (450.0, False)
        >>> b.spent(samples=4000, equivalent_samples=900.0)  # the sample cap
        True
    """

    total: int | None = None
    equivalent: bool = False
    owned: bool = True

    def __post_init__(self) -> None:
        if self.total is not None and (isinstance(self.total, bool) or not isinstance(self.total, int) or self.total < 1):
            raise DebaConfigError.single("budget.total", self.total, "must be an int >= 1 or None")
        if self.equivalent and self.total is None and self.owned:
            raise DebaConfigError.single("budget", "equivalent", "needs a known length (epochs or max_samples) to "
                                         "train equivalent samples")

    def progress(self, samples: int, equivalent_samples: float) -> float:
        """What the budget counts, so far."""
        return equivalent_samples if self.equivalent else float(samples)

    def spent(self, samples: int, equivalent_samples: float) -> bool:
        """Whether DEBA should stop the run now (never, when it does not own the stop)."""
        if self.total is None or not self.owned:
            return False
        if self.equivalent and samples >= SAMPLE_CAP * self.total:
            return True
        return self.progress(samples, equivalent_samples) >= self.total

    def share_done(self, samples: int, equivalent_samples: float) -> float:
        """Share of the budget done, in [0, 1] (0 with no known length)."""
        if not self.total:
            return 0.0
        return min(1.0, self.progress(samples, equivalent_samples) / self.total)

    def stop_reason(self, samples: int, equivalent_samples: float) -> str:
        """Why a spent budget stopped: ``"equivalent_budget"``, ``"sample_cap"`` or ``"max_samples"``."""
        if not self.equivalent:
            return "max_samples"
        return "sample_cap" if self.progress(samples, equivalent_samples) < (self.total or 0) else "equivalent_budget"
