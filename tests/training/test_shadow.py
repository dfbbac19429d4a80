"""Noise measurement on a BatchNorm model leaves training exactly as it would be without it.

A split of the step into halves would normalise each half with its own statistics (and move the
running statistics twice), so a "fixed" batch that measures its noise would train differently from
one that does not. The step engine measures such a model with a shadow half instead
(``deba.training.shadow``): these tests hold it to bit-identical weights and buffers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import deba
from deba.training.shadow import batch_dependent_modules, shadow_half_pass
from deba.training.step import StepEngine, loss_of

B = 16
# T(B/2) far above T(B): a shadow half costs 0.5 * T(B)/T(B/2) = 0.05 % of a step, so k = 1.
CHEAP_HALF = {B // 2: 1e6, B: 1e3}


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 10), nn.BatchNorm1d(10))


def _train(measure: bool, steps: int = 6, shadow: bool | None = None):
    model = _model()
    prof = deba.load_profile("generic").replace(policy="goodput", min_batch=B, initial_batch=B, max_batch=B, granularity=8)
    sched = deba.BatchScheduler(prof, throughput=CHEAP_HALF)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8),
                        forward_loss=loss_of(model, nn.functional.cross_entropy), measure_noise=measure,
                        shadow_halves=shadow)
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(2)  # dropout masks: the same stream in every run
    small = []
    for _ in range(steps):
        x, y = torch.randn(B, 1, 6, 6, generator=gen), torch.randint(0, 10, (B,), generator=gen)
        out = engine.run((x, y))
        opt.step()
        engine.after_optimizer_step()
        small.append(out.obs.small_batch)
    return model, small, engine


def test_measured_steps_train_a_batchnorm_model_bit_identically_to_unmeasured_ones():
    measured, small, engine = _train(measure=True)
    plain, none, _ = _train(measure=False)
    assert engine.scheduler.measurement_interval(split=True, shadow=True) == 1
    assert small == [B // 2] * 6, "every step measured, from one shadow half of B/2 samples"
    assert none == [None] * 6
    for (name, a), b in zip(measured.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs: the measurement changed training"


def test_a_split_would_have_changed_training():
    # The reason for the shadow pass: the same run measured by splitting trains other weights.
    split, small, _ = _train(measure=True, shadow=False)
    plain, _, _ = _train(measure=False)
    assert small == [B // 2] * 6
    assert not all(torch.equal(a, b) for a, b in zip(split.state_dict().values(), plain.state_dict().values()))


def test_without_batchnorm_the_engine_still_splits():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    engine = StepEngine(model, deba.BatchScheduler("generic"), deba.signals.GradientProbe(model, 8),
                        forward_loss=loss_of(model, nn.functional.cross_entropy))
    assert batch_dependent_modules(model) == [] and not engine._shadow_now()
    bn = _model()
    engine = StepEngine(bn, deba.BatchScheduler("generic"), deba.signals.GradientProbe(bn, 8),
                        forward_loss=loss_of(bn, nn.functional.cross_entropy))
    assert engine._shadow_now()
    bn.eval()  # running statistics are used, a split changes nothing
    assert not engine._shadow_now()
    forced = StepEngine(bn, deba.BatchScheduler("generic"), deba.signals.GradientProbe(bn, 8), shadow_halves=True)
    assert forced._shadow_now() and forced.shadow_halves is True
    with pytest.raises(deba.DebaConfigError, match="shadow_halves"):
        StepEngine(bn, deba.BatchScheduler("generic"), deba.signals.GradientProbe(bn, 8), shadow_halves="always")


def test_the_interval_prices_a_shadow_half_at_half_a_step_at_the_half_throughput():
    prof = deba.load_profile("generic").replace(policy="goodput", min_batch=32, initial_batch=32, max_batch=32,
                                                granularity=8)
    sched = deba.BatchScheduler(prof, throughput={16: 1000.0, 32: 1500.0})
    assert sched.measurement_interval(split=True) == math.ceil(0.5 / 0.005)  # T(B)/T(B/2) - 1
    assert sched.measurement_interval(split=True, shadow=True) == math.ceil(0.75 / 0.005)  # 0.5 T(B)/T(B/2)
    with pytest.raises(deba.DebaConfigError, match="shadow"):
        sched.measurement_interval(shadow="yes")


def test_a_shadow_half_out_of_memory_skips_the_measurement_and_restores_the_model():
    model = _model()
    x, y = torch.randn(B, 1, 6, 6), torch.randint(0, 10, (B,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    base = loss_of(model, nn.functional.cross_entropy)

    def forward_loss(batch):
        base(batch)  # runs the forward (BatchNorm statistics move) before failing
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    read = []
    assert shadow_half_pass(model, (x, y), B, forward_loss, None, read.append, batch_dependent_modules(model)) is False
    assert read == [] and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    with pytest.raises(ValueError, match="boom"):  # anything else is not absorbed
        shadow_half_pass(model, (x, y), B, lambda b: (_ for _ in ()).throw(ValueError("boom")), None, read.append, [])
    with pytest.raises(deba.DebaConfigError, match="model"):
        batch_dependent_modules("not a model")
