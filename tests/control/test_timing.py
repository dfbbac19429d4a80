"""When the scheduler may decide: counted timing (steps and intervals) against timing as shares of a run.

Every boundary below is worked out by hand from the docstrings: a counted interval is full at
``profile.interval`` steps, the warm-up lasts ``warmup`` intervals, the cooldown blocks the
``cooldown`` intervals that close after a change; a share interval is full once the clock moved
``interval * total``, the warm-up ends at ``warmup * total``, the cooldown lasts ``cooldown * total``
after the change, and the freeze starts at ``(1 - freeze) * total``.
"""

from __future__ import annotations

import pytest

import deba
from deba.control.state import SchedulerState
from deba.control.timing import CountedTiming, ShareTiming, Timing, select_timing
from deba.profiles.schema import RunShares

BASE = dict(name="timing-test", family="generic", min_batch=8, max_batch=512, initial_batch=32, granularity=8,
            growth_factor=2.0, shrink_factor=2.0, increase_above=0.6, decrease_below=0.3, window=4)
SHARES = RunShares(warmup=0.1, interval=0.02, cooldown=0.05, freeze=0.2)
TOTAL = 2000.0  # warm-up ends at 200, an interval is 40, a cooldown 100, the freeze starts at 1600


def _profile(**kw) -> deba.ArchitectureProfile:
    return deba.ArchitectureProfile(**{**BASE, "interval": 4, "warmup": 3, "cooldown": 2, **kw})


def _state(**kw) -> SchedulerState:
    return SchedulerState(batch_size=32, **kw)


# Counted timing ------------------------------------------------------------------------------


def test_a_counted_interval_is_full_at_the_profiles_step_count():
    timing = CountedTiming(_profile(interval=4))
    s = _state()
    assert [timing.interval_full(s, steps=n) for n in (0, 1, 3, 4, 5)] == [False, False, False, True, True]
    assert timing.collecting(s, steps=3) == "collecting 3/4 steps of the interval"
    assert not timing.epoch_closes_interval


def test_an_epoch_interval_is_closed_by_the_epoch_never_by_steps():
    timing = CountedTiming(_profile(interval="epoch"))
    s = _state()
    assert timing.epoch_closes_interval
    assert not any(timing.interval_full(s, steps=n) for n in (1, 10, 10_000))
    assert timing.collecting(s, steps=123) == "collecting until the epoch ends"


def test_the_counted_warmup_lasts_exactly_warmup_intervals():
    timing = CountedTiming(_profile(warmup=3))
    on = [timing.in_warmup(_state(intervals=n)) for n in range(6)]
    assert on == [True, True, True, False, False, False]
    assert timing.warmup_reason(_state(intervals=1)) == "warmup 1/3 intervals"
    assert not CountedTiming(_profile(warmup=0)).in_warmup(_state())


def test_the_counted_cooldown_blocks_the_cooldown_intervals_after_a_change():
    timing = CountedTiming(_profile(warmup=0, cooldown=2))
    assert not timing.in_cooldown(_state(intervals_since_change=None)), "no change yet: no cooldown"
    # 0 right at the change, then 1 and 2 as the next two intervals close: blocked; the third may change.
    blocked = [timing.in_cooldown(_state(intervals=9, intervals_since_change=n)) for n in range(5)]
    assert blocked == [True, True, True, False, False]
    assert timing.cooldown_reason(_state(intervals_since_change=1)) == "cooldown 1/2 intervals after a change"


def test_a_zero_cooldown_still_blocks_the_interval_of_the_change_itself():
    timing = CountedTiming(_profile(warmup=0, cooldown=0))
    assert timing.in_cooldown(_state(intervals_since_change=0))
    assert not timing.in_cooldown(_state(intervals_since_change=1))


def test_counted_timing_never_freezes():
    timing = CountedTiming(_profile())
    assert not timing.in_freeze(_state(intervals=10**6, progress=10**9))
    assert timing.freeze_reason() == "no growth"


def test_blocked_names_the_warmup_before_the_cooldown_and_nothing_once_both_are_over():
    timing = CountedTiming(_profile(warmup=3, cooldown=2))
    assert timing.blocked(_state(intervals=1, intervals_since_change=0)) == "warmup 1/3 intervals"
    assert timing.blocked(_state(intervals=5, intervals_since_change=2)) == "cooldown 2/2 intervals after a change"
    assert timing.blocked(_state(intervals=5, intervals_since_change=3)) is None
    assert timing.blocked(_state(intervals=3)) is None


def test_counted_timing_ignores_the_budget_clock():
    timing = CountedTiming(_profile(interval=4, warmup=3))
    s = _state(progress=1e9, interval_start=0.0, intervals=0)
    assert not timing.interval_full(s, steps=1)
    assert timing.in_warmup(s)


# Timing as shares of the run ------------------------------------------------------------------


def test_a_share_interval_is_full_once_the_clock_moved_its_share_whatever_the_step_count():
    timing = ShareTiming(SHARES, TOTAL)
    assert not timing.interval_full(_state(progress=139.0, interval_start=100.0), steps=10**6)
    assert timing.interval_full(_state(progress=140.0, interval_start=100.0), steps=1)
    assert timing.interval_full(_state(progress=500.0, interval_start=100.0), steps=0)
    assert timing.collecting(_state(progress=120.0, interval_start=100.0), steps=7) == \
        "collecting 1.00%/2.00% of the run for the interval"
    assert not timing.epoch_closes_interval


def test_the_share_warmup_ends_at_its_share_of_the_total():
    timing = ShareTiming(SHARES, TOTAL)
    assert timing.in_warmup(_state(progress=0.0))
    assert timing.in_warmup(_state(progress=199.0))
    assert not timing.in_warmup(_state(progress=200.0))
    assert timing.warmup_reason(_state(progress=50.0)) == "warmup 2.5%/10% of the run"
    assert not ShareTiming(RunShares(warmup=0.0, interval=0.02, cooldown=0.05, freeze=0.2), TOTAL).in_warmup(_state())


def test_share_timing_ignores_interval_counts():
    timing = ShareTiming(SHARES, TOTAL)
    assert timing.in_warmup(_state(progress=10.0, intervals=10**6))
    assert not timing.in_cooldown(_state(progress=900.0, intervals_since_change=0, change_at=None))


def test_the_share_cooldown_lasts_its_share_after_the_change():
    timing = ShareTiming(SHARES, TOTAL)
    assert not timing.in_cooldown(_state(progress=500.0, change_at=None)), "no change yet"
    assert timing.in_cooldown(_state(progress=500.0, change_at=500.0))
    assert timing.in_cooldown(_state(progress=599.0, change_at=500.0))
    assert not timing.in_cooldown(_state(progress=600.0, change_at=500.0))
    assert timing.cooldown_reason(_state(progress=550.0, change_at=500.0)) == \
        "cooldown 2.5%/5% of the run after a change"


def test_the_freeze_covers_the_final_share_of_the_run():
    timing = ShareTiming(SHARES, TOTAL)
    assert not timing.in_freeze(_state(progress=1599.0))
    assert timing.in_freeze(_state(progress=1600.0))
    assert timing.in_freeze(_state(progress=2500.0)), "past the budget the batch still never grows"
    assert timing.freeze_reason() == "final 20% of the run: no growth"
    assert not ShareTiming(RunShares(warmup=0.1, interval=0.02, cooldown=0.05, freeze=0.0), TOTAL).in_freeze(_state(progress=1999.0))


def test_share_blocked_orders_warmup_then_cooldown_and_leaves_the_freeze_to_growth():
    timing = ShareTiming(SHARES, TOTAL)
    assert timing.blocked(_state(progress=100.0, change_at=90.0)) == "warmup 5.0%/10% of the run"
    assert timing.blocked(_state(progress=300.0, change_at=250.0)).startswith("cooldown 2.5%/5%")
    assert timing.blocked(_state(progress=400.0, change_at=250.0)) is None
    # The freeze refuses growth only; it does not block every change.
    assert timing.blocked(_state(progress=1900.0)) is None


# Choosing the mode ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shares, total, mode",
    [
        (SHARES, 5000.0, ShareTiming),
        (SHARES, None, CountedTiming),
        (None, 5000.0, CountedTiming),
        (None, None, CountedTiming),
    ],
)
def test_select_timing_uses_shares_only_for_a_planned_run_of_a_profile_with_shares(shares, total, mode):
    timing = select_timing(_profile(shares=shares), total)
    assert type(timing) is mode
    assert isinstance(timing, Timing)


def test_the_selected_share_timing_uses_the_profiles_shares_and_the_planned_total():
    timing = select_timing(_profile(shares=SHARES), TOTAL)
    assert timing.shares == SHARES and timing.total == TOTAL
    assert timing.in_warmup(_state(progress=199.0)) and not timing.in_warmup(_state(progress=200.0))


def test_the_selected_counted_timing_reads_the_profiles_counts():
    timing = select_timing(_profile(interval=6, warmup=1, shares=SHARES), None)
    assert not timing.interval_full(_state(), steps=5) and timing.interval_full(_state(), steps=6)
    assert timing.in_warmup(_state(intervals=0)) and not timing.in_warmup(_state(intervals=1))


def test_timing_keeps_nothing_of_its_own_between_calls():
    timing = ShareTiming(SHARES, TOTAL)
    s = _state(progress=150.0)
    assert timing.in_warmup(s)
    s.progress = 250.0
    assert not timing.in_warmup(s)
    s.progress = 150.0  # a restored, earlier state reads as the earlier state
    assert timing.in_warmup(s)
