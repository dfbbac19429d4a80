"""The batch-size controller.

One call per optimizer step: ``decision = sched.observe(obs)``. Observations are aggregated per
decision interval (``profile.interval`` steps, or an epoch closed by :meth:`BatchScheduler.end_epoch`);
at each interval's end the aggregate feeds the collectors, the strategy scores their values, and
the score moves the batch by the profile's rules:

* ``score >= increase_above`` grows to ``ceil_grid(batch * growth_factor)`` (at least one grid
  step, at most ``max_batch``); ``score < decrease_below`` shrinks to
  ``floor_grid(batch / shrink_factor)`` (at least one grid step, at least ``min_batch``);
* nothing changes during ``warmup`` intervals, while the windows hold fewer than
  ``required_samples`` observations, during ``cooldown`` intervals after a change, or while the
  strategy is calibrating; after a change the windows restart;
* a non-finite step never enters a window, an interval holding one never grows, and
  ``nonfinite_patience`` consecutive non-finite steps shrink the batch (outside warm-up and
  cooldown).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

from .collectors.base import MetricCollector
from .decision import Decision
from .errors import DebaConfigError
from .interval import IntervalAccumulator
from .observation import Observation
from .profile import ArchitectureProfile
from .profile_io import load_profile
from .registry import registry
from .scoring import ScoringStrategy

__all__ = ["BatchScheduler", "next_batch_size"]

_STATE_VERSION = 1
_EPS = 1e-9


def next_batch_size(profile: ArchitectureProfile, batch: int, score: float) -> tuple[int, str]:
    """The batch the score asks for from ``batch`` and the action (``grow``/``shrink``/``hold``).

    Monotone in ``score`` (rule 4) and bounded by the growth and shrink factors, rounded outward to
    the grid, with a move of at least one grid step (rule 5).
    """
    g = profile.granularity
    if score >= profile.increase_above and batch < profile.max_batch:
        target = math.ceil(batch * profile.growth_factor / g - _EPS) * g
        return min(profile.max_batch, max(target, batch + g)), "grow"
    if score < profile.decrease_below and batch > profile.min_batch:
        target = math.floor(batch / profile.shrink_factor / g + _EPS) * g
        return max(profile.min_batch, min(target, batch - g)), "shrink"
    return batch, "hold"


def _shrink_target(profile: ArchitectureProfile, batch: int) -> int:
    return next_batch_size(profile, batch, -1.0)[0]


class BatchScheduler:
    """Decides the global batch size from what training looks like (DESIGN.md, rules 1-7).

    Args:
        profile: an :class:`ArchitectureProfile`, a profile name, or a path to a profile file.
        strategy: a :class:`ScoringStrategy` instance or a registered name (``"equal-weight"``,
            ``"learned"``, ``"rule-based"`` or a plugin's).
        collectors: collector instances or registered names; by default one per metric in
            ``profile.weights``, built with the profile's window.
        strategy_options: keyword options for a strategy given by name.

    Example:
        >>> import deba
        >>> sched = deba.BatchScheduler("generic", strategy="equal-weight")
        >>> sched.batch_size
        32
        >>> d = sched.observe(deba.Observation(loss=1.0, batch_size=32, grad_norm=1.0))
        >>> d.changed, d.reason
        (False, 'collecting 1/10 steps of the interval')
    """

    def __init__(
        self,
        profile: ArchitectureProfile | str = "generic",
        strategy: ScoringStrategy | str = "equal-weight",
        collectors: Sequence[MetricCollector | str] | None = None,
        *,
        strategy_options: dict[str, Any] | None = None,
    ) -> None:
        self.profile = load_profile(profile)
        self.strategy = self._build_strategy(strategy, strategy_options or {})
        self.collectors = self._build_collectors(collectors)
        self._acc = IntervalAccumulator()
        self._reset_state()

    # Construction -------------------------------------------------------------------------------

    def _build_strategy(self, strategy: ScoringStrategy | str, options: dict[str, Any]) -> ScoringStrategy:
        if isinstance(strategy, ScoringStrategy):
            if options:
                raise DebaConfigError.single("strategy_options", options, "only apply to a strategy given by name")
            if strategy.profile != self.profile:
                raise DebaConfigError.single(
                    "strategy.profile", strategy.profile.name, f"must be the scheduler's profile ({self.profile.name!r})"
                )
            return strategy
        if not isinstance(strategy, str):
            raise DebaConfigError.single("strategy", strategy, "must be a ScoringStrategy instance or a registered name")
        return registry.create("strategies", strategy, profile=self.profile, **options)

    def _build_collectors(self, collectors: Sequence[MetricCollector | str] | None) -> list[MetricCollector]:
        names: Iterable[MetricCollector | str] = self.profile.metrics if collectors is None else collectors
        if isinstance(names, (str, MetricCollector)):
            raise DebaConfigError.single("collectors", names, "must be a sequence of collectors or names")
        built: list[MetricCollector] = []
        for item in names:
            if isinstance(item, MetricCollector):
                built.append(item)
            elif isinstance(item, str):
                built.append(
                    registry.create(
                        "collectors", item, window=self.profile.window, min_samples=self.profile.required_samples
                    )
                )
            else:
                raise DebaConfigError.single("collectors", item, "entries must be MetricCollector instances or names")
        seen: dict[str, MetricCollector] = {}
        for c in built:
            if not c.name:
                raise DebaConfigError.single("collectors", type(c).__name__, "must set a non-empty class attribute `name`")
            if c.name in seen:
                raise DebaConfigError.single("collectors", c.name, "appears twice; collector names must be unique")
            seen[c.name] = c
        if not built:
            raise DebaConfigError.single("collectors", [], "must hold at least one collector")
        return built

    def _reset_state(self) -> None:
        self.batch_size = self.profile.initial_batch
        self.step = 0
        self.intervals = 0
        self.window_count = 0
        self.intervals_since_change: int | None = None
        self.changes = 0
        self.nonfinite_total = 0
        self.nonfinite_consecutive = 0
        self.interval_nonfinite = 0
        self._acc.clear()
        self.last_decision: Decision | None = None

    # Queries ------------------------------------------------------------------------------------

    @property
    def lr_factor(self) -> float:
        """Multiplier of the base learning rate for the current batch (rule 7)."""
        return self.profile.lr_factor(self.batch_size)

    @property
    def in_cooldown(self) -> bool:
        """Whether a change is forbidden because the last one was too recent."""
        return self.intervals_since_change is not None and self.intervals_since_change <= self.profile.cooldown

    @property
    def in_warmup(self) -> bool:
        """Whether fewer than ``warmup`` intervals have completed."""
        return self.intervals < self.profile.warmup

    def metrics(self) -> dict[str, float]:
        """Current value of every collector that has one."""
        out: dict[str, float] = {}
        for c in self.collectors:
            v = c.value()
            if v is not None:
                out[c.name] = float(v)
        return out

    # Feeding ------------------------------------------------------------------------------------

    def observe(self, obs: Observation) -> Decision:
        """Feed one optimizer step; returns the decision in force for the next step."""
        if not isinstance(obs, Observation):
            raise DebaConfigError.single("obs", type(obs).__name__, "must be a deba.Observation")
        self.step += 1
        self._acc.steps += 1
        emergency: Decision | None = None
        if obs.is_finite:
            self.nonfinite_consecutive = 0
            self._acc.add(obs)
        else:
            self.nonfinite_total += 1
            self.nonfinite_consecutive += 1
            self.interval_nonfinite += 1
            emergency = self._nonfinite_decision()
            if emergency is not None and emergency.changed:
                return emergency
        if self.profile.interval != "epoch" and self._acc.steps >= int(self.profile.interval):
            closed = self._close_interval()
            if emergency is not None and not closed.changed:
                closed = dataclasses.replace(closed, reason=f"{emergency.reason}; {closed.reason}")
                self.last_decision = closed
            return closed
        if emergency is not None:
            return emergency
        if self.profile.interval == "epoch":
            why = "collecting until the epoch ends"
        else:
            why = f"collecting {self._acc.steps}/{self.profile.interval} steps of the interval"
        return self._hold(why, score=None, decided=False)

    def end_epoch(self) -> Decision:
        """Close the epoch. With ``interval="epoch"`` this is when decisions happen."""
        if self.profile.interval != "epoch":
            return self._hold("epoch end (decisions are every N steps)", score=None, decided=False)
        return self._close_interval()

    # Internals ----------------------------------------------------------------------------------

    def _hold(self, reason: str, score: float | None, decided: bool, metrics: dict[str, float] | None = None) -> Decision:
        d = Decision(
            batch_size=self.batch_size,
            previous_batch_size=self.batch_size,
            changed=False,
            action="hold",
            score=score,
            reason=reason,
            lr_factor=self.lr_factor,
            step=self.step,
            interval=self.intervals,
            decided=decided,
            metrics=metrics or {},
        )
        self.last_decision = d
        return d

    def _apply(self, target: int, action: str, score: float | None, reason: str, metrics: dict[str, float]) -> Decision:
        previous = self.batch_size
        self.batch_size = target
        self.changes += 1
        self.intervals_since_change = 0
        # Rule 2: metrics measured at one batch size are not mixed with another's.
        for c in self.collectors:
            c.reset()
        self.window_count = 0
        self._acc.clear()
        self.interval_nonfinite = 0
        d = Decision(
            batch_size=target,
            previous_batch_size=previous,
            changed=True,
            action=action,  # type: ignore[arg-type]
            score=score,
            reason=reason,
            lr_factor=self.lr_factor,
            step=self.step,
            interval=self.intervals,
            decided=True,
            metrics=metrics,
        )
        self.last_decision = d
        return d

    def _blocked(self) -> str | None:
        if self.in_warmup:
            return f"warmup {self.intervals}/{self.profile.warmup} intervals"
        if self.in_cooldown:
            return f"cooldown {self.intervals_since_change}/{self.profile.cooldown} intervals after a change"
        return None

    def _nonfinite_decision(self) -> Decision | None:
        k = self.profile.nonfinite_patience
        why = f"non-finite loss or gradient at step {self.step} ({self.nonfinite_consecutive} in a row)"
        if self.nonfinite_consecutive % k != 0:
            return self._hold(why + "; skipped", score=None, decided=False)
        blocked = self._blocked()
        if blocked is not None or self.batch_size <= self.profile.min_batch:
            return self._hold(why + f"; cannot shrink ({blocked or 'at min_batch'})", score=None, decided=True)
        return self._apply(_shrink_target(self.profile, self.batch_size), "shrink", None, why + "; shrinking", {})

    def _close_interval(self) -> Decision:
        agg = self._acc.result()
        had_nonfinite = self.interval_nonfinite > 0
        self._acc.clear()
        self.interval_nonfinite = 0
        self.intervals += 1
        if self.intervals_since_change is not None:
            self.intervals_since_change += 1
        if agg is not None:
            for c in self.collectors:
                c.update(agg)
            self.window_count += 1
        metrics = self.metrics()
        if agg is not None and metrics:
            self.strategy.update(metrics, agg.loss)
        score = self._score(metrics) if metrics else None

        blocked = self._blocked()
        if blocked is not None:
            return self._hold(blocked, score, decided=True, metrics=metrics)
        if self.window_count < self.profile.required_samples or score is None:
            return self._hold(
                f"filling window {self.window_count}/{self.profile.required_samples}", score, decided=True, metrics=metrics
            )
        if self.strategy.calibrating:
            return self._hold(f"calibrating ({self.strategy.name})", score, decided=True, metrics=metrics)
        target, action = next_batch_size(self.profile, self.batch_size, score)
        if action == "grow" and had_nonfinite:
            return self._hold(f"score {score:.3f} but a step was non-finite: no growth", score, True, metrics)
        if action == "hold":
            return self._hold(
                f"score {score:.3f} within [{self.profile.decrease_below}, {self.profile.increase_above})",
                score,
                decided=True,
                metrics=metrics,
            )
        if action == "grow":
            reason = f"score {score:.3f} >= {self.profile.increase_above}: grow"
        else:
            reason = f"score {score:.3f} < {self.profile.decrease_below}: shrink"
        return self._apply(target, action, score, reason, metrics)

    def _score(self, metrics: dict[str, float]) -> float:
        value = self.strategy.score(metrics)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= float(value) <= 1.0):
            raise DebaConfigError.single(
                f"strategy {self.strategy.name or type(self.strategy).__name__}.score()",
                value,
                "must return a float in [0, 1]",
                remedy="Fix the strategy: scores are 1 for stable, 0 for unstable.",
            )
        return float(value)

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; no model, optimizer or data loader."""
        return {
            "version": _STATE_VERSION,
            "profile": self.profile.to_dict(),
            "strategy": {"name": self.strategy.name, "state": self.strategy.state_dict()},
            "collectors": {c.name: c.state_dict() for c in self.collectors},
            "batch_size": self.batch_size,
            "step": self.step,
            "intervals": self.intervals,
            "window_count": self.window_count,
            "intervals_since_change": self.intervals_since_change,
            "changes": self.changes,
            "nonfinite_total": self.nonfinite_total,
            "nonfinite_consecutive": self.nonfinite_consecutive,
            "interval_nonfinite": self.interval_nonfinite,
            "accumulator": self._acc.state_dict(),
            "last_decision": None if self.last_decision is None else self.last_decision.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from :meth:`state_dict` of a scheduler built with the same profile.

        Raises:
            DebaConfigError: the state is not a DEBA scheduler state, was saved with another
                profile, strategy or set of collectors, or is malformed.
        """
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise DebaConfigError.single(
                "state.version", state.get("version") if isinstance(state, dict) else type(state).__name__,
                f"must be {_STATE_VERSION} (a BatchScheduler.state_dict())",
            )
        saved_profile = state.get("profile")
        if saved_profile != self.profile.to_dict():
            name = saved_profile.get("name") if isinstance(saved_profile, dict) else saved_profile
            raise DebaConfigError.single(
                "state.profile", name, f"must equal this scheduler's profile ({self.profile.name!r}) to resume",
                remedy="Build the scheduler with the profile the state was saved with.",
            )
        strategy = state.get("strategy") or {}
        if strategy.get("name") != self.strategy.name:
            raise DebaConfigError.single(
                "state.strategy.name", strategy.get("name"), f"must equal this scheduler's strategy ({self.strategy.name!r})"
            )
        saved_collectors = state.get("collectors") or {}
        if sorted(saved_collectors) != sorted(c.name for c in self.collectors):
            raise DebaConfigError.single(
                "state.collectors", sorted(saved_collectors), f"must be {sorted(c.name for c in self.collectors)}"
            )
        try:
            batch = int(state["batch_size"])
            if not self.profile.min_batch <= batch <= self.profile.max_batch:
                raise DebaConfigError.single("state.batch_size", batch, "must lie within the profile's bounds")
            self.strategy.load_state_dict(strategy.get("state", {}))
            for c in self.collectors:
                c.load_state_dict(saved_collectors[c.name])
            self.batch_size = batch
            self.step = int(state["step"])
            self.intervals = int(state["intervals"])
            self.window_count = int(state["window_count"])
            isc = state["intervals_since_change"]
            self.intervals_since_change = None if isc is None else int(isc)
            self.changes = int(state["changes"])
            self.nonfinite_total = int(state["nonfinite_total"])
            self.nonfinite_consecutive = int(state["nonfinite_consecutive"])
            self.interval_nonfinite = int(state["interval_nonfinite"])
            self._acc.load_state_dict(state["accumulator"])
            last = state["last_decision"]
            self.last_decision = None if last is None else Decision(**last)
        except DebaConfigError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DebaConfigError.single("state", type(exc).__name__, f"is malformed ({exc})") from exc

    def __repr__(self) -> str:
        return (
            f"BatchScheduler(profile={self.profile.name!r}, strategy={self.strategy.name!r}, "
            f"batch_size={self.batch_size}, step={self.step})"
        )
