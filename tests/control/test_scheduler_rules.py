"""Properties of the scheduler: docs/design.md rules 1-6, each pinned down with Hypothesis.

The score is dictated through the loss (score = 1 - loss, see helpers.EchoStrategy), so every
property can drive the scheduler into growth, shrinkage, cooldown and non-finite paths.

Each property runs in both timing modes: counted (no plan: ``interval`` steps, ``warmup`` and
``cooldown`` in intervals) and the mode real runs use, shares of a planned run (profiles with
``shares``, a budget given to ``plan()``, the budget clock moved by ``advance()`` before each step
as the step engine does); there cooldown and warm-up are shares of the clock and the final
``freeze`` share never grows.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import deba
from deba.control.scheduler import next_batch_size
from helpers import echo_scheduler, obs, profiles

# One event: a step with a loss (or a non-finite step), or the end of an epoch.
events = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.floats(0.0, 1.0)),
        st.tuples(st.just("bad"), st.just(0.0)),
        st.tuples(st.just("epoch"), st.just(0.0)),
    ),
    max_size=60,
)


def feed(sched: deba.BatchScheduler, event) -> deba.Decision:
    kind, loss = event
    if kind == "epoch":
        return sched.end_epoch()
    return sched.observe(obs(loss, sched.batch_size, finite=(kind == "step")))


def on_grid(p: deba.ArchitectureProfile, b: int) -> bool:
    return p.min_batch <= b <= p.max_batch and b % p.granularity == 0


@given(profiles(), events)
def test_rule1_bounds_and_grid(profile, evs):
    sched = echo_scheduler(profile)
    for e in evs:
        d = feed(sched, e)
        assert on_grid(profile, d.batch_size) and d.batch_size == sched.batch_size


@given(profiles(), events)
def test_rule2_cooldown_and_window_restart(profile, evs):
    sched = echo_scheduler(profile)
    last_change_interval = None
    for e in evs:
        d = feed(sched, e)
        if d.changed:
            if last_change_interval is not None and d.action != "rollback":  # rule 10 is exempt
                # strictly more than `cooldown` intervals completed since the previous change
                assert sched.intervals - last_change_interval > profile.cooldown
            last_change_interval = sched.intervals
            assert all(c.count == 0 for c in sched.collectors), "windows must restart after a change"
            assert sched.state.window_count == 0


@given(profiles(), events)
def test_rule3_warmup_and_min_samples(profile, evs):
    sched = echo_scheduler(profile)
    for e in evs:
        before_window = sched.state.window_count
        d = feed(sched, e)
        if d.changed and d.action != "rollback":  # a safety rollback is exempt (rule 10)
            assert sched.intervals >= profile.warmup
            if d.action != "shrink" or d.score is not None:
                # a score-driven change needs a full-enough window (this interval included)
                assert before_window + 1 >= profile.required_samples


@given(profiles(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.floats(0, 1), st.floats(0, 1))
def test_rule4_monotone_from_the_same_state(profile, losses, s1, s2):
    sched = echo_scheduler(profile)
    for loss in losses:
        sched.observe(obs(loss, sched.batch_size))
    state = json.loads(json.dumps(sched.state_dict()))
    lo, hi = sorted((s1, s2))
    outcomes = []
    for score in (lo, hi):
        twin = echo_scheduler(profile)
        twin.load_state_dict(state)
        # Feed enough identical steps to close the interval (or the epoch) with this score.
        steps = 1 if profile.interval == "epoch" else int(profile.interval)
        d = None
        for _ in range(steps):
            d = twin.observe(obs(1.0 - score, twin.batch_size))
        if profile.interval == "epoch":
            d = twin.end_epoch()
        outcomes.append(d.batch_size)
    assert outcomes[0] <= outcomes[1]
    # and the pure rule itself
    assert next_batch_size(profile, sched.batch_size, lo)[0] <= next_batch_size(profile, sched.batch_size, hi)[0]


@given(profiles(), st.integers(0, 200), st.floats(0, 1))
def test_rule5_bounded_moves_of_at_least_one_grid_step(profile, k, score):
    g = profile.granularity
    batch = min(profile.max_batch, profile.min_batch + g * (k % ((profile.max_batch - profile.min_batch) // g + 1)))
    target, action = next_batch_size(profile, batch, score)
    assert on_grid(profile, target)
    if action == "grow":
        up = math.ceil(batch * profile.growth_factor / g - 1e-9) * g
        assert batch + g <= target <= max(up, batch + g)
    elif action == "shrink":
        down = math.floor(batch / profile.shrink_factor / g + 1e-9) * g
        assert min(down, batch - g) <= target <= batch - g
    else:
        assert target == batch


@given(profiles(policy="stability"))
def test_rule5_stable_runs_grow_and_unstable_runs_shrink(profile):
    for loss, goal in ((0.0, profile.max_batch), (1.0, profile.min_batch)):
        sched = echo_scheduler(profile)
        # generous budget: warm-up + (cooldown + window) per change, for every grid step
        per_change = profile.cooldown + profile.required_samples + 2
        steps_per_interval = 1 if profile.interval == "epoch" else int(profile.interval)
        budget = (profile.warmup + per_change * ((profile.max_batch - profile.min_batch) // profile.granularity + 1))
        for _ in range(budget):
            for _ in range(steps_per_interval):
                sched.observe(obs(loss, sched.batch_size))
            if profile.interval == "epoch":
                sched.end_epoch()
            if sched.batch_size == goal:
                break
        if loss == 0.0 and profile.increase_above <= 1.0:
            assert sched.batch_size == goal, "a stable run below max_batch must grow to it"
        if loss == 1.0 and profile.decrease_below > 0.0:
            assert sched.batch_size == goal, "an unstable run above min_batch must shrink to it"


@given(profiles(), events, st.integers(0, 60))
def test_rule6_deterministic_and_exact_state_round_trip(profile, evs, cut):
    a = echo_scheduler(profile, by_instance=True)
    b = echo_scheduler(profile, by_instance=True)
    for e in evs[:cut]:
        assert feed(a, e) == feed(b, e)
    # restore into a differently built scheduler (names through the registry, not instances)
    c = echo_scheduler(profile, by_instance=False)
    c.load_state_dict(json.loads(json.dumps(a.state_dict(), allow_nan=False)))
    assert c.batch_size == a.batch_size
    for e in evs[cut:]:
        da, dc = feed(a, e), feed(c, e)
        note(f"{da} vs {dc}")
        assert da == dc
    assert c.state_dict() == a.state_dict()


class SchedulerMachine(RuleBasedStateMachine):
    """Random steps, epoch ends and save/restore into a freshly built scheduler; invariants after each."""

    @initialize(profile=profiles())
    def start(self, profile):
        self.profile = profile
        self.sched = echo_scheduler(profile, by_instance=True)
        self.twin = echo_scheduler(profile, by_instance=True)  # never restored: the reference
        self.last_change = None
        self.previous = profile.initial_batch
        self.before_growth = None

    def _check(self, d: deba.Decision, t: deba.Decision) -> None:
        assert d == t, f"restored scheduler diverged: {d} != {t}"
        if d.changed:
            assert d.previous_batch_size == self.previous
            if d.action == "rollback":  # rule 10: back to the batch before the growth, exempt from 2, 3, 5
                assert d.batch_size == self.before_growth and d.batch_size < d.previous_batch_size
                self.last_change = self.sched.intervals
                self.previous = d.batch_size
                return
            self.before_growth = d.previous_batch_size if d.batch_size > d.previous_batch_size else None
            if self.last_change is not None:
                assert self.sched.intervals - self.last_change > self.profile.cooldown
            self.last_change = self.sched.intervals
            g = self.profile.granularity
            if d.batch_size > d.previous_batch_size:
                assert d.batch_size <= max(math.ceil(d.previous_batch_size * self.profile.growth_factor / g - 1e-9) * g, d.previous_batch_size + g)
            else:
                assert d.batch_size >= min(math.floor(d.previous_batch_size / self.profile.shrink_factor / g + 1e-9) * g, d.previous_batch_size - g)
        self.previous = d.batch_size

    @rule(loss=st.floats(0.0, 1.0))
    def step(self, loss):
        self._check(self.sched.observe(obs(loss, self.sched.batch_size)), self.twin.observe(obs(loss, self.twin.batch_size)))

    @rule()
    def bad_step(self):
        self._check(self.sched.observe(obs(0, self.sched.batch_size, finite=False)),
                    self.twin.observe(obs(0, self.twin.batch_size, finite=False)))

    @precondition(lambda self: self.profile.interval == "epoch")
    @rule()
    def epoch_end(self):
        self._check(self.sched.end_epoch(), self.twin.end_epoch())

    @rule(by_instance=st.booleans())
    def save_and_restore(self, by_instance):
        state = json.loads(json.dumps(self.sched.state_dict(), allow_nan=False))
        fresh = echo_scheduler(self.profile, by_instance=by_instance)
        fresh.load_state_dict(state)
        self.sched = fresh

    @invariant()
    def bounded_and_on_grid(self):
        assert on_grid(self.profile, self.sched.batch_size)

    @invariant()
    def same_as_reference(self):
        assert self.sched.batch_size == self.twin.batch_size
        assert self.sched.step == self.twin.step

    @invariant()
    def lr_factor_follows_batch(self):
        assert self.sched.lr_factor == self.profile.lr_factor(self.sched.batch_size)


TestSchedulerMachine = SchedulerMachine.TestCase


# Timing as shares of a planned run ----------------------------------------------------------------

#: The built-in profiles' shares (the timing real runs use), and drawn ones.
BUILTIN_SHARES = [deba.load_profile(n).shares.model_dump() for n in ("mlp", "resnet18", "vit_b16", "densenet121")]
share_dicts = st.one_of(
    st.sampled_from(BUILTIN_SHARES),
    st.fixed_dictionaries({"warmup": st.floats(0.0, 0.3), "interval": st.floats(0.01, 0.25),
                           "cooldown": st.floats(0.0, 0.3), "freeze": st.floats(0.0, 0.4)}),
)

#: Events for a planned run: mostly finite steps, often calm ones, so runs reach growth and the freeze.
_finite = st.tuples(st.just("step"), st.one_of(st.floats(0.0, 1.0), st.just(0.0)))
planned_events = st.lists(st.one_of(_finite, _finite, _finite, st.tuples(st.just("bad"), st.just(0.0)),
                                    st.tuples(st.just("epoch"), st.just(0.0))), max_size=60)

#: The planned properties run fewer examples than the profile's (at most 300): they add to the counted ones.
planned_settings = settings(max_examples=min(settings.default.max_examples, 300))


@st.composite
def planned_runs(draw, policy=None):
    """A profile with ``shares``, a budget of 2-30 starting batches (about the length of ``events``) and
    which credit the clock counts."""
    profile = draw(profiles(policy=policy)).replace(shares=draw(share_dicts))
    return profile, float(profile.initial_batch * draw(st.integers(2, 30))), draw(st.booleans())


def planned_scheduler(run, by_instance: bool = True) -> deba.BatchScheduler:
    profile, total, equivalent = run
    sched = echo_scheduler(profile, by_instance=by_instance)
    sched.plan(total, equivalent=equivalent)
    return sched


def feed_planned(sched: deba.BatchScheduler, event) -> deba.Decision:
    """As the step engine does: the clock moves (a non-finite step earns no credit), then the step."""
    kind, loss = event
    if kind == "epoch":
        return sched.end_epoch()
    b = sched.batch_size
    sched.advance(b, 0.5 * b if kind == "step" else 0.0)
    return sched.observe(obs(loss, b, finite=(kind == "step")))


@planned_settings
@given(planned_runs(), planned_events)
def test_planned_rule1_bounds_and_grid(run, evs):
    sched = planned_scheduler(run)
    for e in evs:
        d = feed_planned(sched, e)
        assert on_grid(run[0], d.batch_size) and d.batch_size == sched.batch_size


@planned_settings
@given(planned_runs(), planned_events)
def test_planned_rules2_3_and_freeze_in_shares_of_the_run(run, evs):
    profile, total, _ = run
    shares = profile.shares
    sched = planned_scheduler(run)
    last_change_at = None
    for e in evs:
        before_window = sched.state.window_count
        d = feed_planned(sched, e)
        progress = sched.state.progress
        if not d.changed:
            continue
        assert all(c.count == 0 for c in sched.collectors) and sched.state.window_count == 0, "windows restart"
        if d.action != "rollback":  # rule 10 is exempt
            assert progress >= shares.warmup * total, "rule 3: no change during the warm-up share"
            if last_change_at is not None:
                assert progress - last_change_at >= shares.cooldown * total, "rule 2: cooldown share"
            if d.action != "shrink" or d.score is not None:
                assert before_window + 1 >= profile.required_samples
        if d.action == "grow":
            assert progress < (1.0 - shares.freeze) * total, "no growth in the final freeze share"
        last_change_at = progress


@planned_settings
@given(planned_runs(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40), st.floats(0, 1), st.floats(0, 1))
def test_planned_rule4_monotone_from_the_same_state(run, losses, s1, s2):
    sched = planned_scheduler(run)
    for loss in losses:
        feed_planned(sched, ("step", loss))
    state = json.loads(json.dumps(sched.state_dict()))
    outcomes = []
    for score in sorted((s1, s2)):
        twin = echo_scheduler(run[0])
        twin.load_state_dict(state)  # the plan comes back with the state
        d = feed_planned(twin, ("step", 1.0 - score))
        for _ in range(400):  # until the interval (a share of the clock) closes
            if d.decided:
                break
            d = feed_planned(twin, ("step", 1.0 - score))
        outcomes.append(d.batch_size)
    assert outcomes[0] <= outcomes[1]


@planned_settings
@given(planned_runs(), planned_events, st.integers(0, 60))
def test_planned_rule6_deterministic_and_exact_state_round_trip(run, evs, cut):
    a, b = planned_scheduler(run), planned_scheduler(run)
    for e in evs[:cut]:
        assert feed_planned(a, e) == feed_planned(b, e)
    c = echo_scheduler(run[0], by_instance=False)  # unplanned: the saved plan is restored
    c.load_state_dict(json.loads(json.dumps(a.state_dict(), allow_nan=False)))
    assert c.batch_size == a.batch_size and c.in_warmup == a.in_warmup and c.in_cooldown == a.in_cooldown
    for e in evs[cut:]:
        da, dc = feed_planned(a, e), feed_planned(c, e)
        note(f"{da} vs {dc}")
        assert da == dc
    assert c.state_dict() == a.state_dict()


class PlannedSchedulerMachine(SchedulerMachine):
    """The state machine on a planned run: the clock moves before each step; cooldown is a share."""

    @initialize(run=planned_runs())
    def start(self, run):
        self.run = run
        super().start(run[0])
        self.sched, self.twin = planned_scheduler(run), planned_scheduler(run)
        self.last_change = None

    def _check(self, d: deba.Decision, t: deba.Decision) -> None:
        counted_change = d.changed and d.action != "rollback"
        if counted_change:
            profile, total, _ = self.run
            progress = self.sched.state.progress
            assert progress >= profile.shares.warmup * total
            if self.last_change is not None:
                assert progress - self.last_change >= profile.shares.cooldown * total
        last = self.last_change
        self.last_change = None  # the counted cooldown check of the parent does not apply here
        super()._check(d, t)
        self.last_change = self.sched.state.progress if d.changed else last

    @rule(loss=st.floats(0.0, 1.0))
    def step(self, loss):
        self._check(feed_planned(self.sched, ("step", loss)), feed_planned(self.twin, ("step", loss)))

    @rule()
    def bad_step(self):
        self._check(feed_planned(self.sched, ("bad", 0.0)), feed_planned(self.twin, ("bad", 0.0)))

    @precondition(lambda self: self.profile.interval == "epoch")
    @rule()
    def epoch_end(self):
        self._check(self.sched.end_epoch(), self.twin.end_epoch())

    @rule(by_instance=st.booleans())
    def save_and_restore(self, by_instance):
        state = json.loads(json.dumps(self.sched.state_dict(), allow_nan=False))
        fresh = echo_scheduler(self.profile, by_instance=by_instance)
        fresh.load_state_dict(state)
        assert fresh.state_dict()["plan"] == {"total": self.run[1], "equivalent": self.run[2]}
        self.sched = fresh


TestPlannedSchedulerMachine = PlannedSchedulerMachine.TestCase
TestPlannedSchedulerMachine.settings = settings(max_examples=min(settings.default.max_examples, 300))
