"""The noise measurement paths of the step engine: each gives the small estimates it should.

On a tiny linear model every estimate is checked against the gradients computed by hand (each
micro-batch's, half's or sample's own mean-loss gradient).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from deba.signals.per_sample import PerSampleNorms
from deba.training.measurement import (AcrossRanks, MeasurementInterval, MicroBatchRunner, MicroNorm, PerSampleStep,
                                       PlainStep, SampleTally, ShadowHalf, SmallEstimates, SplitStep, pair_with_full,
                                       read_manual)
from deba.training.stopwatch import Stopwatch

N = 6


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    batch = (torch.randn(N, 3), torch.tensor([0, 1, 1, 0, 1, 0]))
    return model, batch


def _grad_sq(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``|g|^2`` of the mean cross-entropy gradient of ``(x, y)``, by hand."""
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return sum(float(g.double().pow(2).sum()) for g in grads)


def _full_grad(model: nn.Module, batch) -> list[torch.Tensor]:
    loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
    return [g.clone() for g in torch.autograd.grad(loss, list(model.parameters()))]


def _assert_full_gradient(model: nn.Module, expected: list[torch.Tensor]) -> None:
    for p, g in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, g, atol=1e-6), "the step's gradient is the full batch's"


def test_plain_step_reads_one_estimate_per_micro_batch():
    model, (x, y) = _setup()
    expected = _full_grad(model, (x, y))
    by_hand = [_grad_sq(model, x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)]
    out = PlainStep(read_norms=True).run((x, y), MicroBatchRunner.for_model(model, cap=2))
    assert out.result.micro_sizes == [2, 2, 2]
    assert out.small.count == 3 and out.small.samples == 6.0
    assert out.small.sq == pytest.approx(sum(by_hand), rel=1e-5)
    assert out.small.small_batch == 2.0
    _assert_full_gradient(model, expected)


def test_plain_step_without_reads_has_no_estimates():
    model, batch = _setup()
    out = PlainStep().run(batch, MicroBatchRunner.for_model(model, cap=2))
    assert out.small is None and out.result.micro_sizes == [2, 2, 2]


def test_split_step_measures_two_halves_and_keeps_the_cap():
    model, (x, y) = _setup()
    expected = _full_grad(model, (x, y))
    halves = _grad_sq(model, x[:3], y[:3]) + _grad_sq(model, x[3:], y[3:])
    runner = MicroBatchRunner.for_model(model, cap=None)
    out = SplitStep(N).run((x, y), runner)
    assert out.result.micro_sizes == [3, 3] and out.result.cap is None, "the split was for measuring"
    assert out.result.micro_sketches == [], "halves give no micro sketches"
    assert out.small == SmallEstimates(pytest.approx(halves, rel=1e-5), 6.0, 2)
    _assert_full_gradient(model, expected)


def test_shadow_half_pairs_the_half_with_the_full_step():
    # Without BatchNorm the pair is exact: the other half's gradient is (n g - h g1) / (n - h).
    model, (x, y) = _setup()
    expected = _full_grad(model, (x, y))
    halves = _grad_sq(model, x[:3], y[:3]) + _grad_sq(model, x[3:], y[3:])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = ShadowHalf(N, []).run((x, y), MicroBatchRunner.for_model(model))
    assert out.result.micro_sizes == [N], "the step itself runs unchanged"
    assert out.small.count == 2 and out.small.samples == 6.0
    assert out.small.sq == pytest.approx(halves, rel=1e-4)
    _assert_full_gradient(model, expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_pair_with_full_by_hand():
    class Probe:  # g1 = (1, 0), g = (0.5, 0.5): |g - g1|^2 = 0.5
        params = [nn.Parameter(torch.zeros(2))]

        def increment_sq(self):
            return 0.5

    Probe.params[0].grad = torch.tensor([0.5, 0.5])
    a, b = pair_with_full(MicroNorm(2, 1.0), 4, Probe())
    # g2 = (4 g - 2 g1) / 2 = (0, 1): |g2|^2 = 1; stored as |(b_i / n) g_i|^2
    assert a == MicroNorm(2, 0.25) and b.size == 2 and b.sq == pytest.approx(0.25)


def test_per_sample_step_gives_one_estimate_per_sample():
    model, (x, y) = _setup()
    expected = _full_grad(model, (x, y))
    by_hand = sum(_grad_sq(model, x[i:i + 1], y[i:i + 1]) for i in range(N))
    out = PerSampleStep(PerSampleNorms(model)).run((x, y), MicroBatchRunner.for_model(model, cap=4))
    assert out.result.micro_sizes == [3, 3]
    assert out.small.count == N and out.small.samples == float(N) and out.small.small_batch == 1.0
    assert out.small.sq == pytest.approx(by_hand, rel=1e-4)
    _assert_full_gradient(model, expected)


def test_per_sample_in_manual_mode():
    model, (x, y) = _setup()
    by_hand = sum(_grad_sq(model, x[i:i + 1], y[i:i + 1]) for i in range(N))
    norms, watch = PerSampleNorms(model), Stopwatch()
    with norms:
        nn.functional.cross_entropy(model(x), y).backward()
    small = read_manual(norms, N, watch)
    assert small.count == N and small.sq == pytest.approx(by_hand, rel=1e-4)
    with norms:
        nn.functional.cross_entropy(model(x), y).backward()
    assert read_manual(norms, N + 1, watch) is None, "a size mismatch reads nothing"


class _TwoRanks:
    """Sums as if a second rank had the same values."""

    def __init__(self):
        self.seen = []

    def sum(self, values):
        self.seen.append(list(values))
        return [2 * v for v in values]


def test_across_ranks_sums_the_estimates_with_the_loss():
    ctx = _TwoRanks()
    loss, n, small = AcrossRanks.combine(ctx, 3.0, 6, SmallEstimates(1.5, 6.0, 1))
    assert ctx.seen == [[3.0, 6.0, 1.5, 6.0, 1.0]], "one reduction: loss, samples, estimates"
    assert (loss, n, small) == (6.0, 12.0, SmallEstimates(3.0, 12.0, 2))
    assert AcrossRanks.combine(ctx, 3.0, 6, None)[2] is None, "no rank had an estimate"


def test_across_ranks_runs_the_local_path_under_no_sync():
    model, batch = _setup()
    entered = []

    class NoSync:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            return None

    out = AcrossRanks(PlainStep(read_norms=True), NoSync).run(batch, MicroBatchRunner.for_model(model, cap=3))
    assert entered == [True] and out.small.count == 2


def test_an_out_of_memory_retry_voids_the_reads():
    model, (x, y) = _setup()
    runner = MicroBatchRunner.for_model(model, cap=4)
    base, calls = runner.forward_loss, {"n": 0}

    def flaky(micro):  # the second micro-batch of the first try runs out of memory
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
        return base(micro)

    runner.forward_loss = flaky
    out = PlainStep(read_norms=True).run((x, y), runner)
    assert out.result.oom_events and out.result.micro_sizes == [1] * N
    assert out.small.count == N, "only the retry's micro-batches count (the first try's read is void)"


def test_small_estimates_and_tally_round_trip():
    est = SmallEstimates.from_micro_norms([MicroNorm(2, 0.25), MicroNorm(4, 1.0)])
    assert est == SmallEstimates(0.25 / (2 / 6) ** 2 + 1.0 / (4 / 6) ** 2, 6.0, 2)
    assert SmallEstimates.from_state(json.loads(json.dumps(est.state_dict()))) == est
    assert SmallEstimates.from_micro_norms([]) is None
    assert SmallEstimates.from_sums(1.0, 2.0, 1.0) is None and SmallEstimates.from_sums(1.0, 4.0, 2.0).count == 2
    assert MicroNorm(3, 8.0).scaled(4.0) == MicroNorm(3, 2.0)
    tally = SampleTally()
    tally.add(torch.tensor([0.25, 0.5]), 2)
    assert tally.estimates() == SmallEstimates(0.75 * 4, 2.0, 2)
    tally.add(torch.tensor([1.0]), 2)  # a micro-batch the hooks could not read
    assert tally.failed and tally.estimates() is None
    tally.reset()
    assert tally == SampleTally() and tally.estimates() is None


def test_measurement_interval_state_round_trips():
    class Sched:
        needs_noise, batch_size = True, 32

        def measurement_interval(self, own, split=False, shadow=False):
            return 3

    interval = MeasurementInterval(Sched())
    assert [interval.due(s, alone=True, shadow=lambda: False) for s in range(6)] == [False, False, True] * 2
    interval.record(True, 0.5)
    interval.record(False, 0.1)
    assert interval.own_cost() == pytest.approx(0.4)
    state = json.loads(json.dumps(interval.state_dict()))
    assert state == {"measurement_seconds": [0.5], "normal_seconds": [0.1], "measurement_interval": [[32, 0], 3]}
    twin = MeasurementInterval(Sched())
    twin.load_state_dict(state)
    assert twin.state_dict() == interval.state_dict()
