"""RunBudget: what it counts, when it is spent (with and without owning the stop), the share done, why it stopped.

tests/training/test_run.py covers the sample-cap boundary and the three stop reasons at one point
each; this file covers the rest of the rule.
"""

from __future__ import annotations

import dataclasses

import pytest

import deba
from deba.training.budget import SAMPLE_CAP, RunBudget


def test_the_default_budget_has_no_known_length_and_never_stops():
    b = RunBudget()
    assert (b.total, b.equivalent, b.owned) == (None, False, True)
    assert not b.spent(10**9, 10**9)
    assert b.share_done(10**9, 10**9) == 0.0


# Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, -1, True, False, 1.5, 100.0, "100"])
def test_total_must_be_an_int_from_one_or_none(total):
    with pytest.raises(deba.DebaConfigError) as info:
        RunBudget(total=total)
    assert info.value.fields == ["budget.total"]


@pytest.mark.parametrize("total", [1, 640, None])
def test_a_valid_total_is_kept(total):
    assert RunBudget(total=total).total == total


def test_an_owned_equivalent_budget_needs_a_known_length():
    with pytest.raises(deba.DebaConfigError) as info:
        RunBudget(total=None, equivalent=True)
    assert info.value.fields == ["budget"]


def test_an_equivalent_budget_the_framework_stops_may_have_no_length():
    b = RunBudget(total=None, equivalent=True, owned=False)
    assert not b.spent(10**6, 10**6) and b.share_done(10**6, 10**6) == 0.0


def test_a_budget_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunBudget(100).total = 200


# Progress ------------------------------------------------------------------------------------


def test_progress_counts_samples_on_a_strict_budget_and_equivalent_samples_otherwise():
    assert RunBudget(1000).progress(samples=600, equivalent_samples=450.0) == 600.0
    assert isinstance(RunBudget(1000).progress(samples=600, equivalent_samples=450.0), float)
    assert RunBudget(1000, equivalent=True).progress(samples=600, equivalent_samples=450.0) == 450.0


def test_progress_does_not_depend_on_ownership_or_a_known_length():
    assert RunBudget(None).progress(7, 3.5) == 7.0
    assert RunBudget(1000, equivalent=True, owned=False).progress(7, 3.5) == 3.5


# Spent ---------------------------------------------------------------------------------------


def test_a_strict_budget_is_spent_at_its_total_samples():
    b = RunBudget(500)
    assert not b.spent(499, 10**6), "a strict budget ignores the equivalent samples"
    assert b.spent(500, 0.0)
    assert b.spent(501, 0.0)


def test_an_equivalent_budget_is_spent_at_its_total_equivalent_samples():
    b = RunBudget(500, equivalent=True)
    assert not b.spent(800, 499.9)
    assert b.spent(800, 500.0)
    assert b.spent(10, 600.0)


def test_the_sample_cap_is_a_multiple_of_the_total():
    assert SAMPLE_CAP == 4
    b = RunBudget(250, equivalent=True)
    assert not b.spent(999, 1.0)
    assert b.spent(1000, 1.0)


def test_the_sample_cap_does_not_apply_to_a_strict_budget():
    # a strict budget is spent at its total samples, far below the cap; the cap is the equivalent clock's bound
    b = RunBudget(250)
    assert b.spent(250, 0.0)
    assert b.stop_reason(SAMPLE_CAP * 250, 0.0) == "max_samples"


def test_a_budget_deba_does_not_own_is_never_spent():
    for b in (RunBudget(100, owned=False), RunBudget(100, equivalent=True, owned=False)):
        assert not b.spent(100, 100.0)
        assert not b.spent(SAMPLE_CAP * 100 * 10, 10**6), "not even past the sample cap"


# Share done ----------------------------------------------------------------------------------


def test_share_done_is_progress_over_total_capped_at_one():
    b = RunBudget(400)
    assert b.share_done(0, 0.0) == 0.0
    assert b.share_done(100, 999.0) == 0.25
    assert b.share_done(400, 0.0) == 1.0
    assert b.share_done(1200, 0.0) == 1.0


def test_share_done_on_an_equivalent_budget_reads_the_equivalent_samples():
    b = RunBudget(400, equivalent=True)
    assert b.share_done(1000, 100.0) == 0.25
    # the cap stops the run but the share done stays the equivalent progress
    assert b.share_done(SAMPLE_CAP * 400, 100.0) == 0.25


def test_share_done_is_known_when_the_framework_owns_the_stop():
    # total then only sizes the share timing, so its share still counts
    assert RunBudget(400, owned=False).share_done(300, 0.0) == 0.75


# Stop reason ---------------------------------------------------------------------------------


def test_a_strict_budget_always_stops_on_max_samples():
    assert RunBudget(100).stop_reason(100, 0.0) == "max_samples"
    assert RunBudget(100).stop_reason(150, 500.0) == "max_samples"


def test_an_equivalent_budget_that_reached_its_total_stopped_on_it():
    b = RunBudget(100, equivalent=True)
    assert b.stop_reason(250, 100.0) == "equivalent_budget", "exactly the total"
    # the cap and the total reached together: the total is the reason
    assert b.stop_reason(SAMPLE_CAP * 100, 130.0) == "equivalent_budget"


def test_an_equivalent_budget_short_of_its_total_stopped_on_the_cap():
    b = RunBudget(100, equivalent=True)
    assert b.stop_reason(SAMPLE_CAP * 100, 99.9) == "sample_cap"
    assert b.stop_reason(SAMPLE_CAP * 100 + 50, 0.0) == "sample_cap"


def test_spent_and_stop_reason_agree_along_an_equivalent_run():
    b = RunBudget(100, equivalent=True)
    # each step: 40 samples worth 8 equivalent samples; the cap (4 * 100 = 400 samples) comes at
    # step 10 with 80 equivalent samples, before the total (100) would at step 13
    samples, eq, step = 0, 0.0, 0
    while not b.spent(samples, eq):
        samples, eq, step = samples + 40, eq + 8.0, step + 1
    assert (step, samples, eq) == (10, 400, 80.0)
    assert b.stop_reason(samples, eq) == "sample_cap"
