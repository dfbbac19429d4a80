"""The study's figures: targets, costs to target, paired speedups with bootstrap intervals.

* **Target** per task: the fixed-small plateau (median over seeds of the mean of its last three
  evaluations) minus 0.3 points. The plateau check: the last 20 % of the fixed-small run gains
  less than 0.3 points.
* **Cost to target** of a run: the first evaluation at or above the target, with the samples,
  optimizer steps, measured training time and *modelled* time (sum over the steps so far of
  ``B / T(B)`` from the task's throughput table, plus the start-up throughput probe's passes
  priced the same way: a cost of adapting that a fixed batch does not pay) up to it.
* **Speedups** are paired by seed (the baseline's time over the method's, each to the target) and
  summarised by their mean with a bootstrap 90 % interval over seeds.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from typing import Any, Mapping, Sequence

from deba.control.throughput import ThroughputModel

__all__ = ["bootstrap_mean", "choose_best", "cost_to_target", "modelled_prefix", "modelled_time", "plateau_gain",
           "plateau_target", "probe_cost", "probe_modelled_time", "run_modelled_time", "to_model"]

MARGIN = 0.003  # 0.3 points


def to_model(table: Mapping[str, float]) -> ThroughputModel:
    """A fixed throughput model from a study table (keys are batch sizes as strings)."""
    return ThroughputModel({int(b): float(v) for b, v in table.items()})


def modelled_prefix(trajectory: Sequence[Sequence[int]], table: Mapping[str, float]) -> tuple[list[int], list[float]]:
    """(step counts, modelled seconds) at the end of each run of equal batch sizes."""
    tm = to_model(table)
    steps, seconds, n, t = [0], [0.0], 0, 0.0
    for b, count in trajectory:
        n += count
        t += count * b / tm.samples_per_second(int(b))
        steps.append(n)
        seconds.append(t)
    return steps, seconds


def modelled_time(trajectory: Sequence[Sequence[int]], table: Mapping[str, float], at_step: int | None = None) -> float:
    """Modelled seconds of the first ``at_step`` steps (all of them by default)."""
    steps, seconds = modelled_prefix(trajectory, table)
    if at_step is None or at_step >= steps[-1]:
        return seconds[-1]
    i = bisect.bisect_right(steps, at_step) - 1  # inside run i: interpolate linearly over its steps
    frac = (at_step - steps[i]) / max(steps[i + 1] - steps[i], 1)
    return seconds[i] + frac * (seconds[i + 1] - seconds[i])


def probe_modelled_time(record: Mapping[str, Any], table: Mapping[str, float]) -> float:
    """Modelled seconds of the run's start-up probe: ``passes * sum(B / T(B))`` over the sizes it
    timed (``record["probe"]``; 0.0 for a run without one, or a record from before it was kept).

    Example:
        >>> round(probe_modelled_time({"probe": {"sizes": [16, 32], "passes": 3}}, {"16": 160.0, "32": 320.0}), 6)
        0.6
    """
    probe = record.get("probe") or {}
    return probe_cost(probe.get("sizes", ()), probe.get("passes", 0), to_model(table))


def probe_cost(sizes: Sequence[int], passes: int, tm: ThroughputModel) -> float:
    """``passes * sum(B / T(B))`` over ``sizes``: a probe's seconds priced by a throughput model."""
    return float(passes) * sum(b / tm.samples_per_second(int(b)) for b in sizes)


def run_modelled_time(record: Mapping[str, Any], table: Mapping[str, float], at_step: int | None = None) -> float:
    """A run's modelled seconds to ``at_step`` (all its steps by default): its probe, then its steps."""
    return probe_modelled_time(record, table) + modelled_time(record["trajectory"], table, at_step)


def _tail_mean(record: Mapping[str, Any], n: int = 3) -> float:
    accs = [p["accuracy"] for p in record["curve"] if p["accuracy"] is not None]
    return statistics.fmean(accs[-n:]) if accs else float("nan")


def plateau_target(fixed_small: Sequence[Mapping[str, Any]]) -> float:
    """Median over seeds of the mean of the last 3 evaluations, minus 0.3 points (a fraction)."""
    return statistics.median(_tail_mean(r) for r in fixed_small) - MARGIN


def plateau_gain(record: Mapping[str, Any]) -> float:
    """Accuracy gained over the last 20 % of the run (mean of the last 3 evaluations vs the one at 80 %)."""
    curve = [p for p in record["curve"] if p["accuracy"] is not None]
    before = [p for p in curve if p["progress"] <= 0.8 + 1e-9]
    if not before:
        return float("nan")
    return _tail_mean(record) - before[-1]["accuracy"]


def cost_to_target(record: Mapping[str, Any], target: float, table: Mapping[str, float]) -> dict[str, float] | None:
    """Samples, steps, training and modelled seconds to the first evaluation >= ``target`` (or ``None``)."""
    for p in record["curve"]:
        if p["accuracy"] is not None and p["accuracy"] >= target - 1e-12:
            return {"samples": p["samples"], "steps": p["steps"], "train_time_s": p["train_time"],
                    "modelled_time_s": run_modelled_time(record, table, p["steps"]),
                    "progress": p["progress"]}
    return None


def choose_best(sweep: Sequence[Mapping[str, Any]], target: float, table: Mapping[str, float]
                ) -> tuple[int, str, str]:
    """``(K, rule, why)`` of the sweep cell fastest to ``target`` in modelled time (else most accurate).

    The records are ``fixed-small`` and the ``sweep-Kx-rule`` cells of one seed.
    """
    def parse(rec: Mapping[str, Any]) -> tuple[int, str]:
        if rec["method"] == "fixed-small":
            return 1, "linear"
        k, rule = rec["method"][len("sweep-"):].split("-", 1)
        return int(k.rstrip("x")), rule

    reached = [(c["modelled_time_s"], parse(r)) for r in sweep if (c := cost_to_target(r, target, table)) is not None]
    if reached:
        t, (k, rule) = min(reached)
        return k, rule, f"fastest to the target ({100 * target:.2f} %) in modelled time ({t:.2f} s) on seed 0"
    best = max(sweep, key=lambda r: -1.0 if r["final_accuracy"] is None else r["final_accuracy"])
    k, rule = parse(best)
    return k, rule, f"none reached the target on seed 0; most accurate ({100 * (best['final_accuracy'] or 0):.2f} %)"


def bootstrap_mean(values: Sequence[float], n: int = 2000, level: float = 0.9, seed: int = 0
                   ) -> tuple[float | None, float | None, float | None]:
    """``(mean, low, high)``: the mean and a bootstrap ``level`` interval (resampling the values)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, None
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return mean, mean, mean
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(vals, k=len(vals))) for _ in range(n))
    lo = means[int(math.floor((1 - level) / 2 * (n - 1)))]
    hi = means[int(math.ceil((1 + level) / 2 * (n - 1)))]
    return mean, lo, hi
