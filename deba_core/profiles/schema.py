"""Architecture profiles: every knob of DEBA, validated.

A profile says how one family of networks should have its batch adapted: the batch bounds and
grid, how far one change may move it, the score thresholds that trigger a change, how often a
decision is made (every N optimizer steps or once per epoch), the sliding window, cooldown and
warm-up (all counted in decision intervals), the per-metric scales ``tau`` that make instabilities
comparable, metric weights, the learning-rate coupling and the rules of the rule-based strategy.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from deba.errors import DebaConfigError
from deba.profiles.lr_rule import lr_factor
from deba.profiles.validation import CrossFieldError, StrictModel

__all__ = [
    "ArchitectureProfile",
    "CalibrationSettings",
    "DEFAULT_METRICS",
    "FAMILIES",
    "PUBLISHED_METRICS",
    "Rule",
    "RunShares",
]

#: DEBA v2's stability signals (docs/design.md, "Signals"): unsteadiness relative to the run's
#: own warm-up, so 1 means "as at the start" for every model. One scale ``tau`` = 1 for both.
DEFAULT_METRICS: tuple[str, ...] = ("grad_norm_deviation", "loss_deviation")
#: The published method's three signals (v1's collectors; the ``paper`` profile weighs these).
PUBLISHED_METRICS: tuple[str, ...] = ("grad_variance", "grad_norm_variation", "loss_variation")

FAMILIES: tuple[str, ...] = (
    "resnet",
    "densenet",
    "efficientnet",
    "mobilenet",
    "vit",
    "transformer",
    "cnn",
    "mlp",
    "generic",
)

Verdict = Literal["grow", "hold", "shrink"]
PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]
MetricName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Rule(StrictModel):
    """One rule of the ``rule-based`` strategy: ``if metric <op> threshold: verdict``.

    Example:
        >>> Rule(metric="loss_variation", op=">", threshold=0.2, verdict="shrink").matches(0.3)
        True
    """

    metric: MetricName
    op: Literal["<", "<=", ">", ">="]
    threshold: float
    verdict: Verdict

    def matches(self, value: float) -> bool:
        """Whether ``value`` satisfies this rule's comparison."""
        if self.op == "<":
            return value < self.threshold
        if self.op == "<=":
            return value <= self.threshold
        if self.op == ">":
            return value > self.threshold
        return value >= self.threshold


class CalibrationSettings(StrictModel):
    """How the ``learned`` strategy profiles a run at fixed batch before it adapts.

    Counts are in decision intervals. An interval's outcome is *bad* when, within ``horizon``
    intervals, the loss rises above ``(1 + spike_tolerance)`` times its value (a spike) or falls by
    less than ``stall_tolerance`` of it (a stall).
    """

    intervals: Annotated[int, Field(ge=4)] = 40
    horizon: PosInt = 5
    spike_tolerance: Annotated[float, Field(gt=0.0)] = 0.1
    stall_tolerance: Annotated[float, Field(ge=0.0)] = 0.002
    min_events: PosInt = 3
    learned: bool = False

    @model_validator(mode="after")
    def _check(self) -> "CalibrationSettings":
        if self.horizon >= self.intervals:
            raise CrossFieldError([(("horizon",), self.horizon, f"must be < intervals ({self.intervals})")])
        return self


def _default_weights() -> dict[str, float]:
    return {m: 1.0 for m in DEFAULT_METRICS}


def _default_tau() -> dict[str, float]:
    # The one tau set (docs/profiles.md, "Scales"): the v2 signals are ratios to the run's own
    # warm-up, so one scale fits every model; a metric not named here also gets 1.
    return {m: 1.0 for m in DEFAULT_METRICS}


def _default_rules() -> list[Rule]:
    # On the v2 scale: 1 = as unsteady as at the start of the run.
    return [
        Rule(metric="loss_deviation", op=">", threshold=3.0, verdict="shrink"),
        Rule(metric="grad_norm_deviation", op=">", threshold=3.0, verdict="shrink"),
        Rule(metric="loss_deviation", op="<", threshold=1.5, verdict="grow"),
    ]


class RunShares(StrictModel):
    """Timing as shares of the run (docs/design.md, "Timing as shares of the run").

    Used when the budget is known (``deba.fit`` with ``epochs`` or ``max_samples``, ``DebaTrainer``):
    no decision during the first ``warmup`` of the budget, one decision every ``interval`` of it, no
    further change for ``cooldown`` of it after a change, and no growth in the last ``freeze`` of it
    (shrinks and safety rollbacks stay allowed). With an unknown budget the profile's counts
    (``interval`` steps, ``warmup``/``cooldown`` intervals) apply instead.

    Example:
        >>> RunShares(warmup=0.05, interval=0.01, cooldown=0.03, freeze=0.1).interval
        0.01
    """

    warmup: Annotated[float, Field(ge=0.0, le=0.5)] = 0.05
    interval: Annotated[float, Field(gt=0.0, le=0.25)] = 0.01
    cooldown: Annotated[float, Field(ge=0.0, le=0.5)] = 0.03
    freeze: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1

    @model_validator(mode="after")
    def _check(self) -> "RunShares":
        if self.warmup + self.freeze >= 1.0:
            raise CrossFieldError([(("freeze",), self.freeze, f"must leave room after warmup ({self.warmup}): sum < 1")])
        return self


class ArchitectureProfile(StrictModel):
    """Every knob DEBA uses for one architecture, validated and frozen.

    Batch sizes are global (all micro-batches and ranks together). ``window``, ``cooldown`` and
    ``warmup`` count decision intervals: ``interval`` optimizer steps each, or epochs when
    ``interval == "epoch"``. One change moves the batch to ``batch * growth_factor`` or
    ``batch / shrink_factor``, rounded outward to the ``granularity`` grid and by at least one grid
    step. ``lr_scaling`` couples the learning rate to ``batch / initial_batch``.

    Example:
        >>> import deba
        >>> p = deba.ArchitectureProfile(name="mine", family="cnn", min_batch=16, max_batch=2048,
        ...     initial_batch=128, growth_factor=1.5, shrink_factor=1.25, increase_above=0.7,
        ...     decrease_below=0.4, interval="epoch", window=15, cooldown=5)
        >>> p.cooldown, p.interval
        (5, 'epoch')
        >>> p.replace(growth_factor=2.0).growth_factor
        2.0
    """

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    family: Literal[FAMILIES]  # type: ignore[valid-type]
    description: str = ""

    min_batch: PosInt
    max_batch: PosInt
    initial_batch: PosInt
    granularity: PosInt = 1
    max_micro_batch: PosInt | None = None

    growth_factor: Annotated[float, Field(gt=1.0, le=16.0)]
    shrink_factor: Annotated[float, Field(gt=1.0, le=16.0)]
    increase_above: UnitFloat
    decrease_below: UnitFloat

    interval: Union[PosInt, Literal["epoch"]] = 1
    window: Annotated[int, Field(ge=2, le=100_000)]
    min_samples: Annotated[int, Field(ge=2)] | None = None
    cooldown: NonNegInt = 0
    warmup: NonNegInt = 0
    shares: RunShares | None = None

    weights: dict[MetricName, Annotated[float, Field(ge=0.0)]] = Field(default_factory=_default_weights)
    tau: dict[MetricName, Annotated[float, Field(gt=0.0)]] = Field(default_factory=_default_tau)
    lr_scaling: Literal["auto", "none", "linear", "sqrt", "adascale"] = "auto"
    policy: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = "goodput"
    min_gain: Annotated[float, Field(ge=0.0, le=10.0)] = 0.05
    # goodput only. The user's starting batch is one they know trains; early training's falling loss
    # and gradient norms read as "unstable", and in the v2 study every shrink below B0 cost accuracy
    # or time (docs/benchmarks.md). Non-finite steps still shrink below it (nonfinite_patience).
    shrink_below_start: Annotated[bool, Field(strict=True)] = False

    rules: list[Rule] = Field(default_factory=_default_rules)
    rules_default: Verdict = "hold"
    nonfinite_patience: PosInt = 3
    sketch_size: Annotated[int, Field(ge=8, le=1_000_000)] = 512
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        # One clear error instead of one per member of the union.
        if value == "epoch" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("must be a positive int (optimizer steps per decision) or 'epoch'")

    @model_validator(mode="after")
    def _cross_field(self) -> "ArchitectureProfile":
        problems: list[tuple[tuple[Any, ...], Any, str]] = []
        if self.min_batch > self.max_batch:
            problems.append((("min_batch",), self.min_batch, f"must be <= max_batch ({self.max_batch})"))
        if not self.min_batch <= self.initial_batch <= self.max_batch:
            problems.append(
                (
                    ("initial_batch",),
                    self.initial_batch,
                    f"must lie in [min_batch, max_batch] = [{self.min_batch}, {self.max_batch}]",
                )
            )
        g = self.granularity
        for field in ("min_batch", "initial_batch", "max_batch"):
            value = getattr(self, field)
            if value % g:
                problems.append(((field,), value, f"must be a multiple of granularity ({g})"))
        if self.decrease_below >= self.increase_above:
            problems.append(
                (
                    ("decrease_below",),
                    self.decrease_below,
                    f"must be < increase_above ({self.increase_above})",
                )
            )
        if not self.weights:
            problems.append((("weights",), self.weights, "must name at least one metric"))
        elif not math.fsum(self.weights.values()) > 0:
            problems.append((("weights",), self.weights, "must have a positive sum"))
        if self.min_samples is not None and self.min_samples > self.window:
            problems.append((("min_samples",), self.min_samples, f"must be <= window ({self.window})"))
        if problems:
            raise CrossFieldError(problems)
        return self

    # Derived values -------------------------------------------------------------------------

    @property
    def required_samples(self) -> int:
        """Observations (intervals) a window must hold before a decision: ``min_samples or window``."""
        return self.min_samples if self.min_samples is not None else self.window

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this profile weighs, in the order of ``weights``."""
        return tuple(self.weights)

    @property
    def cooldown_steps(self) -> int | None:
        """Cooldown in optimizer steps, or ``None`` when decisions are per epoch."""
        return None if self.interval == "epoch" else self.cooldown * int(self.interval)

    @property
    def warmup_steps(self) -> int | None:
        """Warm-up in optimizer steps, or ``None`` when decisions are per epoch."""
        return None if self.interval == "epoch" else self.warmup * int(self.interval)

    def tau_for(self, metric: str) -> float:
        """Scale of ``metric``; metrics the profile does not know get scale 1."""
        return self.tau.get(metric, 1.0)

    def lr_factor(self, batch_size: int, reference: int | None = None, family: str | None = None,
                  noise_scale: float | None = None) -> float:
        """Learning-rate multiplier for ``batch_size`` relative to ``reference`` (default
        ``initial_batch``), by ``lr_scaling`` (rule 7; ``deba.profiles.lr_rule`` has the rules:
        ``auto`` and ``adascale`` need the optimizer family and the noise scale)."""
        return lr_factor(self.lr_scaling, batch_size, reference or self.initial_batch, family, noise_scale)

    def starting_at(self, batch: int, field: str = "batch_size") -> "ArchitectureProfile":
        """This profile with ``batch`` (the user's) as the starting batch ``B0``.

        The user's LR belongs to their batch, so it is DEBA's reference; ``initial_batch`` only
        applies when the user gives none. Bounds are kept, or widened to include ``batch`` with a
        warning; a batch off the grid narrows the grid to ``gcd(granularity, batch)`` (warned).

        Example:
            >>> import deba
            >>> p = deba.load_profile("mlp").starting_at(64)
            >>> p.initial_batch, p.min_batch, p.granularity
            (64, 16, 8)
        """
        import warnings

        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise DebaConfigError.single(field, batch, "must be an int >= 1")
        changes: dict[str, Any] = {"initial_batch": batch}
        notes = []
        if batch % self.granularity:
            changes["granularity"] = math.gcd(self.granularity, batch)
            notes.append(f"granularity {self.granularity} -> {changes['granularity']} (the grid holds {batch})")
        if batch < self.min_batch:
            changes["min_batch"] = batch
            notes.append(f"min_batch {self.min_batch} -> {batch}")
        if batch > self.max_batch:
            changes["max_batch"] = batch
            notes.append(f"max_batch {self.max_batch} -> {batch}")
        if notes:
            warnings.warn(f"DEBA: starting batch {field}={batch} lies outside profile {self.name!r}: "
                          + "; ".join(notes), UserWarning, stacklevel=3)
        return self.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data that :meth:`model_validate` accepts back."""
        return self.model_dump(mode="json")

    def to_file(self, path: str | Path) -> Path:
        """Write the profile as YAML, JSON or TOML (by suffix); :func:`deba.load_profile` reads it back."""
        from deba.profiles.formats import write_document

        return write_document(self.to_dict(), path)
