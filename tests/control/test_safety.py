"""Rule 10: a loss spike or a non-finite step within the cooldown after a growth rolls batch and LR back."""

from __future__ import annotations

import json

import deba
from helpers import echo_scheduler, obs

PROFILE = deba.load_profile("mlp").replace(weights={"last_loss": 1.0}, tau={"last_loss": 1.0}, warmup=0, cooldown=3,
                                           interval=2, window=3, min_samples=2, lr_scaling="linear")


def _grown():
    sched = echo_scheduler(PROFILE)
    for _ in range(20):  # score 0.4: the gate stays neutral while the spike detector learns the level
        assert sched.observe(obs(0.6, sched.batch_size)).action == "hold"
    for _ in range(40):  # then calm: loss 0.1, score 0.9, the gate open
        d = sched.observe(obs(0.1, sched.batch_size))
        if d.action == "grow":
            return sched, d
    raise AssertionError("the calm run never grew")


def test_a_spike_after_a_growth_rolls_batch_and_lr_back():
    sched, grow = _grown()
    d = None
    for loss in (5.0, 5.0, 5.0):
        d = sched.observe(obs(loss, sched.batch_size))
        if d.changed:
            break
    assert d.action == "rollback" and d.batch_size == grow.previous_batch_size and "spike" in d.reason
    assert d.lr_factor == PROFILE.lr_factor(grow.previous_batch_size), "the LR goes back with the batch"
    assert sched.state.grown_from is None and sched.in_cooldown, "a rollback starts a cooldown of its own"


def test_a_non_finite_step_after_a_growth_rolls_back_at_once():
    sched, grow = _grown()
    d = sched.observe(obs(0.0, sched.batch_size, finite=False))
    assert d.action == "rollback" and d.batch_size == grow.previous_batch_size


def test_no_rollback_once_the_cooldown_is_over_and_the_state_keeps_it():
    sched, grow = _grown()
    while sched.in_cooldown:
        sched.observe(obs(0.1, sched.batch_size))
    d = sched.observe(obs(0.0, sched.batch_size, finite=False))
    assert d.action != "rollback"
    again, _ = _grown()
    twin = echo_scheduler(PROFILE)
    twin.load_state_dict(json.loads(json.dumps(again.state_dict())))
    assert twin.state.grown_from == again.state.grown_from is not None
    assert twin.observe(obs(9.0, twin.batch_size)) == again.observe(obs(9.0, again.batch_size))
