"""Behaviour of deba.control.scheduler: both timing modes, plan(), hold(), rollback, state, bad input."""

from __future__ import annotations

import json

import pytest

import deba
from deba.control.policy import StabilityPolicy
from deba.control.timing import CountedTiming, ShareTiming
from helpers import LastLossCollector, echo_scheduler, obs

SHARES = {"warmup": 0.1, "interval": 0.05, "cooldown": 0.1, "freeze": 0.2}
PROFILE = deba.load_profile("mlp").replace(policy="stability", lr_scaling="linear", interval=4, window=3, min_samples=2,
                                           warmup=1, cooldown=1, max_batch=2048, shares=SHARES,
                                           weights={"last_loss": 1.0}, tau={"last_loss": 1.0})
TOTAL = 10_000
BASE = deba.load_profile("mlp")

#: The top-level keys of BatchScheduler.state_dict(), in order: the checkpoint format.
STATE_KEYS = ["version", "profile", "initial_batch", "strategy", "policy", "collectors", "batch_size", "step",
              "intervals", "window_count", "intervals_since_change", "changes", "nonfinite_total",
              "nonfinite_consecutive", "interval_nonfinite", "grown_from", "progress", "interval_start", "change_at",
              "accumulator", "last_decision", "noise", "last_measured_step", "last_clear_noise", "throughput", "spikes",
              "plan"]


def _step(sched, loss, finite=True, equivalent=None):
    """One step as the step engine takes it: the budget clock first, then the observation."""
    b = sched.batch_size
    sched.advance(b, 0.5 * b if equivalent is None else equivalent)
    return sched.observe(obs(loss, b, finite=finite))


def _planned(total=TOTAL, **plan):
    sched = echo_scheduler(PROFILE)
    sched.plan(total, **plan)
    return sched


# Counted timing ---------------------------------------------------------------------------------


def test_counted_timing_closes_an_interval_every_interval_steps():
    sched = echo_scheduler(PROFILE)
    ds = [_step(sched, 0.0) for _ in range(8)]
    assert [d.decided for d in ds] == [False, False, False, True] * 2
    assert ds[0].reason == "collecting 1/4 steps of the interval"
    assert ds[3].reason == "filling window 1/2"  # the warm-up (1 interval) is over once it closes
    assert sched.intervals == 2 and not sched.in_warmup and not sched.in_freeze


def test_counted_timing_grows_then_cools_down_by_intervals():
    sched = echo_scheduler(PROFILE)
    changes = []
    for _ in range(40):
        d = _step(sched, 0.0)
        if d.changed:
            changes.append(sched.intervals)
    assert changes and all(b - a > PROFILE.cooldown for a, b in zip(changes, changes[1:]))
    assert changes[0] >= max(PROFILE.warmup, PROFILE.min_samples)


def test_epoch_intervals_decide_at_end_epoch_only():
    sched = echo_scheduler(PROFILE.replace(interval="epoch"))
    assert sched.observe(obs(0.0, sched.batch_size)).reason == "collecting until the epoch ends"
    d = sched.end_epoch()
    assert d.decided and sched.intervals == 1


# Run-share timing ---------------------------------------------------------------------------------


def test_share_timing_counts_shares_of_the_planned_run():
    sched = _planned()
    first = _step(sched, 0.0)
    assert first.reason == f"collecting {32 / TOTAL:.2%}/{SHARES['interval']:.2%} of the run for the interval"
    while not sched.last_decision.decided:
        _step(sched, 0.0)
    assert sched.state.progress >= SHARES["interval"] * TOTAL > sched.state.progress - sched.batch_size
    assert sched.last_decision.reason.startswith("warmup ") and sched.last_decision.reason.endswith("of the run")


def test_share_timing_changes_outside_warmup_cooldown_and_never_grows_in_the_freeze():
    sched = _planned()
    events = []
    while sched.state.progress < TOTAL:  # score 0.4 (hold) for 70 % of the run, then 1 (grow)
        d = _step(sched, 0.6 if sched.state.progress < 0.7 * TOTAL else 0.0)
        events.append((sched.state.progress, d))
    changes = [p for p, d in events if d.changed]
    assert changes and changes[0] >= SHARES["warmup"] * TOTAL
    assert all(b - a >= SHARES["cooldown"] * TOTAL for a, b in zip(changes, changes[1:]))
    assert not any(d.action == "grow" for p, d in events if p >= (1 - SHARES["freeze"]) * TOTAL)
    assert any(d.reason.startswith("final 20% of the run: no growth") for _, d in events)


def test_end_epoch_never_decides_in_a_planned_run():
    sched = echo_scheduler(PROFILE.replace(interval="epoch"))
    sched.plan(TOTAL)
    _step(sched, 0.0)
    d = sched.end_epoch()
    assert not d.decided and d.reason == "epoch end (decisions are not per epoch)"


def test_a_profile_without_shares_keeps_counting_when_planned():
    sched = echo_scheduler(PROFILE.replace(shares=None))
    sched.plan(TOTAL)
    assert isinstance(sched._clock.timing, CountedTiming)
    assert _step(sched, 0.0).reason == "collecting 1/4 steps of the interval"
    assert sched.policy_signals().progress == pytest.approx(32 / TOTAL)


# plan() -------------------------------------------------------------------------------------------


def test_plan_chooses_the_timing_and_none_forgets_it():
    sched = echo_scheduler(PROFILE)
    assert isinstance(sched._clock.timing, CountedTiming) and sched.policy_signals().progress is None
    sched.plan(TOTAL)
    assert isinstance(sched._clock.timing, ShareTiming)
    sched.plan(None)
    assert isinstance(sched._clock.timing, CountedTiming) and sched.state_dict()["plan"] is None


def test_the_plan_says_which_credit_moves_the_clock():
    samples, equivalent = _planned(), _planned(equivalent=True)
    for sched in (samples, equivalent):
        _step(sched, 0.0, equivalent=12.5)
    assert samples.state.progress == 32.0 and equivalent.state.progress == 12.5
    assert equivalent.state_dict()["plan"] == {"total": float(TOTAL), "equivalent": True}
    assert equivalent.policy_signals().progress == 12.5 / TOTAL


@pytest.mark.parametrize("total", [0, -1.0, float("inf"), float("nan"), False, "100", [100]])
def test_plan_refuses_a_bad_total_naming_it(total):
    with pytest.raises(deba.DebaConfigError, match="`total`"):
        echo_scheduler(PROFILE).plan(total)


# hold() -------------------------------------------------------------------------------------------


def test_hold_counts_nothing():
    sched = _planned()
    _step(sched, 0.3)
    before = sched.state_dict()
    d = sched.hold("gradient scaler skipped the step")
    after = sched.state_dict()
    assert d.reason == "gradient scaler skipped the step" and not d.changed and not d.decided
    assert sched.last_decision is d and d.batch_size == sched.batch_size and d.step == sched.step
    assert {k: v for k, v in after.items() if k != "last_decision"} == \
        {k: v for k, v in before.items() if k != "last_decision"}


# Spike rollback (rule 10) -------------------------------------------------------------------------


def _grown(sched):
    for _ in range(3000):
        d = _step(sched, 0.6 if sched.step < 20 else 0.1)
        if d.action == "grow":
            return d
    raise AssertionError("the calm run never grew")


@pytest.mark.parametrize("planned", [False, True])
def test_a_spike_in_the_cooldown_after_a_growth_rolls_back(planned):
    sched = _planned(total=20_000) if planned else echo_scheduler(PROFILE.replace(cooldown=3))
    grow = _grown(sched)
    assert sched.in_cooldown and sched.state.grown_from == grow.previous_batch_size
    d = _step(sched, 50.0)
    assert d.action == "rollback" and d.changed and d.batch_size == grow.previous_batch_size
    assert "loss spike" in d.reason and d.lr_factor == PROFILE.lr_factor(grow.previous_batch_size)
    assert sched.state.grown_from is None


def test_a_non_finite_step_in_the_cooldown_after_a_growth_rolls_back():
    sched = _planned(total=20_000)
    grow = _grown(sched)
    d = _step(sched, 0.0, finite=False)
    assert d.action == "rollback" and d.batch_size == grow.previous_batch_size
    assert sched.nonfinite_total == 1 and sched.nonfinite_consecutive == 1


# State round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", [None, {"total": TOTAL}, {"total": TOTAL / 2, "equivalent": True}])
def test_a_state_round_trip_continues_exactly(plan):
    a = echo_scheduler(PROFILE)
    if plan is not None:
        a.plan(plan.pop("total"), **plan)
    losses = [0.0, 0.2, 0.9, 0.1] * 30
    for i, loss in enumerate(losses[:61]):
        _step(a, loss, finite=i % 17 != 5)
    saved = json.dumps(a.state_dict(), allow_nan=False)
    assert list(json.loads(saved)) == STATE_KEYS
    b = echo_scheduler(PROFILE, by_instance=False)
    b.load_state_dict(json.loads(saved))
    assert json.dumps(b.state_dict(), allow_nan=False) == saved
    for i, loss in enumerate(losses[61:]):
        assert _step(a, loss, finite=i % 13 != 2) == _step(b, loss, finite=i % 13 != 2)
    assert a.state_dict() == b.state_dict() and repr(a) == repr(b)


def test_a_state_without_later_fields_loads():
    """A state saved before the plan, the policy and the share clock existed (stability rule)."""
    sched = echo_scheduler(PROFILE)
    for _ in range(6):
        _step(sched, 0.2)
    state = sched.state_dict()
    for key in ("plan", "policy", "grown_from", "progress", "interval_start", "change_at"):
        del state[key]
    twin = echo_scheduler(PROFILE)
    twin.load_state_dict(state)
    assert twin.step == 6 and twin.state.progress == 0.0 and twin.state_dict()["plan"] is None


def test_the_noise_bookkeeping_survives_a_round_trip():
    sched = echo_scheduler(PROFILE.replace(policy="goodput"))
    for _ in range(30):
        _step(sched, 0.2)
    assert sched.noise.count == 30 and sched.noise_scale is not None
    twin = echo_scheduler(PROFILE.replace(policy="goodput"))
    twin.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert twin.state_dict()["last_measured_step"] == 30 and twin.noise_scale == sched.noise_scale
    assert twin.progress_credit(32, 1.0) == sched.progress_credit(32, 1.0)
    assert twin.progress_credit(16, 1.0) == sched.progress_credit(32, 1.0) / 2  # an epoch's tail at B = 32


def test_measurement_interval_is_none_for_the_published_rule_and_priced_otherwise():
    assert echo_scheduler(PROFILE.replace(lr_scaling="none")).measurement_interval() is None
    sched = echo_scheduler(PROFILE.replace(policy="goodput"), throughput={16: 1000.0, 32: 1000.0})
    assert sched.measurement_interval() == 1  # T(B)/T(B/2) = 2: a measurement costs a whole step -> ceil(0/0.005)
    assert sched.measurement_interval(split=False) == 1
    assert sched.measurement_interval(shadow=True) == 100  # half a step: 0.5 T(B)/T(B/2)


# Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"optimizer_family": "rmsprop"}, "optimizer_family"),
    ({"initial_batch": 3}, "initial_batch"),
    ({"initial_batch": True}, "initial_batch"),
    ({"strategy": 1.5}, "strategy"),
    ({"policy": 7}, "policy"),
    ({"collectors": "loss_variation"}, "collectors"),
    ({"collectors": [object()]}, "collectors"),
    ({"collectors": []}, "collectors"),
    ({"strategy": "equal-weight", "strategy_options": None, "collectors": [
        LastLossCollector(window=3, min_samples=2), LastLossCollector(window=3, min_samples=2)]}, "collectors"),
])
def test_bad_construction_names_the_field(kwargs, field):
    with pytest.raises(deba.DebaConfigError, match=f"`{field}`"):
        deba.BatchScheduler(BASE, **kwargs)


def test_parts_built_for_another_profile_or_options_for_an_instance_are_refused():
    other = BASE.replace(name="other")
    with pytest.raises(deba.DebaConfigError, match="`strategy.profile`"):
        deba.BatchScheduler(BASE, strategy=deba.BatchScheduler(other).strategy)
    with pytest.raises(deba.DebaConfigError, match="`policy.profile`"):
        deba.BatchScheduler(BASE, policy=StabilityPolicy(other))
    with pytest.raises(deba.DebaConfigError, match="`strategy_options`"):
        deba.BatchScheduler(BASE, strategy=deba.BatchScheduler(BASE).strategy, strategy_options={"x": 1})


def test_bad_calls_name_the_argument():
    sched = echo_scheduler(PROFILE.replace(policy="goodput"))
    with pytest.raises(deba.DebaConfigError, match="`obs`"):
        sched.observe({"loss": 1.0})
    with pytest.raises(deba.DebaConfigError, match="`decision`"):
        sched.adopt({"batch_size": 64})
    with pytest.raises(deba.DebaConfigError, match="`split`"):
        sched.measurement_interval(split=1)
    with pytest.raises(deba.DebaConfigError, match="`shadow`"):
        sched.measurement_interval(shadow="yes")


@pytest.mark.parametrize(("edit", "field"), [
    (lambda s: s.update(version=2), "state.version"),
    (lambda s: s["profile"].update(name="other"), "state.profile"),
    (lambda s: s["strategy"].update(name="other"), "state.strategy.name"),
    (lambda s: s.update(policy={"name": "goodput"}), "state.policy.name"),
    (lambda s: s.update(collectors={}), "state.collectors"),
    (lambda s: s.update(batch_size=10 ** 6), "state.batch_size"),
    (lambda s: s.pop("accumulator"), "state"),
    (lambda s: s.update(step="many"), "state"),
])
def test_a_bad_state_names_the_field(edit, field):
    sched = echo_scheduler(PROFILE)
    state = json.loads(json.dumps(sched.state_dict()))
    edit(state)
    with pytest.raises(deba.DebaConfigError, match=f"`{field.replace('.', '[.]')}`"):
        echo_scheduler(PROFILE).load_state_dict(state)
    with pytest.raises(deba.DebaConfigError, match="`state.version`"):
        sched.load_state_dict([1, 2])


def test_a_strategy_score_outside_the_unit_interval_is_refused():
    class Wild(deba.ScoringStrategy):
        name = "wild"

        def score(self, metrics):
            return 1.5

    sched = deba.BatchScheduler(PROFILE, strategy=Wild(PROFILE), collectors=[LastLossCollector(window=3, min_samples=2)])
    with pytest.raises(deba.DebaConfigError, match="strategy wild.score()"):
        for _ in range(PROFILE.interval * (PROFILE.min_samples + 1)):
            sched.observe(obs(0.1, sched.batch_size))


# DDP adoption -------------------------------------------------------------------------------------


def test_adopt_follows_another_schedulers_decision_exactly():
    lead, follower = _planned(), _planned()
    for _ in range(600):
        b = lead.batch_size
        for s in (lead, follower):
            s.advance(b, 0.5 * b)
        d = lead.observe(obs(0.0, b))
        follower.adopt(d)
        assert follower.batch_size == lead.batch_size and follower.last_decision is d
        if d.changed:
            break
    assert d.changed and follower.in_cooldown and follower.state.change_at == lead.state.change_at
