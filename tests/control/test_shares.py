"""Timing as shares of the run: warm-up, interval, cooldown and a final freeze, when the budget is known."""

from __future__ import annotations

import pytest

import deba
from helpers import echo_scheduler, obs

SHARES = {"warmup": 0.1, "interval": 0.02, "cooldown": 0.25, "freeze": 0.2}
PROFILE = deba.load_profile("mlp").replace(policy="stability", lr_scaling="none", interval=5, window=3, min_samples=2,
                                           warmup=0, cooldown=0, max_batch=2048, shares=SHARES)
TOTAL = 20_000


def _drive(sched, loss_at, total=TOTAL):
    """Steps until ``total`` samples; ``loss_at(progress)`` sets the loss (score = 1 - loss)."""
    events = []
    while sched.state.progress < total:
        b = sched.batch_size
        sched.advance(b, 0.5 * b)
        d = sched.observe(obs(loss_at(sched.state.progress), b))
        events.append((sched.state.progress, d))
    return events


def test_decisions_follow_shares_of_the_budget_not_step_counts():
    sched = echo_scheduler(PROFILE)
    sched.plan(TOTAL)
    events = _drive(sched, lambda p: 0.0)
    decided = [(p, d) for p, d in events if d.decided]
    assert decided and all(p >= SHARES["warmup"] * TOTAL for p, d in decided if d.reason.startswith(("grow", "score")))
    first = next(p for p, d in events if d.decided)
    assert SHARES["interval"] * TOTAL <= first < SHARES["interval"] * TOTAL + PROFILE.initial_batch
    changes = [(p, d) for p, d in events if d.changed]
    assert len(changes) >= 2 and changes[0][0] >= SHARES["warmup"] * TOTAL
    for (p1, _), (p2, _) in zip(changes, changes[1:]):
        assert p2 - p1 >= SHARES["cooldown"] * TOTAL
    # steps per interval shrink as the batch grows: the interval is a share of samples, not steps
    assert all(d.action != "grow" for p, d in events if p > (1 - SHARES["freeze"]) * TOTAL)
    assert any("final 20% of the run" in d.reason for _, d in decided)


def test_the_freeze_still_shrinks_and_an_unplanned_run_counts_steps():
    sched = echo_scheduler(PROFILE)
    sched.plan(TOTAL)
    events = _drive(sched, lambda p: 0.0 if p < 0.85 * TOTAL else 1.0)
    assert any(d.action in ("shrink", "rollback") and d.changed for p, d in events if p > 0.85 * TOTAL)
    counted = echo_scheduler(PROFILE)  # no plan: the profile's counts (an interval = 5 steps)
    ds = [counted.observe(obs(0.0, counted.batch_size)) for _ in range(10)]
    assert [d.decided for d in ds].count(True) == 2 and ds[4].decided


def test_the_equivalent_clock_and_state_round_trip():
    a = echo_scheduler(PROFILE)
    a.plan(TOTAL / 2, equivalent=True)  # advance() credits half of each step's samples
    _drive(a, lambda p: 0.0, total=TOTAL / 4)
    b = echo_scheduler(PROFILE)
    b.load_state_dict(a.state_dict())
    assert b.state.progress == a.state.progress and b.in_warmup == a.in_warmup
    tail_a = [d.to_dict() for _, d in _drive(a, lambda p: 0.0, total=TOTAL / 2)]
    tail_b = [d.to_dict() for _, d in _drive(b, lambda p: 0.0, total=TOTAL / 2)]
    assert tail_a == tail_b and any(d["changed"] for d in tail_a)


@pytest.mark.parametrize("total", [0, -5, float("nan"), True, "10"])
def test_plan_refuses_a_budget_that_is_not_positive(total):
    with pytest.raises(deba.DebaConfigError, match="total"):
        echo_scheduler(PROFILE).plan(total)


def test_shares_are_validated():
    with pytest.raises(deba.DebaConfigError, match="freeze"):
        PROFILE.replace(shares={"warmup": 0.5, "freeze": 0.5})
    with pytest.raises(deba.DebaConfigError, match="interval"):
        PROFILE.replace(shares={"interval": 0.0})
