"""``RunOptions``: DEBA's own knobs, validated once, the same for every front end.

``deba.fit``, ``DebaController``, ``DebaTrainer`` and ``DebaCallback`` each take their framework's
arguments (model, data, epochs...) and DEBA's: which profile, strategy and policy, a fixed
throughput table, what the budget counts, the memory cap, the start-up probe and the non-finite
abort. Those are one object, so a run configured once behaves the same through any front end,
and each field is checked by one validator (the front ends' own argument names are given to it
for the error text).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from deba.errors import DebaConfigError

__all__ = ["BUDGET_KINDS", "RunOptions", "check_budget_kind", "check_optional_bool", "check_positive_int",
           "merge_options"]

#: What a budget can count (docs/training.md, "budget").
BUDGET_KINDS = ("auto", "equivalent", "samples")


def check_budget_kind(value: Any, field: str = "budget") -> None:
    """``value`` must be one of :data:`BUDGET_KINDS`."""
    if not isinstance(value, str) or value not in BUDGET_KINDS:
        raise DebaConfigError.single(field, value, "must be 'auto', 'equivalent' or 'samples'")


def check_positive_int(value: Any, field: str) -> None:
    """``value`` must be an int >= 1 or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise DebaConfigError.single(field, value, "must be an int >= 1 or None")


def check_optional_bool(value: Any, field: str) -> None:
    """``value`` must be ``True``, ``False`` or ``None``."""
    if value is not None and not isinstance(value, bool):
        raise DebaConfigError.single(field, value, "must be True, False or None")


@dataclass(frozen=True)
class RunOptions:
    """DEBA's settings for one run, accepted by every front end (``options=`` / ``deba_options=``).

    Attributes:
        profile: an :class:`deba.ArchitectureProfile`, a built-in name, a file, or ``"auto"``
            (detected from the model).
        strategy: a scoring strategy instance or registered name; ``strategy_options`` its
            keyword options when given by name.
        policy: the batch policy (default: the profile's).
        throughput: a fixed table ``{batch: samples/s}`` instead of measuring (decisions then
            depend on the observations only).
        budget: ``"equivalent"`` (starting-batch-equivalent samples), ``"samples"``, or ``"auto"``
            (equivalent for policies that read the noise scale).
        max_micro_batch: samples per forward/backward (default: the profile's cap).
        probe_throughput: time a few sizes before the first step (default: when the policy reads
            throughput, no table is given and the batch is not fixed).
        nonfinite_abort: non-finite steps in a row that stop training (default
            ``3 * profile.nonfinite_patience``).

    Example:
        >>> import deba
        >>> opts = deba.RunOptions(profile="mlp", budget="samples", max_micro_batch=64)
        >>> opts.budget, opts.replace(budget="equivalent").budget
        ('samples', 'equivalent')
        >>> deba.RunOptions(budget="steps")
        Traceback (most recent call last):
        ...
        deba.errors.DebaConfigError: `budget` must be 'auto', 'equivalent' or 'samples', but got budget='steps'
    """

    profile: Any = "auto"
    strategy: Any = "equal-weight"
    strategy_options: dict[str, Any] | None = None
    policy: Any = None
    throughput: Any = None
    budget: str = "auto"
    max_micro_batch: int | None = None
    probe_throughput: bool | None = None
    nonfinite_abort: int | None = None

    def __post_init__(self) -> None:
        check_budget_kind(self.budget)
        check_positive_int(self.max_micro_batch, "max_micro_batch")
        check_positive_int(self.nonfinite_abort, "nonfinite_abort")
        check_optional_bool(self.probe_throughput, "probe_throughput")
        if self.strategy_options is not None and not isinstance(self.strategy_options, dict):
            raise DebaConfigError.single("strategy_options", self.strategy_options, "must be a dict or None")

    def replace(self, **changes: Any) -> "RunOptions":
        """A copy with ``changes`` (validated again)."""
        return RunOptions(**{**asdict_shallow(self), **changes})


def asdict_shallow(options: RunOptions) -> dict[str, Any]:
    """The fields of ``options`` by name, values as they are (profiles and tables are not copied)."""
    return {f.name: getattr(options, f.name) for f in fields(options)}


def merge_options(options: RunOptions | None, given: dict[str, Any], prefix: str = "") -> RunOptions:
    """One :class:`RunOptions` from a front end's ``options`` object and its own keywords.

    ``given`` holds the keywords the caller set (by :class:`RunOptions` field name); with an
    ``options`` object, any keyword that differs from its default is a conflict (``prefix`` is the
    front end's keyword prefix, e.g. ``"deba_"``, for the error text).

    Example:
        >>> merge_options(None, {"budget": "samples"}).budget
        'samples'
        >>> merge_options(RunOptions(budget="samples"), {"budget": "auto"}).budget
        'samples'
    """
    if options is None:
        return RunOptions(**given)
    if not isinstance(options, RunOptions):
        raise DebaConfigError.single(f"{prefix}options", type(options).__name__, "must be a deba.RunOptions or None")
    defaults = {f.name: f.default for f in fields(RunOptions)}
    clash = sorted(k for k, v in given.items() if v is not defaults[k] and v != defaults[k])
    if clash:
        raise DebaConfigError.single(f"{prefix}{clash[0]}", given[clash[0]], f"cannot be given beside {prefix}options",
                                     remedy=f"Set it in the RunOptions object ({prefix}options.replace({clash[0]}=...)).")
    return options
