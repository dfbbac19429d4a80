"""The budget clock: what a plan stores, what a step adds, what share is done, and which timing it implies."""

from __future__ import annotations

import math

import pytest

import deba
from deba.control.budget_clock import BudgetClock
from deba.control.state import SchedulerState
from deba.control.timing import CountedTiming, ShareTiming
from deba.profiles.schema import RunShares

BASE = dict(name="clock-test", family="generic", min_batch=8, max_batch=512, initial_batch=32, granularity=8,
            growth_factor=2.0, shrink_factor=2.0, increase_above=0.6, decrease_below=0.3, window=4,
            interval=5, warmup=2, cooldown=1)
SHARES = RunShares(warmup=0.1, interval=0.05, cooldown=0.1, freeze=0.2)


def _clock(shares=SHARES) -> BudgetClock:
    return BudgetClock(deba.ArchitectureProfile(**BASE, shares=shares))


def test_an_unplanned_clock_times_by_counts_and_saves_nothing():
    clock = _clock()
    assert clock.total is None and clock.equivalent is False
    assert isinstance(clock.timing, CountedTiming)
    assert clock.fraction(500.0) is None
    assert clock.state_dict() is None


def test_a_plan_switches_to_share_timing_over_the_planned_total():
    clock = _clock()
    clock.plan(400)
    assert clock.total == 400.0 and isinstance(clock.total, float)
    assert isinstance(clock.timing, ShareTiming) and clock.timing.total == 400.0
    # warm-up of 10 % of 400 samples: progress 39 is still in it, 40 is not
    assert clock.timing.in_warmup(SchedulerState(batch_size=32, progress=39.0))
    assert not clock.timing.in_warmup(SchedulerState(batch_size=32, progress=40.0))


def test_a_profile_without_shares_keeps_counted_timing_even_when_planned():
    clock = _clock(shares=None)
    clock.plan(400)
    assert clock.total == 400.0
    assert isinstance(clock.timing, CountedTiming)


def test_planning_none_forgets_the_budget():
    clock = _clock()
    clock.plan(400, equivalent=True)
    clock.plan(None)
    assert clock.total is None and clock.equivalent is False
    assert isinstance(clock.timing, CountedTiming)
    assert clock.state_dict() is None and clock.fraction(10.0) is None


def test_a_new_plan_replaces_the_timing_with_the_new_total():
    clock = _clock()
    clock.plan(400)
    clock.plan(1000)
    assert clock.timing.total == 1000.0
    assert clock.timing.in_warmup(SchedulerState(batch_size=32, progress=99.0))


def test_credit_is_the_equivalent_credit_only_on_an_equivalent_plan():
    clock = _clock()
    clock.plan(1000)
    assert clock.credit(samples=64, equivalent=40.5) == 64.0
    assert isinstance(clock.credit(samples=64, equivalent=40.5), float)
    clock.plan(1000, equivalent=True)
    assert clock.credit(samples=64, equivalent=40.5) == 40.5
    assert clock.credit(samples=64, equivalent=0) == 0.0


def test_an_unplanned_clock_credits_samples():
    assert _clock().credit(samples=16, equivalent=3.0) == 16.0


def test_fraction_is_the_share_of_the_plan_capped_at_one():
    clock = _clock()
    clock.plan(800)
    assert clock.fraction(0.0) == 0.0
    assert clock.fraction(200.0) == 0.25
    assert clock.fraction(800.0) == 1.0
    assert clock.fraction(2400.0) == 1.0


def test_state_dict_holds_the_plan():
    clock = _clock()
    clock.plan(800, equivalent=True)
    assert clock.state_dict() == {"total": 800.0, "equivalent": True}
    clock.plan(2.5)
    assert clock.state_dict() == {"total": 2.5, "equivalent": False}


def test_equivalent_is_stored_as_a_bool():
    clock = _clock()
    clock.plan(100, equivalent=1)
    assert clock.equivalent is True


@pytest.mark.parametrize("total", [0, -1, 0.0, -0.5, math.inf, -math.inf, math.nan, True, False, "100", [100]])
def test_a_plan_must_be_a_positive_finite_number(total):
    clock = _clock()
    with pytest.raises(deba.DebaConfigError) as info:
        clock.plan(total)
    assert info.value.problems[0].field == "total"


def test_a_refused_plan_leaves_the_clock_as_it_was():
    clock = _clock()
    clock.plan(500, equivalent=True)
    with pytest.raises(deba.DebaConfigError):
        clock.plan(-3)
    assert clock.state_dict() == {"total": 500.0, "equivalent": True}
    assert clock.timing.total == 500.0
