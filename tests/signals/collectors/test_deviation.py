"""The v2 stability signals: unsteadiness relative to the run's own warm-up, the same all run long."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deba
from deba.signals.collectors import GradientNormDeviationCollector, LossDeviationCollector, LossVariationCollector


def _feed(c, values, batch=32):
    out = []
    for v in values:
        c.update(deba.Observation(loss=float(v), batch_size=batch, grad_norm=1.0))
        out.append(c.value())
    return out


def test_a_falling_loss_at_constant_noise_reads_the_same_all_run_long_where_v1_rose():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    losses = 0.1 + 2.0 * np.exp(-t / 150) + rng.normal(0, 0.02, t.size)
    new, old = LossDeviationCollector(window=12, min_samples=12), LossVariationCollector(window=12, min_samples=12)
    v_new, v_old = _feed(new, losses), _feed(old, losses)
    early, late = slice(12, 150), slice(450, 600)
    ratio_new = np.median(v_new[late]) / np.median(v_new[early])
    ratio_old = np.median(v_old[late]) / np.median(v_old[early])
    assert 0.6 < ratio_new < 1.6, ratio_new
    assert ratio_old > 3.0, ratio_old  # v1 divided by the mean loss: it rose as the loss fell


def test_a_rising_gradient_norm_at_constant_relative_noise_is_not_read_as_instability():
    rng = np.random.default_rng(4)
    t = np.arange(400)
    level = 0.1 * np.exp(t / 100)  # the norm grows ~50x (a model leaving its plateau)
    c = GradientNormDeviationCollector(window=12, min_samples=12)
    vals = []
    for x in level * (1 + rng.normal(0, 0.05, t.size)):
        c.update(deba.Observation(loss=1.0, batch_size=32, grad_norm=float(x)))
        vals.append(c.value())
    assert 0.5 < np.median(vals[300:]) / np.median(vals[12:100]) < 2.0


def test_baseline_is_the_first_window_and_survives_a_window_restart():
    c = LossDeviationCollector(window=4, min_samples=4)
    _feed(c, [1.0, 1.1, 0.9, 1.05])
    base = c.baseline
    assert base is not None and c.value() == pytest.approx(1.0)
    c.reset()
    assert c.value() is None and c.baseline == base
    _feed(c, [1.0, 1.2, 0.8, 1.1])
    assert c.baseline == base and c.value() > 1.0


def test_a_larger_batch_is_not_read_as_calm():
    """Interval means over 4x the samples are half as noisy: scaled by sqrt(samples), the same."""
    rng = np.random.default_rng(1)
    c = LossDeviationCollector(window=200, min_samples=200)
    _feed(c, 1.0 + rng.normal(0, 0.1, 200), batch=32)
    c.reset()
    vals = _feed(c, 1.0 + rng.normal(0, 0.05, 200), batch=128)
    assert 0.8 < vals[-1] < 1.25, vals[-1]
    c.reset()  # without the scaling it would read 0.5: "calmer" only because the batch grew
    calm = _feed(c, 1.0 + rng.normal(0, 0.025, 200), batch=128)
    assert calm[-1] < 0.65


def test_a_spike_reads_as_several_times_the_start():
    rng = np.random.default_rng(2)
    c = GradientNormDeviationCollector(window=8, min_samples=8)
    for v in 1.0 + rng.normal(0, 0.05, 8):
        c.update(deba.Observation(loss=1.0, batch_size=32, grad_norm=float(v)))
    for v in [1.0, 1.02, 0.98, 1.6]:
        c.update(deba.Observation(loss=1.0, batch_size=32, grad_norm=v))
    assert c.value() > 2.5  # relative to the window's mean, which the spike itself raises
    c.update(deba.Observation(loss=1.0, batch_size=32, grad_norm=float("inf"), grad_finite=False))
    assert c.nonfinite == 1 and c.count == 8


def test_state_round_trip_continues_exactly():
    rng = np.random.default_rng(3)
    a = LossDeviationCollector(window=6, min_samples=3)
    _feed(a, rng.normal(1, 0.1, 9))
    b = LossDeviationCollector(window=6, min_samples=3)
    b.load_state_dict(a.state_dict())
    more = rng.normal(1, 0.1, 4)
    assert _feed(a, more) == _feed(b, more)
    with pytest.raises(deba.DebaConfigError, match="baseline"):
        b.load_state_dict({"values": [], "samples": [], "nonfinite": 0})


def test_default_profiles_weigh_the_v2_signals_with_one_tau():
    for name, p in deba.builtin_profiles().items():
        if name == "paper":
            assert set(p.weights) == {"grad_variance", "grad_norm_variation", "loss_variation"}
            continue
        assert set(p.weights) == {"loss_deviation", "grad_norm_deviation"}, name
        assert all(p.tau_for(m) == 1.0 for m in p.weights), name
    assert math.isclose(deba.registry.load("collectors", "loss_deviation", expected=deba.MetricCollector)(window=4)
                        .window, 4)
