"""The scheduler's parts from what the user gave: instances, or names resolved through the registry.

Each function checks its argument against the scheduler's profile and raises
:class:`~deba.errors.DebaConfigError` naming the argument when it does not fit.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from deba.control.goodput import GoodputPolicy
from deba.control.policy import BatchPolicy, StabilityPolicy
from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.registry import registry
from deba.signals.collectors.base import MetricCollector

__all__ = ["resolve_collectors", "resolve_initial_batch", "resolve_policy", "resolve_strategy"]


def resolve_initial_batch(profile: ArchitectureProfile, initial_batch: int | None) -> int:
    """The starting batch: ``initial_batch`` within the profile's bounds, or the profile's own.

    Example:
        >>> import deba
        >>> resolve_initial_batch(deba.load_profile("generic"), None)
        32
    """
    if initial_batch is None:
        return profile.initial_batch
    p = profile
    if isinstance(initial_batch, bool) or not isinstance(initial_batch, int) or not p.min_batch <= initial_batch <= p.max_batch:
        raise DebaConfigError.single(
            "initial_batch", initial_batch, f"must be an int within the profile's bounds [{p.min_batch}, {p.max_batch}]"
        )
    return initial_batch


def resolve_strategy(profile: ArchitectureProfile, strategy: ScoringStrategy | str,
                     options: dict[str, Any]) -> ScoringStrategy:
    """A strategy instance built for ``profile``, or one built by registered name with ``options``."""
    if isinstance(strategy, ScoringStrategy):
        if options:
            raise DebaConfigError.single("strategy_options", options, "only apply to a strategy given by name")
        if strategy.profile != profile:
            raise DebaConfigError.single(
                "strategy.profile", strategy.profile.name, f"must be the scheduler's profile ({profile.name!r})"
            )
        return strategy
    if not isinstance(strategy, str):
        raise DebaConfigError.single("strategy", strategy, "must be a ScoringStrategy instance or a registered name")
    return registry.create("strategies", strategy, expected=ScoringStrategy, profile=profile, **options)


def resolve_policy(profile: ArchitectureProfile, policy: BatchPolicy | str | None) -> BatchPolicy:
    """A policy instance built for ``profile``, a built-in or registered name, or ``profile.policy``."""
    if policy is None:
        policy = profile.policy
    if isinstance(policy, BatchPolicy):
        if policy.profile != profile:
            raise DebaConfigError.single(
                "policy.profile", policy.profile.name, f"must be the scheduler's profile ({profile.name!r})"
            )
        return policy
    if policy == StabilityPolicy.name:
        return StabilityPolicy(profile)
    if policy == GoodputPolicy.name:
        return GoodputPolicy(profile)
    if not isinstance(policy, str):
        raise DebaConfigError.single("policy", policy, "must be a BatchPolicy instance or a registered name")
    return registry.create("policies", policy, expected=BatchPolicy, profile=profile)


def resolve_collectors(profile: ArchitectureProfile,
                       collectors: Sequence[MetricCollector | str] | None) -> list[MetricCollector]:
    """Collector instances, or names built with the profile's window; one per ``profile.metrics`` by default."""
    names: Iterable[MetricCollector | str] = profile.metrics if collectors is None else collectors
    if isinstance(names, (str, MetricCollector)):
        raise DebaConfigError.single("collectors", names, "must be a sequence of collectors or names")
    built: list[MetricCollector] = []
    for item in names:
        if isinstance(item, MetricCollector):
            built.append(item)
        elif isinstance(item, str):
            built.append(registry.create("collectors", item, expected=MetricCollector, window=profile.window,
                                         min_samples=profile.required_samples))
        else:
            raise DebaConfigError.single("collectors", item, "entries must be MetricCollector instances or names")
    _check_collector_names(built)
    return built


def _check_collector_names(built: list[MetricCollector]) -> None:
    seen: set[str] = set()
    for c in built:
        if not c.name:
            raise DebaConfigError.single("collectors", type(c).__name__, "must set a non-empty class attribute `name`")
        if c.name in seen:
            raise DebaConfigError.single("collectors", c.name, "appears twice; collector names must be unique")
        seen.add(c.name)
    if not built:
        raise DebaConfigError.single("collectors", [], "must hold at least one collector")
