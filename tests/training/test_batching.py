"""Micro-batching: accumulated gradient equals the full-batch gradient; out-of-memory retry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deba
from deba.training.step import StepEngine, loss_of
from deba.training.batching import run_micro_batches, split_sizes
from deba.training.memory import find_max_micro_batch


def _grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()


@pytest.mark.parametrize("cap", [1, 3, 7, 16, 64])
def test_accumulated_gradient_equals_full_batch_gradient(cap):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = torch.randn(37, 6), torch.randint(0, 3, (37,))
    nn.functional.cross_entropy(model(x), y).backward()
    full = _grads(model)
    model.zero_grad()
    res = run_micro_batches(model, (x, y), nn.functional.cross_entropy, cap=cap)
    assert sum(res.micro_sizes) == 37 and max(res.micro_sizes) <= cap
    assert torch.allclose(_grads(model), full, atol=1e-5, rtol=0)
    assert res.loss == pytest.approx(nn.functional.cross_entropy(model(x), y).item(), abs=1e-5)


def _engine(model: nn.Module, max_micro_batch: int, profile: str = "paper") -> StepEngine:
    # "paper" weighs grad_variance, which reads sketches; the v2 profiles read none.
    return StepEngine(model, deba.BatchScheduler(profile), deba.signals.GradientProbe(model, 8),
                      forward_loss=loss_of(model, nn.functional.cross_entropy), max_micro_batch=max_micro_batch)


def test_micro_batches_give_independent_gradient_estimates():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    engine = _engine(model, max_micro_batch=8)
    out = engine.run((torch.randn(32, 4), torch.randint(0, 2, (32,))))
    obs = out.obs
    assert len(obs.micro_sketches) == 4 and obs.micro_sizes == (8, 8, 8, 8)
    # the size-weighted mean of the micro estimates is the full gradient's sketch
    mean = sum(s * 8 for s in obs.micro_sketches) / 32
    assert abs(mean - obs.grad_sketch).max() < 1e-5


def test_no_sketch_is_read_when_no_collector_uses_one():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    engine = _engine(model, max_micro_batch=8, profile="generic")
    assert not engine.scheduler.needs_sketch
    obs = engine.run((torch.randn(32, 4), torch.randint(0, 2, (32,)))).obs
    assert obs.grad_sketch is None and obs.micro_sketches is None and obs.grad_norm > 0
    assert deba.BatchScheduler("paper").needs_sketch


class FlakyModel(nn.Module):
    """Raises an out-of-memory error for forward passes above `limit` samples."""

    def __init__(self, limit):
        super().__init__()
        self.lin = nn.Linear(5, 3)
        self.limit = limit
        self.seen: list[int] = []

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected, {x.shape[0]} samples)")
        self.seen.append(x.shape[0])
        return self.lin(x)


def test_out_of_memory_lowers_the_cap_and_reruns_without_losing_samples():
    torch.manual_seed(0)
    model = FlakyModel(limit=10)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    reference = nn.Linear(5, 3)
    reference.load_state_dict(model.lin.state_dict())
    nn.functional.cross_entropy(reference(x), y).backward()
    engine = _engine(model, max_micro_batch=40)
    res = engine.run((x, y)).result
    assert res.oom_events and res.oom_events[0]["failed_micro_batch"] == 40
    assert engine.max_micro_batch <= 10, "the lowered cap is kept for later steps"
    assert engine.oom_events == res.oom_events and engine.state_dict()["max_micro_batch"] == engine.max_micro_batch
    assert sum(res.micro_sizes) == 40 and sum(model.seen) == 40, "no sample lost or seen twice"
    assert torch.allclose(model.lin.weight.grad, reference.weight.grad, atol=1e-5)


def test_out_of_memory_at_one_sample_is_an_error():
    model = FlakyModel(limit=0)
    with pytest.raises(deba.training.batching.OutOfMemory):
        run_micro_batches(model, (torch.randn(4, 5), torch.zeros(4, dtype=torch.long)), nn.functional.cross_entropy, cap=4)


def test_split_sizes():
    assert split_sizes(10, None) == [10] and split_sizes(10, 4) == [4, 3, 3] and split_sizes(3, 8) == [3]


def test_find_max_micro_batch_on_cpu_follows_the_budget():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 32 * 32, 10))
    sample = torch.randn(2, 3, 32, 32)
    small = find_max_micro_batch(model, sample, memory_budget=20_000_000)
    large = find_max_micro_batch(model, sample, memory_budget=200_000_000)
    assert 1 <= small < large
    with pytest.raises(deba.DebaConfigError):
        find_max_micro_batch(model, sample, memory_budget=1000)


def test_synchronize_waits_for_cuda_only(monkeypatch):
    from deba.training.batching import synchronize

    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synchronize("cpu")
    synchronize(torch.device("cpu"))
    assert waited == [], "nothing to wait for on the CPU"
    synchronize("cuda:1")
    assert waited == [torch.device("cuda", 1)]


class _FakeClock:
    """A clock that moves only when the device is waited for: 1 s a wait. A timer that waits for
    the work it times before reading the clock (and not before starting it) reads exactly 1 s."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def perf_counter(self):
        return self.now

    def synchronize(self, device):
        self.waits.append(torch.device(device))
        self.now += 1.0


def test_every_throughput_timer_waits_for_the_device(monkeypatch):
    # On a GPU an unsynchronised timer measures kernel launches: the start-up probe, the study's
    # table and the step engine's step times must each wait for the model's devices after the work
    # they time and before they read the clock.
    import types

    import deba.app.study.throughput as table
    import deba.training.step as step
    import deba.training.throughput_probe as probe
    from deba.control.scheduler import BatchScheduler
    from deba.control.throughput import ThroughputModel
    from deba.training.step import loss_of

    clock = _FakeClock()
    for module in (probe, table, step):
        monkeypatch.setattr(module, "synchronize", clock.synchronize)
        monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    tm = ThroughputModel()
    out = probe.probe_throughput(model, loss_of(model, torch.nn.functional.cross_entropy), lambda n: (x[:n], y[:n]),
                                 [16, 32], tm, cap=None, repeats=3, max_seconds=1e9)
    assert out == {16: 16.0, 32: 32.0}, "each timed pass took exactly the one wait after its work"
    assert clock.waits == [torch.device("cpu")] * (2 * 2 * 3)
    rate = table.timed_train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), (x[:32], y[:32]), cap=None,
                                   steps=2)
    assert rate == 64.0, "2 steps of 32 samples over the one wait after them"
    seconds = []
    monkeypatch.setattr(BatchScheduler, "record_step_time", lambda self, b, s: seconds.append(s))
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05), batch_size=32,
                   fixed_batch=32, loss_fn=torch.nn.functional.cross_entropy, epochs=1, progress=False)
    assert res.steps == 8 and seconds == [1.0] * 8, "every step's time includes the wait for its kernels"


def test_model_devices_lists_every_device_once():
    from deba.training.batching import model_devices

    assert model_devices(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))) == [torch.device("cpu")]
    assert model_devices(torch.nn.ReLU()) == []
    meta = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2, device="meta"))
    assert model_devices(meta) == [torch.device("cpu"), torch.device("meta")], "a split model waits on each device"
