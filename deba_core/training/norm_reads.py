"""Which steps read the full gradient norm (docs/design.md, "Overhead").

Reading the total gradient norm touches every gradient entry: on a CPU that is memory-bound and,
for ResNet-18 at batch 128, costs about 1 % of a step on its own. The stability signal built on it
(``grad_norm_deviation``) averages the norm over a decision interval, so it does not need every
step's: the engine reads it every ``j`` steps, with ``j`` set so that the reads cost at most
:data:`READ_SHARE` of training time, and always on noise measurement steps (the estimator needs
``|g_B|^2``), under an fp16 GradScaler (its skip logic reads finiteness), under DDP, on the first
step of every interval (so each interval has a norm), and on every step when decisions do not
already depend on measured timings (the published ``stability`` rule, a fixed ``throughput=``
table), so those stay a pure function of the observations. On the other steps finiteness is checked
on the loss and on the small gradients at both ends of the model (a NaN raised in backward reaches
the input-side layers; a non-finite loss gradient shows at the output layer), at a tiny cost.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deba.control.scheduler import BatchScheduler

__all__ = ["NormReadPlan", "READ_SHARE", "MAX_STRIDE"]

#: Share of step time the full-norm reads may cost.
READ_SHARE = 0.0025
#: Never fewer than one read every this many steps.
MAX_STRIDE = 16


class NormReadPlan:
    """Times the full-norm reads and says how many steps apart they may be.

    Example:
        >>> plan = NormReadPlan()
        >>> plan.stride(step_seconds=0.1)          # nothing timed yet: read every step
        1
        >>> plan.record(0.001)                     # a read costs 1 ms, 1 % of a 100 ms step
        >>> plan.stride(step_seconds=0.1)
        4
    """

    def __init__(self, share: float = READ_SHARE, max_stride: int = MAX_STRIDE) -> None:
        self.share = share
        self.max_stride = max_stride
        self._seconds: deque[float] = deque(maxlen=16)
        self._stride_cache: tuple[tuple[int, int], int] | None = None  # ((batch, 50-step block), stride)

    def record(self, seconds: float) -> None:
        """One full read took ``seconds``."""
        if math.isfinite(seconds) and seconds >= 0:
            self._seconds.append(float(seconds))

    @property
    def read_seconds(self) -> float | None:
        """Median time of the recent full reads (``None`` before the first)."""
        return statistics.median(self._seconds) if self._seconds else None

    def stride(self, step_seconds: float | None) -> int:
        """Steps between full reads for a step of ``step_seconds`` (1 while either time is unknown)."""
        read = self.read_seconds
        if read is None or step_seconds is None or not step_seconds > 0:
            return 1
        return int(min(self.max_stride, max(1, math.ceil(read / (self.share * step_seconds) - 1e-9))))

    def due(self, scheduler: "BatchScheduler", steps: int) -> bool:
        """Whether step ``steps + 1`` of a run under ``scheduler`` reads the full norm: on every step
        when decisions do not depend on timing (``timing_decides``) or the decision interval has no
        norm yet (``interval_has_norm``), else every :meth:`stride_at` steps."""
        if not scheduler.timing_decides:  # keep the published rule and fixed tables timing-free
            return True
        if not scheduler.interval_has_norm:
            return True
        j = self.stride_at(scheduler, steps)
        return j <= 1 or (steps + 1) % j == 0

    def stride_at(self, scheduler: "BatchScheduler", steps: int) -> int:
        """:meth:`stride` at the scheduler's batch size and its measured step time, re-read when the
        batch changes or every 50 steps."""
        b = scheduler.batch_size
        key = (b, steps // 50)
        if self._stride_cache is None or self._stride_cache[0] != key:
            t = scheduler.throughput.samples_per_second(b)
            self._stride_cache = (key, self.stride(b / t if t else None))
        return self._stride_cache[1]

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": list(self._seconds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seconds = deque((float(s) for s in state.get("seconds", [])), maxlen=16)
        self._stride_cache = None
