"""Which steps read the full gradient norm, and exact half-batch norms with the reused copy."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import deba
from deba.control.throughput import ThroughputModel
from deba.training.norm_reads import MAX_STRIDE, NormReadPlan
from deba.training.step import StepEngine, loss_of


def test_stride_keeps_the_reads_at_their_share_of_step_time():
    plan = NormReadPlan(share=0.0025)
    assert plan.stride(0.1) == 1, "nothing timed: every step"
    plan.record(0.002)  # 2 ms read, 100 ms step: 2 % -> every 8 steps keeps it at 0.25 %
    assert plan.stride(0.1) == 8
    assert plan.stride(None) == 1 and plan.stride(0.0) == 1
    assert plan.stride(1e-6) == MAX_STRIDE, "capped"
    twin = NormReadPlan()
    twin.load_state_dict(json.loads(json.dumps(plan.state_dict())))
    assert twin.stride(0.1) == 8


def _engine(model: nn.Module, profile: str = "mlp", interval: int = 6) -> StepEngine:
    prof = deba.load_profile(profile).replace(interval=interval, shares=None)
    # Measured throughput: 32 samples take 10 ms, so a 1 ms read is 10 % of a step -> every 16 steps.
    tm = ThroughputModel(skip_after_resize=0)
    for b, t in ((16, 0.008), (32, 0.010), (64, 0.0107)):
        tm.record(b, t)
    tm.record = lambda batch, seconds: None  # keep the table as set
    sched = deba.BatchScheduler(prof, initial_batch=32, throughput=tm)
    # per_sample_norms=False: the general path (split measurement steps every k steps, k > 1 here)
    return StepEngine(model, sched, deba.signals.GradientProbe(model, 8), forward_loss=loss_of(model, nn.functional.cross_entropy),
                      per_sample_norms=False)


def test_large_model_reads_the_norm_on_an_intervals_first_step_and_on_measurement_steps():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    engine = _engine(model)
    engine.norm_plan.record(1e-3)  # pretend the read is costly
    engine.norm_plan.record = lambda seconds: None  # keep it so (real reads of a tiny model are cheap)
    steps = []
    for _ in range(60):
        out = engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,))))
        steps.append(out.obs)
    assert engine._norm_stride() == MAX_STRIDE
    read = [o.grad_norm is not None for o in steps]
    assert 0 < sum(read) < len(read) // 2, "most steps skip the full read"
    for o in steps:
        if o.small_batch is not None:
            assert o.grad_norm is not None, "a measurement step needs |g_B|^2"
    # every interval of 6 steps saw at least one norm
    for start in range(0, 60, 6):
        assert any(read[start:start + 6]), f"interval starting at step {start + 1} has no norm"
    # a skipped read leaves finiteness to the loss: a NaN loss still counts
    bad = engine.run((torch.full((32, 6), float("nan")), torch.randint(0, 3, (32,))))
    assert not bad.finite


def test_decisions_that_do_not_depend_on_timing_read_every_step():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    for profile, table in (("paper", None), ("mlp", {16: 2000.0, 32: 3200.0, 64: 6000.0})):
        prof = deba.load_profile(profile).replace(interval=6, shares=None)
        sched = deba.BatchScheduler(prof, initial_batch=32, throughput=table)
        assert not sched.timing_decides
        engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8),
                            forward_loss=loss_of(model, nn.functional.cross_entropy))
        engine.norm_plan.record(1.0)
        engine.norm_plan.record = lambda seconds: None
        outs = [engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,)))).obs for _ in range(12)]
        assert all(o.grad_norm is not None for o in outs), profile


def test_cheap_reads_happen_every_step():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    engine = _engine(model)
    engine.norm_plan.record(1e-9)
    engine.norm_plan.record = lambda seconds: None
    outs = [engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,)))).obs for _ in range(12)]
    assert all(o.grad_norm is not None for o in outs)


def test_the_interval_aggregate_counts_the_steps_behind_its_norm():
    from deba.signals.interval import IntervalAccumulator

    acc = IntervalAccumulator()
    acc.add(deba.Observation(loss=1.0, batch_size=8, grad_norm=2.0))
    acc.add(deba.Observation(loss=1.0, batch_size=8))
    acc.add(deba.Observation(loss=1.0, batch_size=8, grad_norm=4.0))
    agg = acc.result()
    assert agg.grad_norm == 3.0 and agg.n_steps == 3 and agg.extra["grad_norm_steps"] == 2.0
    from deba.signals.collectors.deviation import GradientNormDeviationCollector, LossDeviationCollector

    assert GradientNormDeviationCollector().steps_behind(agg) == 2
    assert LossDeviationCollector().steps_behind(agg) == 3


@pytest.mark.parametrize("rounds", [1, 3])
def test_increments_are_exact_when_the_copy_is_reused(rounds):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 4))  # 90k weights: the dot path
    probe = deba.signals.GradientProbe(model, 8)
    loss = nn.functional.cross_entropy
    for _ in range(rounds):
        x, y = torch.randn(16, 300), torch.randint(0, 4, (16,))
        grads = []
        for sl in (slice(0, 8), slice(8, 16)):
            model.zero_grad()
            loss(model(x[sl]), y[sl]).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        model.zero_grad()
        probe.reset_increments()
        seen = []
        for sl in (slice(0, 8), slice(8, 16)):
            (loss(model(x[sl]), y[sl])).backward()
            seen.append(probe.increment_sq())
        for got, g in zip(seen, grads):
            want = sum(float((t.double() ** 2).sum()) for t in g)
            assert got == pytest.approx(want, rel=1e-5)
        full = probe.capture()
        want_full = sum(float(((a + b).double() ** 2).sum()) for a, b in zip(*grads)) ** 0.5
        assert full.norm == pytest.approx(want_full, rel=1e-5)


def test_a_nan_gradient_under_a_finite_loss_is_caught_on_a_step_that_skips_the_full_read():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    engine = _engine(model)
    engine.norm_plan.record(1e-3)
    engine.norm_plan.record = lambda seconds: None
    bad = {"on": False}

    def forward_loss(batch):
        hidden = model[:3](batch[0])
        loss = nn.functional.cross_entropy(model[3:](hidden), batch[1])
        if bad["on"]:  # sqrt at 0 in the middle of the net: the value stays finite (0), backward turns NaN
            loss = loss + (hidden.sum() * 0).sqrt()
        return loss

    outs = [engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,))), forward_loss=forward_loss) for _ in range(20)]
    skipped = [i for i, o in enumerate(outs) if o.obs.grad_norm is None]
    assert skipped, "some steps skipped the full read"
    while engine._read_norm_now():  # move to a step that skips the read
        engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,))), forward_loss=forward_loss)
    bad["on"] = True
    out = engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,))), forward_loss=forward_loss)
    assert out.obs.grad_norm is None and math.isfinite(out.obs.loss)
    assert not out.finite, "the NaN reached the input-side layer's gradient, which is checked"
