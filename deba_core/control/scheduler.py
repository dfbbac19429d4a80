"""The batch-size controller.

One call per optimizer step: ``decision = sched.observe(obs)``. Observations are aggregated per
decision interval (``profile.interval`` steps, or an epoch closed by :meth:`BatchScheduler.end_epoch`);
at each interval's end the aggregate feeds the collectors, the strategy scores their values, and
the score moves the batch by the profile's rules:

* the policy turns the score into a move: the profile's ``policy``, ``goodput`` in every built-in
  profile but ``paper`` (:class:`deba.policies.GoodputPolicy`: the score gates, the noise scale and
  the throughput curve decide how far), or ``stability``, the published rule
  (:class:`deba.policies.StabilityPolicy`: ``score >= increase_above`` grows to
  ``ceil_grid(batch * growth_factor)``, ``score < decrease_below`` shrinks to
  ``floor_grid(batch / shrink_factor)``, at least one grid step);
* nothing changes during ``warmup`` intervals, while the windows hold fewer than
  ``required_samples`` observations, during ``cooldown`` intervals after a change, or while the
  strategy is calibrating; after a change the windows restart;
* a non-finite step never enters a window, an interval holding one never grows, and
  ``nonfinite_patience`` consecutive non-finite steps shrink the batch (outside warm-up and
  cooldown).

When the run's budget is known (:meth:`BatchScheduler.plan`, called by ``deba.fit`` and
``DebaTrainer``, ``DebaCallback`` through ``DebaRun.plan``) and the profile states ``shares``, warm-up, interval and cooldown are shares of the
budget clock the step engine advances (:meth:`BatchScheduler.advance`), and the last ``freeze``
share of the run never grows.

The parts live beside this module: the timing modes (``deba.control.timing``) behind the budget
clock (``deba.control.budget_clock``), the noise bookkeeping (``deba.control.noise_tracking``) and
measurement cadence (``deba.control.measurement_cadence``), the resolution of strategy, policy and
collectors (``deba.control.plugins``) and the saved state's checks (``deba.control.checkpoint``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from deba.control.budget_clock import BudgetClock
from deba.control.checkpoint import STATE_VERSION, check_compatible
from deba.control.decision import Decision
from deba.control.measurement_cadence import MeasurementCadence
from deba.control.noise_tracking import NoiseTracker
from deba.control.plugins import resolve_collectors, resolve_initial_batch, resolve_policy, resolve_strategy
from deba.control.policy import BatchPolicy, Move, PolicySignals, next_batch_size
from deba.control.scoring import ScoringStrategy
from deba.control.state import SchedulerState
from deba.control.throughput import ThroughputModel
from deba.control.timing import Timing
from deba.errors import DebaConfigError
from deba.profiles.loading import load_profile
from deba.profiles.lr_rule import progress_credit
from deba.profiles.schema import ArchitectureProfile
from deba.signals.collectors.base import MetricCollector
from deba.signals.interval import IntervalAccumulator
from deba.signals.noise import NoiseScaleEstimator
from deba.signals.observation import Observation
from deba.signals.spike import SpikeDetector

__all__ = ["BatchScheduler", "next_batch_size"]


class BatchScheduler:
    """Decides the global batch size from what training looks like (docs/design.md, rules 1-7).

    Args:
        profile: an :class:`ArchitectureProfile`, a profile name, or a path to a profile file.
        strategy: a :class:`ScoringStrategy` instance or a registered name (``"equal-weight"``,
            ``"learned"``, ``"rule-based"`` or a plugin's).
        collectors: collector instances or registered names; by default one per metric in
            ``profile.weights``, built with the profile's window.
        strategy_options: keyword options for a strategy given by name.
        policy: a :class:`BatchPolicy` instance or a registered name (``"stability"``, the published
            rule; ``"goodput"``, DEBA v2's); default ``profile.policy``.
        initial_batch: the starting batch (the user's); default ``profile.initial_batch``.
        throughput: a fixed table (batch -> samples/s) or a :class:`ThroughputModel`; by default
            throughput is measured from the step times the step engine reports.
        optimizer_family: ``"sgd"`` or ``"adam"`` (``deba.profiles.lr_rule.optimizer_family``), for
            ``lr_scaling: auto``.

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
        policy: BatchPolicy | str | None = None,
        initial_batch: int | None = None,
        throughput: Mapping[int, float] | ThroughputModel | None = None,
        optimizer_family: str | None = None,
    ) -> None:
        if optimizer_family not in (None, "sgd", "adam"):
            raise DebaConfigError.single("optimizer_family", optimizer_family, "must be 'sgd', 'adam' or None")
        self.optimizer_family = optimizer_family
        self.profile = load_profile(profile)
        self.throughput = throughput if isinstance(throughput, ThroughputModel) else ThroughputModel(throughput)
        self._noise_tracker = NoiseTracker()
        self.measure_noise = False
        self.spikes = SpikeDetector()
        self.initial_batch = resolve_initial_batch(self.profile, initial_batch)
        self.strategy = resolve_strategy(self.profile, strategy, strategy_options or {})
        self.collectors = resolve_collectors(self.profile, collectors)
        self.policy = resolve_policy(self.profile, policy)
        self._acc = IntervalAccumulator()
        self._clock = BudgetClock(self.profile)
        self._cadence = MeasurementCadence()
        self.state = SchedulerState(batch_size=self.initial_batch)
        self.last_decision: Decision | None = None

    # The decision pipeline: observation -> collectors -> strategy -> policy -> Decision ----------

    def observe(self, obs: Observation) -> Decision:
        """Feed one optimizer step; returns the decision in force for the next step."""
        if not isinstance(obs, Observation):
            raise DebaConfigError.single("obs", type(obs).__name__, "must be a deba.Observation")
        self.state.step += 1
        self._acc.steps += 1
        self._noise_tracker.record(obs.noise_measurement, self.state.step)
        spike = obs.is_finite and self.spikes.update(obs.loss)
        emergency = self._count_step(obs)
        if (spike or not obs.is_finite) and self._may_roll_back():
            return self._roll_back(f"loss spike ({obs.loss:.4g})" if spike else "non-finite loss or gradient")
        if emergency is not None and emergency.changed:
            return emergency
        if self._timing.interval_full(self.state, self._acc.steps):
            closed = self._close_interval()
            if emergency is not None and not closed.changed:
                closed = dataclasses.replace(closed, reason=f"{emergency.reason}; {closed.reason}")
                self.last_decision = closed
            return closed
        if emergency is not None:
            return emergency
        return self._decide(reason=self._timing.collecting(self.state, self._acc.steps))

    def _count_step(self, obs: Observation) -> Decision | None:
        """Window a finite step; count a non-finite one (and maybe shrink)."""
        s = self.state
        if obs.is_finite:
            s.nonfinite_consecutive = 0
            self._acc.add(obs)
            return None
        s.nonfinite_total += 1
        s.nonfinite_consecutive += 1
        s.interval_nonfinite += 1
        return self._nonfinite_decision()

    def _nonfinite_decision(self) -> Decision:
        s = self.state
        why = f"non-finite loss or gradient at step {s.step} ({s.nonfinite_consecutive} in a row)"
        if s.nonfinite_consecutive % self.profile.nonfinite_patience != 0:
            return self._decide(reason=why + "; skipped")
        blocked = self._timing.blocked(s)
        if blocked is not None or self.batch_size <= self.profile.min_batch:
            return self._decide(reason=why + f"; cannot shrink ({blocked or 'at min_batch'})", decided=True)
        move = Move(self.policy.shrink_target(self.batch_size), "shrink", why + "; shrinking")
        return self._decide(reason=move.reason, decided=True, move=move)

    def _close_interval(self) -> Decision:
        metrics, score, had_nonfinite = self._feed_interval()
        held = {"score": score, "decided": True, "metrics": metrics}
        blocked = self._timing.blocked(self.state)
        if blocked is not None:
            return self._decide(reason=blocked, **held)
        if self.state.window_count < self.profile.required_samples or score is None:
            return self._decide(reason=f"filling window {self.state.window_count}/{self.profile.required_samples}", **held)
        if self.strategy.calibrating:
            return self._decide(reason=f"calibrating ({self.strategy.name})", **held)
        move = self.policy.propose(self.batch_size, score, self.policy_signals())
        if move.action == "grow" and had_nonfinite:
            return self._decide(reason=f"score {score:.3f} but a step was non-finite: no growth", **held)
        if move.action == "grow" and self.in_freeze:
            return self._decide(reason=f"{self._timing.freeze_reason()} ({move.reason})", **held)
        return self._decide(reason=move.reason, move=move if move.action != "hold" else None, **held)

    def _feed_interval(self) -> tuple[dict[str, float], float | None, bool]:
        """Close the open interval into the collectors; the metrics, score and non-finite flag."""
        agg = self._acc.result()
        s = self.state
        had_nonfinite = s.interval_nonfinite > 0
        self._acc.clear()
        s.interval_start = s.progress
        s.interval_nonfinite = 0
        s.intervals += 1
        if s.intervals_since_change is not None:
            s.intervals_since_change += 1
        if agg is not None:
            for c in self.collectors:
                c.update(agg)
            s.window_count += 1
        metrics = self.metrics()
        if agg is not None and metrics:
            self.strategy.update(metrics, agg.loss)
        return metrics, (self._score(metrics) if metrics else None), had_nonfinite

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

    def _decide(self, *, reason: str, score: float | None = None, decided: bool = False,
                metrics: dict[str, float] | None = None, move: Move | None = None) -> Decision:
        """The one place a :class:`Decision` is built: a hold, or (with ``move``) a change."""
        previous = self.batch_size
        if move is not None and move.batch_size != previous:
            self._restart_windows()
            self.state.record_change(move.batch_size)
            action, decided = move.action, True
        else:
            action = "hold"
        noise = self.noise
        d = Decision(
            batch_size=self.batch_size, previous_batch_size=previous, changed=self.batch_size != previous,
            action=action, score=score, reason=reason, lr_factor=self.lr_factor, step=self.state.step,
            interval=self.state.intervals, decided=decided, metrics=metrics or {}, noise_scale=noise.noise_scale,
            noise_scale_low=noise.noise_scale_low,
        )
        self.last_decision = d
        return d

    def _restart_windows(self) -> None:
        # Rule 2: metrics measured at one batch size are not mixed with another's.
        for c in self.collectors:
            c.reset()
        self._acc.clear()
        self.state.interval_start = self.state.progress

    # Safety rollback (rule 10) ------------------------------------------------------------------

    def _may_roll_back(self) -> bool:
        """Within the cooldown after a growth (docs/design.md, rule 10)."""
        return self.state.grown_from is not None and self.in_cooldown

    def _roll_back(self, trouble: str) -> Decision:
        """Back to the batch (and so the LR) before the last growth; exempt from rules 2, 3 and 5."""
        target = int(self.state.grown_from)
        move = Move(target, "rollback", f"{trouble} within the cooldown after growing from {target}: roll back")
        return self._decide(reason=move.reason, decided=True, move=move)

    # Other ways in ------------------------------------------------------------------------------

    def hold(self, reason: str) -> Decision:
        """A hold that counts nothing (a step the scheduler must not see, such as a GradScaler skip)."""
        return self._decide(reason=reason)

    def end_epoch(self) -> Decision:
        """Close the epoch. With ``interval="epoch"`` this is when decisions happen."""
        if not self._timing.epoch_closes_interval:
            return self._decide(reason="epoch end (decisions are not per epoch)")
        return self._close_interval()

    def adopt(self, decision: Decision) -> None:
        """Take another scheduler's decision as this one's (DDP: rank 0's, on every other rank).

        The batch size, change bookkeeping (cooldown, window restart) and ``last_decision`` follow
        ``decision`` exactly as if this scheduler had made it.
        """
        if not isinstance(decision, Decision):
            raise DebaConfigError.single("decision", type(decision).__name__, "must be a deba.Decision")
        if decision.batch_size != self.batch_size:
            if decision.changed:
                self._restart_windows()
                self.state.record_change(decision.batch_size)
            else:
                self.state.batch_size = decision.batch_size
        self.last_decision = decision

    # The budget clock and timing ----------------------------------------------------------------

    def plan(self, total: float | None, *, equivalent: bool = False) -> None:
        """Tell the scheduler the run's budget: ``total`` samples (or starting-batch-equivalent
        samples with ``equivalent=True``) on the clock :meth:`advance` moves; ``None`` forgets it.

        With a plan and a profile that states ``shares``, timing is in shares of ``total``.
        """
        self._clock.plan(total, equivalent=equivalent)

    def advance(self, samples: int, equivalent: float) -> None:
        """The step engine moves the budget clock before each :meth:`observe`: the step's samples
        and its starting-batch-equivalent credit (the plan says which one counts)."""
        self.state.progress += self._clock.credit(samples, equivalent)

    @property
    def _timing(self) -> Timing:
        """The timing mode the plan chose (counts, or shares of the run)."""
        return self._clock.timing

    @property
    def in_cooldown(self) -> bool:
        """Whether a change is forbidden because the last one was too recent."""
        return self._timing.in_cooldown(self.state)

    @property
    def in_warmup(self) -> bool:
        """Whether the warm-up (``warmup`` intervals, or the ``warmup`` share of a planned run) is on."""
        return self._timing.in_warmup(self.state)

    @property
    def in_freeze(self) -> bool:
        """Whether the run is in its final ``freeze`` share (planned runs only): no growth."""
        return self._timing.in_freeze(self.state)

    def policy_signals(self) -> PolicySignals:
        """What the policy sees besides the score: ``B0``, the noise scale and the throughput."""
        noise = self.noise
        return PolicySignals(initial_batch=self.initial_batch, noise_scale=noise.noise_scale,
                             noise_scale_low=noise.noise_scale_low, throughput=self.throughput,
                             progress=self._clock.fraction(self.state.progress))

    # Noise measurement --------------------------------------------------------------------------

    @property
    def noise(self) -> NoiseScaleEstimator:
        """The gradient noise-scale estimator the measurement steps feed."""
        return self._noise_tracker.estimator

    @property
    def noise_scale(self) -> float | None:
        """The measured gradient noise scale ``B_simple``, or ``None`` while it is not clear."""
        return self.noise.noise_scale

    @property
    def needs_noise(self) -> bool:
        """Whether anything here reads the noise scale: the policy, the LR rule, or a budget counted
        in equivalent samples (``measure_noise = True``, set by ``deba.fit``)."""
        return self.policy.needs_noise or self.profile.lr_scaling in ("auto", "adascale") or self.measure_noise

    def measurement_interval(self, own_seconds: float | None = None, split: bool = True,
                             shadow: bool = False) -> int | None:
        """Steps between noise measurement steps at the current batch (docs/design.md, "Signals").

        ``None`` when the policy does not use the noise scale (the published ``stability`` rule:
        its steps stay exactly as published). Otherwise the measurements cost 0.5 % of training
        time, priced from the throughput model and DEBA's own reads of the halves (``own_seconds``,
        timed by the step engine; ignored with a fixed table); see
        :class:`deba.control.measurement_cadence.MeasurementCadence` for the price of each kind:
        a split step, per-sample norms (``split=False``) or a BatchNorm shadow half (``shadow=True``).
        """
        if not self.needs_noise:
            return None
        return self._cadence.steps_between(self.throughput, self.batch_size, self.state.step, own_seconds,
                                           split=split, shadow=shadow)

    @property
    def _k_cache(self) -> Any:
        # benchmarks/overhead.py resets the remembered interval by assigning None here.
        return self._cadence.cache

    @_k_cache.setter
    def _k_cache(self, value: Any) -> None:
        self._cadence.cache = value

    def progress_credit(self, batch: int, factor: float) -> float:
        """Starting-batch-equivalent samples of a step at ``batch`` trained with LR ``factor``.

        Uses the last clear noise-scale estimate, or its lower bound while the estimate is unclear
        (``deba.profiles.lr_rule.progress_credit``); the LR factor applied comes from the lower
        bound, so the credit is that of the step actually taken.

        A step smaller than the size in force (an epoch's tail) ran at that size's LR: it is worth
        its share of a full step at that size. Priced as a chosen batch of its own size at that LR
        it would be worth nothing once a noise estimate exists, and a run held at ``B0`` would fall
        behind the fixed run's clock (its LR schedule and evaluations one step late: the
        fashion-resnet study cells part from the fixed batch that way).
        """
        chosen, clear = self.batch_size, self._noise_tracker.last_clear
        if 0 < batch < chosen:
            return progress_credit(chosen, self.initial_batch, factor, clear) * batch / chosen
        return progress_credit(batch, self.initial_batch, factor, clear)

    # Queries ------------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """The global batch size in force (changed only by decisions, or :meth:`adopt`)."""
        return self.state.batch_size

    @property
    def step(self) -> int:
        """Optimizer steps observed."""
        return self.state.step

    @property
    def intervals(self) -> int:
        """Decision intervals closed."""
        return self.state.intervals

    @property
    def changes(self) -> int:
        """Batch-size changes made."""
        return self.state.changes

    @property
    def nonfinite_total(self) -> int:
        """Non-finite steps seen."""
        return self.state.nonfinite_total

    @property
    def nonfinite_consecutive(self) -> int:
        """Non-finite steps in a row up to now."""
        return self.state.nonfinite_consecutive

    @property
    def lr_factor(self) -> float:
        """Multiplier of the base learning rate for the current batch (rule 7)."""
        # The AdaScale gain from the pessimistic bound: a raise of the LR needs confidence too.
        return self.profile.lr_factor(self.batch_size, self.initial_batch, self.optimizer_family, self.noise.noise_scale_low)

    @property
    def timing_decides(self) -> bool:
        """Whether decisions already depend on measured step times (a throughput-reading policy
        without a fixed ``throughput=`` table). Only then may the step engine save work by timing
        (fewer full-norm reads, measurement cost from its own timed reads): the published rule and
        runs with a fixed table stay a pure function of the observations (rule 6)."""
        return self.policy.needs_noise and self.throughput.fixed is None

    @property
    def interval_has_norm(self) -> bool:
        """Whether a step of the open interval has read the gradient norm (the step engine reads it
        on an interval's first step, and then every few steps)."""
        return self._acc.norm_count > 0

    @property
    def needs_sketch(self) -> bool:
        """Whether any collector reads gradient sketches (``MetricCollector.uses_sketch``)."""
        return any(getattr(c, "uses_sketch", True) for c in self.collectors)

    def record_step_time(self, batch: int, seconds: float) -> None:
        """The step engine reports each step's training time (for the throughput model)."""
        self.throughput.record(batch, seconds)

    def metrics(self) -> dict[str, float]:
        """Current value of every collector that has one."""
        out: dict[str, float] = {}
        for c in self.collectors:
            v = c.value()
            if v is not None:
                out[c.name] = float(v)
        return out

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; no model, optimizer or data loader."""
        return {
            "version": STATE_VERSION,
            "profile": self.profile.to_dict(),
            "initial_batch": self.initial_batch,
            "strategy": {"name": self.strategy.name, "state": self.strategy.state_dict()},
            "policy": {"name": self.policy.name, "state": self.policy.state_dict()},
            "collectors": {c.name: c.state_dict() for c in self.collectors},
            **self.state.to_dict(),
            "accumulator": self._acc.state_dict(),
            "last_decision": None if self.last_decision is None else self.last_decision.to_dict(),
            **self._noise_tracker.state_dict(),
            "throughput": self.throughput.state_dict(),
            "spikes": self.spikes.state_dict(),
            "plan": self._clock.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from :meth:`state_dict` of a scheduler built with the same profile.

        Raises:
            DebaConfigError: the state is not a DEBA scheduler state, was saved with another
                profile, strategy, policy or set of collectors, or is malformed.
        """
        check_compatible(state, self.profile, self.strategy.name, self.policy.name, [c.name for c in self.collectors])
        try:
            self._load_parts(state)
        except DebaConfigError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DebaConfigError.single("state", type(exc).__name__, f"is malformed ({exc})") from exc

    def _load_parts(self, state: dict[str, Any]) -> None:
        restored = SchedulerState.from_dict(state)
        if not self.profile.min_batch <= restored.batch_size <= self.profile.max_batch:
            raise DebaConfigError.single("state.batch_size", restored.batch_size, "must lie within the profile's bounds")
        self.initial_batch = int(state.get("initial_batch", self.profile.initial_batch))
        self.strategy.load_state_dict(state["strategy"].get("state", {}))
        self.policy.load_state_dict((state.get("policy") or {}).get("state", {}))
        for c in self.collectors:
            c.load_state_dict(state["collectors"][c.name])
        self.state = restored
        self._acc.load_state_dict(state["accumulator"])
        self._noise_tracker.load_state_dict(state)
        self.throughput.load_state_dict(state["throughput"])
        self.spikes.load_state_dict(state["spikes"])
        plan = state.get("plan")
        if plan is not None:  # a state saved unplanned keeps this scheduler's plan
            self.plan(float(plan["total"]), equivalent=bool(plan["equivalent"]))
        last = state["last_decision"]
        self.last_decision = None if last is None else Decision(**last)

    def __repr__(self) -> str:
        return (
            f"BatchScheduler(profile={self.profile.name!r}, strategy={self.strategy.name!r}, "
            f"policy={self.policy.name!r}, batch_size={self.batch_size}, step={self.step})"
        )
