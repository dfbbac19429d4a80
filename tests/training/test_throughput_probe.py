"""The start-up throughput probe: which sizes it times, how many passes, what it records, when it stops.

The probe reads its clock through ``time.perf_counter`` in ``deba.training.throughput_probe``; here
that clock only moves when ``make_batch`` is called, by an amount the test chooses, so every pass
takes a known time and the expected samples/s and cut-offs are worked out by hand. Covered
elsewhere, not repeated: the model left alone after a normal probe and the share cut-off on a
1-s-per-reading clock and argument validation (test_budget.py), the device waits (test_batching.py).
"""

from __future__ import annotations

import types

import pytest
import torch

import deba.training.throughput_probe as probe_module
from deba.control.throughput import ThroughputModel
from deba.training.throughput_probe import (PROBE_REPEATS, candidate_sizes, passes_per_size, probe_throughput,
                                            startup_sizes)

# Sizes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, expected", [
    ((32, 1024, 8), [32, 64, 128, 256]),        # doubling, 4 sizes at most
    ((30, 1000, 8), [24, 48, 96, 192]),         # the start rounded down onto the grid
    ((32, 100, 8), [32, 64, 96]),               # 128 is above max_batch: 100, on the grid 96, then nothing larger
    ((64, 40, 8), [40]),                        # max_batch below the start
    ((1, 10**6, 1), [1, 2, 4, 8]),
    ((4, 100, 8), []),                          # below one grid step: no size on the grid
])
def test_candidate_sizes_double_on_the_grid_within_max_batch(args, expected):
    assert candidate_sizes(*args) == expected


def test_candidate_sizes_count():
    assert candidate_sizes(1, 10**6, 1, count=6) == [1, 2, 4, 8, 16, 32]
    assert candidate_sizes(16, 10**6, 16, count=1) == [16]
    assert candidate_sizes(16, 10**6, 16, count=0) == []
    sizes = candidate_sizes(24, 5000, 8, count=20)
    assert sizes[-1] == 5000 - 5000 % 8 and all(b % 8 == 0 for b in sizes), "up to max_batch, all on the grid"


@pytest.mark.parametrize("args, expected", [
    ((32, 200, 8), [16, 32, 64, 128, 200]),
    ((33, 1000, 1), [17, 33, 66, 132, 264]),          # half of an odd start rounded up
    ((48, 400, 8, 4), [24, 48, 96, 192, 384]),        # 4 ranks: the half, 24, is 6 per rank
    ((40, 400, 8, 8), [24, 40, 80, 160, 320]),        # 20 is not a multiple of 8 ranks: rounded up to 24
    ((6, 100, 2, 4), [6, 12, 24, 48]),                # 3 samples for 4 ranks: no half
    ((8, 100, 4, 4), [4, 8, 16, 32, 64]),             # one sample per rank is a half
])
def test_startup_sizes_are_the_half_then_the_candidates(args, expected):
    assert startup_sizes(*args) == expected


def test_passes_per_size_is_the_repeats_but_at_least_a_warm_up_and_one_timed():
    assert passes_per_size(5) == 5 and passes_per_size(2) == 2
    assert passes_per_size(1) == passes_per_size(0) == 2
    assert passes_per_size() == max(2, PROBE_REPEATS)


# Probing on a clock the test drives ---------------------------------------------------------------


class Clock:
    """A clock that moves only when a batch is made: by ``seconds(n, k)`` for the k-th batch of n."""

    def __init__(self, seconds):
        self.now = 1000.0
        self.seconds = seconds
        self.made: list[int] = []

    def perf_counter(self) -> float:
        return self.now

    def make_batch(self, x, y):
        def make(n):
            self.now += self.seconds(n, self.made.count(n))
            self.made.append(n)
            return x[:n], y[:n]
        return make


@pytest.fixture
def data():
    torch.manual_seed(0)
    return torch.randn(256, 4), torch.randint(0, 2, (256,))


def run(monkeypatch, data, sizes, seconds, model=None, **kw):
    clock = Clock(seconds)
    monkeypatch.setattr(probe_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    model = model or torch.nn.Linear(4, 2)
    micro: list[int] = []

    def forward_loss(batch):
        micro.append(len(batch[0]))
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    tm = kw.pop("throughput", None) or ThroughputModel()
    out = probe_throughput(model, forward_loss, clock.make_batch(*data), sizes, tm, **kw)
    return out, tm, clock, micro


def per_sample(rate):
    """Each pass of n samples takes n / rate seconds."""
    return lambda n, k: n / rate


def test_the_warm_up_pass_is_dropped_and_the_median_of_the_timed_ones_kept(monkeypatch, data):
    timed = {16: [0.2, 0.6, 0.4], 32: [0.3, 0.1, 0.2]}
    out, tm, clock, _ = run(monkeypatch, data, [16, 32], lambda n, k: 100.0 if k == 0 else timed[n][k - 1],
                            repeats=4, max_seconds=1e9)
    assert clock.made == [16] * 4 + [32] * 4, "4 passes per size, each assembling its batch"
    assert out == pytest.approx({16: 16 / 0.4, 32: 32 / 0.2})
    state = tm.state_dict()
    assert {b: pytest.approx(ts) for b, ts in state["probe"].items()} == {"16": timed[16], "32": timed[32]}
    assert state["times"] == {}, "probe times are kept apart from training times"
    assert tm.measured() == pytest.approx(out) and tm.is_measured(16) and tm.is_measured(32)


def test_one_repeat_still_runs_a_warm_up_and_times_one_pass(monkeypatch, data):
    out, tm, clock, _ = run(monkeypatch, data, [8], lambda n, k: 50.0 if k == 0 else 0.5, repeats=1, max_seconds=1e9)
    assert clock.made == [8, 8] and out == pytest.approx({8: 16.0})
    assert tm.state_dict()["probe"] == {"8": [pytest.approx(0.5)]}


def test_the_probe_feeds_predictions_at_sizes_it_did_not_time(monkeypatch, data):
    # pass times 0.1 + 0.001 n: t(16) = 0.116, t(32) = 0.132, so t(24) = 0.124 and T(64) <= T(32)
    out, tm, _, _ = run(monkeypatch, data, [16, 32], lambda n, k: 0.1 + 0.001 * n, max_seconds=1e9)
    assert tm.samples_per_second(24) == pytest.approx(24 / 0.124)
    assert tm.samples_per_second(64) == pytest.approx(32 / 0.132)


def test_a_fixed_table_is_not_changed_by_the_probe(monkeypatch, data):
    fixed = ThroughputModel({16: 10.0, 32: 20.0})
    out, tm, _, _ = run(monkeypatch, data, [16, 32], per_sample(100.0), max_seconds=1e9, throughput=fixed)
    assert out == pytest.approx({16: 100.0, 32: 100.0}), "the probe still reports what it timed"
    assert tm.measured() == {16: 10.0, 32: 20.0}


def test_no_sizes_nothing_timed(monkeypatch, data):
    out, tm, clock, _ = run(monkeypatch, data, [], per_sample(100.0))
    assert out == {} and clock.made == [] and tm.measured() == {}


# Time cut-offs --------------------------------------------------------------------------------------

# At 100 samples/s with 3 passes a size of n costs 0.03 n s: after 16, 32, 64, 128 the probe has
# spent 0.48, 1.44, 3.36 and 7.2 s.
SIZES = [16, 32, 64, 128]


@pytest.mark.parametrize("max_seconds, expected", [
    (10.0, SIZES),
    (5.0, SIZES),          # crosses 5 s during 128, which is timed in full
    (2.0, [16, 32, 64]),
    (1.0, [16, 32]),
    (0.0, [16]),           # the check is after a size: the first is always timed
])
def test_max_seconds_stops_after_the_size_that_crosses_it(monkeypatch, data, max_seconds, expected):
    out, tm, _, _ = run(monkeypatch, data, SIZES, per_sample(100.0), max_seconds=max_seconds)
    assert list(out) == expected and sorted(tm.measured()) == expected


@pytest.mark.parametrize("start, expected", [(32, [16, 32]), (64, [16, 32, 64]), (128, SIZES)])
def test_sizes_up_to_the_start_are_always_timed(monkeypatch, data, start, expected):
    out, _, _, _ = run(monkeypatch, data, SIZES, per_sample(100.0), max_seconds=0.0, start=start)
    assert list(out) == expected


def test_the_run_share_and_max_seconds_the_smaller_limit_wins(monkeypatch, data):
    # T(16) = 100/s: a share of 1 % of 20,000 samples is 0.01 x 20,000 / 100 = 2 s
    def probe(**kw):
        return list(run(monkeypatch, data, SIZES, per_sample(100.0), start=16, **kw)[0])

    assert probe(max_seconds=1e9, run_samples=20_000, run_share=0.01) == [16, 32, 64]
    assert probe(max_seconds=1.0, run_samples=20_000, run_share=0.01) == [16, 32], "max_seconds is smaller"
    assert probe(max_seconds=1e9, run_samples=20_000, run_share=0.05) == SIZES, "10 s: all"
    assert probe(max_seconds=1e9, run_samples=20_000, run_share=0.0) == [16], "no share: only the start"


def test_the_share_is_priced_at_the_starts_own_throughput(monkeypatch, data):
    # passes at 16 take 0.5 s (T(16) = 32/s), larger ones 0.01 n s. After 16: 1.5 s, after 32: 2.46 s,
    # after 64: 4.38 s. A share of 1 % of 32,000 samples at 32/s is 10 s: every size (8.22 s in all);
    # priced at T(128) = 100/s it would be 3.2 s and stop after 64.
    out, _, _, _ = run(monkeypatch, data, SIZES, lambda n, k: 0.5 if n == 16 else n / 100.0, start=16,
                       max_seconds=1e9, run_samples=32_000, run_share=0.01)
    assert list(out) == SIZES


def test_run_samples_without_a_start_sets_no_limit(monkeypatch, data):
    out, _, _, _ = run(monkeypatch, data, SIZES, per_sample(100.0), max_seconds=1e9, run_samples=0)
    assert list(out) == SIZES


# The memory cap and the model -----------------------------------------------------------------------


def test_above_the_cap_each_pass_runs_as_micro_batches_of_at_most_the_cap(monkeypatch, data):
    out, _, clock, micro = run(monkeypatch, data, [8, 40], per_sample(100.0), cap=16, repeats=3, max_seconds=1e9)
    assert clock.made == [8] * 3 + [40] * 3, "whole batches are assembled; the cap splits them"
    assert micro == [8] * 3 + [14, 13, 13] * 3, "40 as three near-equal micro-batches of at most 16"
    assert out == pytest.approx({8: 100.0, 40: 100.0}), "samples/s of the global batch"


def test_a_failing_probe_still_leaves_the_model_and_rng_as_found(monkeypatch, data):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Dropout(0.5),
                                torch.nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    clock = Clock(per_sample(100.0))
    monkeypatch.setattr(probe_module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    calls = []

    def forward_loss(batch):
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])  # moves BN statistics, draws dropout
        calls.append(len(batch[0]))
        if len(calls) == 4:
            raise RuntimeError("boom")
        return loss

    with pytest.raises(RuntimeError, match="boom"):
        probe_throughput(model, forward_loss, clock.make_batch(*data), [16, 32], ThroughputModel(), max_seconds=1e9)
    assert calls == [16, 16, 16, 32]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "weights and BN statistics"
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
