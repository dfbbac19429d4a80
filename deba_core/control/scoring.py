"""The scoring-strategy contract: metrics in, a stability score in [0, 1] out."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile

__all__ = ["ScoringStrategy", "instability", "instabilities", "check_metrics"]


def check_extension_args(obj: Any, kind: str, profile: Any, options: dict[str, Any]) -> ArchitectureProfile:
    """The base-class constructor check of strategies and policies: a profile, no unknown options."""
    if not isinstance(profile, ArchitectureProfile):
        raise DebaConfigError.single("profile", type(profile).__name__, "must be a deba.ArchitectureProfile")
    if options:
        raise DebaConfigError.single(
            "options", sorted(options), f"are not options of {kind} {getattr(obj, 'name', '') or type(obj).__name__!r}"
        )
    return profile


def instability(value: float, tau: float) -> float:
    """Map a metric to [0, 1]: ``u = m / (m + tau)``; a non-finite metric is fully unstable."""
    if not math.isfinite(value):
        return 1.0
    m = max(float(value), 0.0)
    return m / (m + tau)


def check_metrics(metrics: Any) -> Mapping[str, float]:
    """Validate a metrics mapping (str -> real number)."""
    if not isinstance(metrics, Mapping):
        raise DebaConfigError.single("metrics", type(metrics).__name__, "must be a mapping of metric name to float")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise DebaConfigError.single("metrics", key, "keys must be metric names (str)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DebaConfigError.single(f"metrics.{key}", value, "must be a real number")
    return metrics


def instabilities(metrics: Mapping[str, float], profile: ArchitectureProfile) -> dict[str, float]:
    """Instability of each metric the profile does not switch off (weight 0 switches one off)."""
    return {
        name: instability(value, profile.tau_for(name))
        for name, value in metrics.items()
        if profile.weights.get(name, 1.0) > 0.0
    }


class ScoringStrategy(ABC):
    """Folds metric values into one stability score (1 = stable, 0 = unstable).

    Strategies are pure: floats in, a float in [0, 1] out, deterministic, no torch. A strategy that
    learns (``learned``) keeps its learning in :meth:`update` and exposes it through
    :meth:`state_dict`. Subclasses take their own keyword options and pass the rest up, so an
    unknown option is an error naming it.

    Args:
        profile: the architecture profile (thresholds, scales ``tau``, weights, rules).

    Example:
        >>> import deba
        >>> class Calm(deba.ScoringStrategy):
        ...     name = "calm"
        ...     def score(self, metrics):
        ...         return 1.0
        >>> Calm(deba.load_profile("generic")).score({"loss_variation": 0.3})
        1.0
    """

    name: ClassVar[str] = ""

    def __init__(self, profile: ArchitectureProfile, **options: Any) -> None:
        self.profile = check_extension_args(self, "strategy", profile, options)

    @abstractmethod
    def score(self, metrics: Mapping[str, float]) -> float:
        """Stability in [0, 1] from metrics keyed by collector name (missing metrics are fine)."""

    # Optional hooks (no-ops by default) ---------------------------------------------------------

    def update(self, metrics: Mapping[str, float], loss: float) -> None:
        """Called once per decision interval with the current metrics and the interval's mean loss."""

    @property
    def calibrating(self) -> bool:
        """While ``True`` the scheduler holds the batch fixed (the strategy is still profiling)."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """JSON-able learned state (empty for stateless strategies)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if not isinstance(state, dict):
            raise DebaConfigError.single("strategy state", type(state).__name__, "must be a dict")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(profile={self.profile.name!r})"
