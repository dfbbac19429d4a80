"""DEBA's own time: a stopwatch that adds up the seconds spent in DEBA's reads and decisions.

The step engine reports ``deba_seconds`` (docs/design.md, "Overhead"): the time DEBA itself adds to
training (gradient reads, the decision, the reductions it runs), not the forward and backward
passes it schedules. Every such piece of work runs inside ``with stopwatch:``; work timed elsewhere
(the per-sample hooks keep their own clock) is added with :meth:`Stopwatch.add`.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Stopwatch"]


class Stopwatch:
    """Accumulated seconds of the blocks run inside it (a reusable, nestable context manager).

    Args:
        seconds: the starting total (a resumed run's).

    Example:
        >>> watch = Stopwatch()
        >>> with watch:
        ...     pass
        >>> watch.seconds >= 0.0 and watch.last == watch.seconds
        True
        >>> watch.add(1.5)
        >>> watch.seconds >= 1.5
        True
    """

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = float(seconds)
        self.last = 0.0  # seconds of the last block closed
        self._starts: list[float] = []

    def __enter__(self) -> "Stopwatch":
        self._starts.append(time.perf_counter())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.last = time.perf_counter() - self._starts.pop()
        self.seconds += self.last

    def add(self, seconds: float) -> None:
        """Count ``seconds`` timed elsewhere."""
        self.seconds += seconds

    def since(self, mark: float) -> float:
        """Seconds added since the total was ``mark`` (``mark = watch.seconds`` read earlier)."""
        return self.seconds - mark

    def __repr__(self) -> str:
        return f"Stopwatch(seconds={self.seconds!r})"
