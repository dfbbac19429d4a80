"""How each method of the study is configured for ``deba.fit`` (one place, so every cell agrees).

* ``fixed-small``: the starting batch ``B0``, fixed; ``sweep-Kx-RULE``: a fixed ``K B0`` with the LR
  scaled by ``K`` (linear) or ``sqrt(K)``; ``fixed-best``: the sweep configuration that reached the
  target fastest on seed 0 (in modelled time), run on every seed.
* ``seesaw``: doubles the batch where the study's LR schedule would halve the LR, LR rule ``sqrt``
  (Seesaw 2025).
* ``goodput-ungated``: the goodput rule with no stability gate (AdaScale / Pollux-style).
* ``deba-paper``: the published rule (``policy="stability"``) on v1's three signals, linear LR,
  timing in intervals, the strict sample budget.
* ``deba``: DEBA v2 as shipped: the detected profile, goodput, ``lr_scaling: auto``, equivalent budget.
* ``deba-uniform``: the same with the ``generic`` profile for every model (the architecture ablation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from deba.app.study.schedule import check_schedule, lr_factor
from deba.control.baselines import SeesawPolicy
from deba.errors import DebaConfigError
from deba.profiles.loading import load_profile
from deba.profiles.schema import ArchitectureProfile, RunShares

__all__ = ["MethodConfig", "method_config", "published_rule"]


@dataclass(frozen=True)
class MethodConfig:
    """What ``deba.fit`` gets for one method: profile, fixed batch, LR multiplier, budget clock."""

    profile: ArchitectureProfile
    fixed_batch: int | None
    lr_mult: float
    budget: str  # "samples" or "equivalent"
    label: str
    policy: Any = None  # a BatchPolicy instance for deba.fit's ``policy=`` (None: the profile's policy)


def published_rule(profile: ArchitectureProfile) -> ArchitectureProfile:
    """The architecture's profile as v1 ran it: the published rule on v1's three signals and
    scales, timed in intervals (its counts), linear LR."""
    paper = load_profile("paper")
    return profile.replace(policy="stability", lr_scaling="linear", shares=None, weights=paper.weights, tau=paper.tau,
                           rules=paper.rules, increase_above=0.55, decrease_below=0.3)


def _seesaw(profile: ArchitectureProfile, b0: int) -> ArchitectureProfile:
    # A schedule: decide often (every 0.5 % of the run), no warm-up, cooldown or freeze of its own;
    # one doubling per decision at most; up to 16 B0.
    top = min(profile.max_batch, max(16 * b0, profile.min_batch))
    top -= top % profile.granularity
    return profile.replace(policy="seesaw", lr_scaling="sqrt", growth_factor=2.0, window=2, min_samples=2,
                           shares=RunShares(warmup=0.0, interval=0.005, cooldown=0.0, freeze=0.0),
                           max_batch=max(top, profile.initial_batch))


def method_config(method: str, detected: ArchitectureProfile, b0: int,
                  best: tuple[int, str] | None = None, *, schedule: str) -> MethodConfig:
    """The configuration of ``method`` for a model whose detected profile is ``detected``.

    Args:
        method: a study method or a sweep cell name (``sweep-4x-sqrt``).
        detected: ``deba.profile_for(model)`` (already started at ``b0``).
        b0: the starting batch.
        best: the sweep's winner ``(K, rule)``, needed for ``fixed-best``.
        schedule: the task's LR schedule (``schedule.SCHEDULES``), the shape Seesaw follows.

    Raises:
        DebaConfigError: an unknown method or schedule, or ``fixed-best`` before the sweep chose.
    """
    if method == "fixed-small":
        return MethodConfig(detected, b0, 1.0, "samples", "fixed B0")
    if method.startswith("sweep-") or method == "fixed-best":
        if method == "fixed-best":
            if best is None:
                raise DebaConfigError.single("fixed-best", None, "needs the sweep's choice (run the sweep on seed 0 first)")
            k, rule = best
        else:
            k_text, rule = method[len("sweep-"):].split("-", 1)
            k = int(k_text.rstrip("x"))
        if rule not in ("linear", "sqrt"):
            raise DebaConfigError.single("method", method, "has an LR rule other than linear or sqrt")
        return MethodConfig(detected, k * b0, float(k) if rule == "linear" else math.sqrt(k), "samples",
                            f"fixed {k}x B0, {rule} LR")
    if method == "seesaw":
        profile = _seesaw(detected, b0)
        check_schedule(schedule)
        # Seesaw doubles where *this run's* schedule halves: it is given the task's schedule shape.
        shape = functools.partial(lr_factor, schedule=schedule)
        return MethodConfig(profile, None, 1.0, "samples", "Seesaw ramp", SeesawPolicy(profile, schedule=shape))
    if method == "goodput-ungated":
        return MethodConfig(detected.replace(policy="goodput-ungated"), None, 1.0, "equivalent", "goodput, no gate")
    if method == "deba-paper":
        return MethodConfig(published_rule(detected), None, 1.0, "samples", "DEBA, published rule")
    if method == "deba":
        return MethodConfig(detected, None, 1.0, "equivalent", "DEBA v2")
    if method == "deba-uniform":
        generic = load_profile("generic").starting_at(b0)
        return MethodConfig(generic, None, 1.0, "equivalent", "DEBA v2, generic profile")
    raise DebaConfigError.single("method", method, "is not a study method or sweep cell")
