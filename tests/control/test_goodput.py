"""The goodput policy: the gate, how far it grows, rule 9 (never to a slower batch), and the scheduler with it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import deba
from deba.control.goodput import GoodputPolicy, efficiency
from deba.control.policy import PolicySignals
from deba.control.throughput import ThroughputModel
from helpers import echo_scheduler, obs, profiles, rising_throughput

MLP = deba.load_profile("mlp").replace(policy="goodput")


def signals(table, noise=1000.0, b0=32):
    return PolicySignals(initial_batch=b0, noise_scale=noise, noise_scale_low=noise, throughput=ThroughputModel(table))


def test_efficiency_is_one_at_the_start_and_falls_with_the_batch():
    assert efficiency(32, 100, 32) == 1.0
    assert efficiency(64, 100, 32) < 1.0 < efficiency(16, 100, 32)


def test_grows_to_the_best_goodput_when_larger_batches_run_faster_and_noise_is_large():
    table = {32: 1000.0, 40: 1200.0, 48: 1400.0, 56: 1500.0, 64: 1550.0}
    move = GoodputPolicy(MLP).propose(32, 0.9, signals(table, noise=5000.0))
    assert move.action == "grow" and move.batch_size == 64 and "goodput" in move.reason


def test_holds_when_the_noise_is_small_so_a_larger_batch_buys_nothing():
    table = {32: 1000.0, 48: 1100.0, 64: 1200.0}
    move = GoodputPolicy(MLP).propose(32, 0.9, signals(table, noise=10.0))
    assert move.action == "hold" and "gain" in move.reason


def test_holds_without_a_noise_estimate_or_a_throughput_measurement():
    table = {32: 1000.0, 64: 3000.0}
    none = PolicySignals(initial_batch=32, throughput=ThroughputModel(table))
    assert GoodputPolicy(MLP).propose(32, 0.99, none).action == "hold"
    assert "noise" in GoodputPolicy(MLP).propose(32, 0.99, none).reason
    unmeasured = PolicySignals(initial_batch=32, noise_scale=1e4, noise_scale_low=1e4, throughput=ThroughputModel())
    assert GoodputPolicy(MLP).propose(32, 0.99, unmeasured).action == "hold"


def test_gate_shut_shrinks_and_neutral_holds():
    s = signals({32: 1000.0, 64: 3000.0}, noise=1e4)
    p = GoodputPolicy(MLP)
    assert p.propose(64, MLP.decrease_below - 0.01, s).action == "shrink"
    assert p.propose(64, (MLP.decrease_below + MLP.increase_above) / 2, s).action == "hold"


def test_a_shut_gate_stops_at_the_starting_batch_unless_the_profile_allows_more():
    s = signals({16: 800.0, 24: 900.0, 32: 1000.0, 64: 3000.0}, noise=1e4, b0=32)
    shut = MLP.decrease_below - 0.01
    floored = GoodputPolicy(MLP)
    held = floored.propose(32, shut, s)
    assert held.action == "hold" and held.batch_size == 32 and "shrink_below_start" in held.reason
    assert floored.propose(40, shut, s).batch_size == 32 == floored.shrink_floor(32), "down to B0, no further"
    assert 32 < floored.propose(64, shut, s).batch_size < 64, "above B0 a shut gate shrinks as before"
    assert floored.propose(24, shut, s).batch_size == 24, "below B0 (after a non-finite shrink) it holds"
    free = GoodputPolicy(MLP.replace(shrink_below_start=True))
    below = free.propose(32, shut, s)
    assert below.action == "shrink" and MLP.min_batch <= below.batch_size < 32
    assert free.shrink_floor(32) == MLP.min_batch


def test_shrink_below_start_must_be_a_bool():
    with pytest.raises(deba.DebaConfigError, match="shrink_below_start"):
        MLP.replace(shrink_below_start="yes")
    with pytest.raises(deba.DebaConfigError, match="shrink_below_start"):
        MLP.replace(shrink_below_start=1)


@given(profiles(policy="goodput"), st.integers(0, 50), st.integers(0, 50), st.floats(0, 1), st.booleans())
def test_a_score_shrink_never_goes_below_the_floor(profile, k, j, score, below_start):
    """Without ``shrink_below_start`` no score moves the batch under B0 (or under the batch, if already below)."""
    g = profile.granularity
    sizes = list(range(profile.min_batch, profile.max_batch + 1, g))
    profile = profile.replace(shrink_below_start=below_start)
    batch, b0 = sizes[k % len(sizes)], sizes[j % len(sizes)]
    move = GoodputPolicy(profile).propose(batch, score, signals(rising_throughput(profile), noise=1e4, b0=b0))
    assert move.batch_size in sizes
    if move.action == "shrink":
        assert move.batch_size >= (profile.min_batch if below_start else b0)
    if not below_start:
        assert move.batch_size >= min(batch, b0)


@given(profiles(policy="goodput"), st.integers(0, 50), st.floats(0, 1), st.floats(1.0, 1e5),
       st.floats(0.2, 0.99), st.booleans())
def test_rule9_a_falling_throughput_table_never_grows(profile, k, score, noise, fall, from_table):
    """Rule 9, for every gate state, noise scale and table that falls with B (measured or predicted)."""
    g = profile.granularity
    sizes = list(range(profile.min_batch, profile.max_batch + 1, g))
    batch = sizes[k % len(sizes)]
    table = {b: 1000.0 * fall ** (b / profile.min_batch) for b in (sizes if from_table else sizes[:3])}
    move = GoodputPolicy(profile).propose(batch, score, signals(table, noise=noise, b0=profile.initial_batch))
    assert move.action != "grow", move


@given(profiles(policy="goodput"), st.integers(0, 50), st.floats(0, 1), st.floats(0.0, 1e5))
def test_goodput_moves_are_bounded_on_the_grid_and_monotone_in_the_score(profile, k, score, noise):
    g = profile.granularity
    sizes = list(range(profile.min_batch, profile.max_batch + 1, g))
    batch = sizes[k % len(sizes)]
    s = signals(rising_throughput(profile), noise=noise, b0=profile.initial_batch)
    p = GoodputPolicy(profile)
    move = p.propose(batch, score, s)
    assert move.batch_size in sizes
    if move.action == "grow":
        assert batch + g <= move.batch_size <= max(batch + g, math.floor(batch * profile.growth_factor / g + 1e-9) * g)
    if move.action == "shrink":
        assert move.batch_size >= min(math.floor(batch / profile.shrink_factor / g + 1e-9) * g, batch - g)
    higher = p.propose(batch, min(1.0, score + 0.3), s)
    assert higher.batch_size >= move.batch_size, "rule 4: a higher score never gives a smaller batch"


def _run(profile, table, loss=0.0, steps=400):
    sched = echo_scheduler(profile, throughput=table)
    for _ in range(steps):
        sched.observe(obs(loss, sched.batch_size))
        if profile.interval == "epoch":
            sched.end_epoch()
    return sched


def test_the_scheduler_grows_with_goodput_and_reports_the_noise_scale():
    prof = MLP.replace(weights={"last_loss": 1.0}, tau={"last_loss": 1.0}, warmup=0, cooldown=0, interval=1,
                       window=3, min_samples=2)
    sched = _run(prof, rising_throughput(prof))
    assert sched.batch_size > prof.initial_batch
    d = sched.last_decision
    assert d.noise_scale == pytest.approx(4000.0, rel=1e-6), "B_simple of the helper's measurements"
    state = sched.state_dict()
    assert state["noise"]["count"] > 0 and state["throughput"]["fixed"] is not None


def test_the_scheduler_holds_where_larger_batches_run_slower():
    prof = MLP.replace(weights={"last_loss": 1.0}, tau={"last_loss": 1.0}, warmup=0, cooldown=0, interval=1,
                       window=3, min_samples=2)
    falling = {b: 5000.0 / (1 + b / 100) for b in range(prof.min_batch, prof.max_batch + 1, prof.granularity)}
    sched = _run(prof, falling)
    assert sched.batch_size == prof.initial_batch and sched.changes == 0
    assert "slower" in sched.last_decision.reason


def test_measurement_interval_keeps_the_split_cost_at_half_a_percent():
    prof = MLP
    cheap = deba.BatchScheduler(prof, throughput={16: 1000.0, 32: 1000.0})
    assert cheap.measurement_interval() == 1, "splitting costs nothing: measure every step"
    costly = deba.BatchScheduler(prof, throughput={16: 1000.0, 32: 1300.0})
    k = costly.measurement_interval()
    assert (1300 / 1000 - 1) / k <= 0.005 + 1e-12 < (1300 / 1000 - 1) / (k - 1)
    assert deba.BatchScheduler(prof.replace(policy="stability", lr_scaling="linear")).measurement_interval() is None


def test_an_untimed_half_batch_is_priced_at_its_worst_not_measured_every_10_steps():
    from deba.control.throughput import ThroughputModel

    tm = ThroughputModel()
    sched = deba.BatchScheduler(MLP.starting_at(32), throughput=tm)
    assert sched.measurement_interval() == 10, "nothing timed yet: every 10 steps at the start"
    for _ in range(8):
        tm.record(32, 32 / 1000.0)  # T(32) = 1,000/s measured, T(16) never
    assert tm.samples_per_second(32) is not None and tm.samples_per_second(16) is None
    sched = deba.BatchScheduler(MLP.starting_at(32), throughput=tm)
    assert sched.measurement_interval(split=True) == math.ceil(1.0 / 0.005), "a split as dear as a step: 0.5 %"
    assert sched.measurement_interval(split=True, shadow=True) == math.ceil(1.0 / 0.005), "0.5 x 2"


def test_lr_rules_by_name_and_by_optimizer_family():
    import torch

    from deba.profiles.lr_rule import adascale_gain, lr_factor, optimizer_family

    params = [torch.nn.Parameter(torch.zeros(2))]
    assert optimizer_family(torch.optim.SGD(params, lr=0.1, momentum=0.9)) == "sgd"
    assert optimizer_family(torch.optim.Adam(params)) == optimizer_family(torch.optim.AdamW(params)) == "adam"
    assert optimizer_family(torch.optim.RMSprop(params)) is None
    assert lr_factor("auto", 128, 32, family="adam") == 2.0, "Adam-family: sqrt"
    assert lr_factor("auto", 128, 32, family="sgd", noise_scale=96.0) == pytest.approx(adascale_gain(128, 32, 96.0))
    assert 1.0 < adascale_gain(128, 32, 96.0) < 4.0, "AdaScale lies between none and linear"
    assert lr_factor("auto", 128, 32, family="sgd", noise_scale=None) == 1.0, "no estimate: gain 1"
    prof = MLP.replace(lr_scaling="auto", weights={"last_loss": 1.0}, tau={"last_loss": 1.0}, warmup=0, cooldown=0,
                       interval=1, window=3, min_samples=2)
    sched = echo_scheduler(prof)
    sched.optimizer_family = "sgd"
    for _ in range(50):
        d = sched.observe(obs(0.0, sched.batch_size))
    assert sched.batch_size > prof.initial_batch
    assert d.lr_factor == pytest.approx(adascale_gain(sched.batch_size, prof.initial_batch, d.noise_scale))


def test_throughput_between_and_beyond_measured_sizes_follows_the_nearest_ones():
    from deba.control.throughput import ThroughputModel

    # step times 12.6, 45.6, 107, 260 ms: per-sample cost rises with the batch (a CPU's caches). One
    # line over all four misfits (its intercept would be negative); neighbours do not.
    m = ThroughputModel({32: 2534.0, 64: 1402.0, 128: 1191.0, 256: 985.0})
    assert m.samples_per_second(48) == pytest.approx(48 / ((32 / 2534 + 64 / 1402) / 2))
    assert 1402 < m.samples_per_second(48) < 2534, "between its neighbours"
    assert m.samples_per_second(512) < 985, "beyond the largest: along the last two sizes' line"
    assert m.samples_per_second(16) == pytest.approx(2534.0), "below the smallest: no faster than there"
    m.memory_cap = 128
    assert m.samples_per_second(200) == pytest.approx(1191.0), "beyond the memory cap: the cap's throughput"
