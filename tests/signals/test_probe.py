"""The gradient probe: norm, sketch, non-finite flag, parameters without gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import deba


def test_norm_and_sketch_match_the_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    probe = deba.signals.GradientProbe(model, sketch_size=64, seed=3)
    model(torch.randn(8, 10)).pow(2).mean().backward()
    snap = probe.capture()
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert snap.norm == pytest.approx(flat.norm().item(), rel=1e-5)
    assert snap.finite and snap.sketch.shape == (64,)
    # the same seed picks the same coordinates, so a second probe reads the same sketch
    again = deba.signals.GradientProbe(model, sketch_size=64, seed=3).capture()
    assert (again.sketch == snap.sketch).all()
    # the sketch holds real gradient entries
    assert np.isin(snap.sketch.astype(np.float32), flat.numpy()).all()


def test_parameters_without_grad_are_skipped_and_nonfinite_is_flagged():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    probe = deba.signals.GradientProbe(list(a.parameters()) + list(b.parameters()), sketch_size=16)
    a(torch.ones(2, 4)).sum().backward()  # b has no grad
    snap = probe.capture()
    assert snap.params_with_grad == 2 and snap.finite
    a.weight.grad[0, 0] = float("nan")
    assert not probe.capture().finite
    obs = probe.observe(loss=1.0, batch_size=2)
    assert not obs.is_finite and math.isnan(obs.grad_norm)


def test_no_grad_at_all_and_bad_input():
    probe = deba.signals.GradientProbe(nn.Linear(3, 3))
    snap = probe.capture()
    assert snap.norm == 0.0 and snap.params_with_grad == 0
    with pytest.raises(deba.DebaConfigError):
        deba.signals.GradientProbe([])
    with pytest.raises(deba.DebaConfigError):
        deba.signals.GradientProbe(nn.Linear(3, 3), sketch_size=0)


def test_probe_feeds_a_scheduler_end_to_end():
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    p = deba.load_profile("mlp").replace(interval=1, warmup=0, cooldown=0, window=3, min_samples=3)
    sched = deba.BatchScheduler(p)
    probe = deba.signals.GradientProbe(model, sketch_size=p.sketch_size)
    x, w = torch.randn(512, 5), torch.randn(5, 1)
    sizes = []
    for step in range(30):
        idx = torch.randint(0, 512, (sched.batch_size,))
        loss = (model(x[idx]) - x[idx] @ w).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        d = sched.observe(probe.observe(loss.item(), len(idx), step=step))
        opt.step()
        sizes.append(d.batch_size)
    assert d.score is not None and d.metrics
    assert p.min_batch <= min(sizes) and max(sizes) <= p.max_batch
