"""The physical limit of a task: its throughput bound and its goodput ceiling.

* **Throughput bound**: ``max_B T(B) / T(B0)``, what any batch schedule could gain if a larger
  batch cost no statistical efficiency at all.
* **Goodput ceiling**: the fixed-small time divided by the time of an ideal schedule that, at every
  point of progress (starting-batch-equivalent samples), runs at the batch of best ``T(B) E_t(B)``,
  ``E_t(B) = (B_t + B0) / (B_t + B)``, with ``B_t`` the noise scale the fixed-small runs measured at
  that point (median over seeds; before the first estimate the ideal runs at ``B0``). No schedule
  can beat it by Pollux's model; a method's speedup as a share of it says how much of the possible
  gain it took.
"""

from __future__ import annotations

import bisect
import statistics
from typing import Any, Mapping, Sequence

from deba.app.study.analysis import to_model

__all__ = ["goodput_ceiling", "noise_at", "throughput_bound"]


def throughput_bound(table: Mapping[str, float], b0: int) -> float | None:
    """``max_B T(B) / T(B0)`` over the table."""
    t0 = to_model(table).samples_per_second(b0)
    return None if not t0 else max(float(v) for v in table.values()) / t0


def noise_at(records: Sequence[Mapping[str, Any]], progress: float) -> float | None:
    """Median over runs of the last noise-scale value measured at or before ``progress`` (equivalent samples)."""
    values = []
    for r in records:
        rows = [row for row in r.get("noise", []) if (row[1] if row[1] is not None else row[2]) is not None]
        xs = [row[0] for row in rows]
        i = bisect.bisect_right(xs, progress) - 1
        if i >= 0:
            row = rows[i]
            values.append(row[1] if row[1] is not None else row[2])
    return statistics.median(values) if values else None


def goodput_ceiling(fixed_small: Sequence[Mapping[str, Any]], table: Mapping[str, float], b0: int, budget: float,
                    upto: float = 1.0, points: int = 200) -> float | None:
    """Fixed-small time / ideal-schedule time over the first ``upto`` share of the budget."""
    tm = to_model(table)
    sizes = sorted(int(b) for b in table)
    t0 = tm.samples_per_second(b0)
    if not t0 or not fixed_small:
        return None
    end = upto * budget
    ideal = 0.0
    for k in range(points):
        p = (k + 0.5) * end / points
        bn = noise_at(fixed_small, p)
        if bn is None:
            best = t0
        else:
            best = max(tm.samples_per_second(b) * (bn + b0) / (bn + b) for b in sizes)
        ideal += (end / points) / max(best, t0 * 1e-6)
    return (end / t0) / ideal if ideal > 0 else None
