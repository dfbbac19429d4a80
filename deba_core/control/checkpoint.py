"""The scheduler's saved state document: its version, and whether a saved one fits a scheduler."""

from __future__ import annotations

from typing import Any, Sequence

from deba.control.policy import StabilityPolicy
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile

__all__ = ["STATE_VERSION", "check_compatible"]

#: Version of the ``BatchScheduler.state_dict()`` document.
STATE_VERSION = 1


def check_compatible(state: Any, profile: ArchitectureProfile, strategy: str, policy: str,
                     collectors: Sequence[str]) -> None:
    """Refuse a saved ``state`` that a scheduler with these parts cannot continue from.

    Args:
        state: a ``BatchScheduler.state_dict()`` document.
        profile: the scheduler's profile (the saved one must equal it).
        strategy: the scheduler's strategy name.
        policy: the scheduler's policy name (a state saved before policies existed had ``"stability"``).
        collectors: the scheduler's collector names.

    Raises:
        DebaConfigError: naming the first field of ``state`` that does not fit.

    Example:
        >>> import deba
        >>> check_compatible({"version": 0}, deba.load_profile("generic"), "equal-weight", "goodput", [])
        Traceback (most recent call last):
        ...
        deba.errors.DebaConfigError: `state.version` must be 1 (a BatchScheduler.state_dict()), but got version=0
    """
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise DebaConfigError.single(
            "state.version", state.get("version") if isinstance(state, dict) else type(state).__name__,
            f"must be {STATE_VERSION} (a BatchScheduler.state_dict())",
        )
    saved_profile = state.get("profile")
    if saved_profile != profile.to_dict():
        name = saved_profile.get("name") if isinstance(saved_profile, dict) else saved_profile
        raise DebaConfigError.single(
            "state.profile", name, f"must equal this scheduler's profile ({profile.name!r}) to resume",
            remedy="Build the scheduler with the profile the state was saved with.",
        )
    _check_parts(state, strategy, policy, collectors)


def _check_parts(state: dict[str, Any], strategy: str, policy: str, collectors: Sequence[str]) -> None:
    """The saved strategy, policy and collector names against the scheduler's."""
    saved_names = {"strategy": (state.get("strategy") or {}).get("name"),
                   "policy": (state.get("policy") or {"name": StabilityPolicy.name}).get("name")}
    for part, mine in (("strategy", strategy), ("policy", policy)):
        saved = saved_names[part]
        if saved != mine:
            raise DebaConfigError.single(f"state.{part}.name", saved, f"must equal this scheduler's {part} ({mine!r})")
    saved_collectors = state.get("collectors") or {}
    if sorted(saved_collectors) != sorted(collectors):
        raise DebaConfigError.single("state.collectors", sorted(saved_collectors), f"must be {sorted(collectors)}")
