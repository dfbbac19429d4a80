"""Built-in collectors: the conformance suite plus the numbers each one must produce."""

from __future__ import annotations

import numpy as np
import pytest

import deba
from deba.signals.collectors import (
    GradientNormVariationCollector,
    GradientVarianceCollector,
    LossVariationCollector,
    detrended_cv,
    noise_ratio_from_estimates,
)
from deba.testing import CollectorConformance


class TestLossVariationConformance(CollectorConformance):
    collector_class = LossVariationCollector


class TestGradNormVariationConformance(CollectorConformance):
    collector_class = GradientNormVariationCollector


class TestGradVarianceSketchConformance(CollectorConformance):
    collector_class = GradientVarianceCollector


class TestGradVarianceMicroConformance(CollectorConformance):
    collector_class = GradientVarianceCollector
    micro = 4


def test_loss_variation_ignores_a_linear_trend_but_not_noise():
    assert detrended_cv(np.linspace(3.0, 1.0, 10)) == pytest.approx(0.0, abs=1e-12)
    noisy = np.linspace(3.0, 1.0, 10) + np.array([0.1, -0.1] * 5)
    assert detrended_cv(noisy) > 0.04
    # dimensionless: scaling the loss does not change it
    assert detrended_cv(noisy * 7) == pytest.approx(detrended_cv(noisy))


def test_grad_norm_variation_is_the_coefficient_of_variation():
    c = GradientNormVariationCollector(window=3, min_samples=2)
    for n in (1.0, 2.0, 3.0, 4.0):  # window keeps the last three
        c.update(deba.Observation(loss=1.0, batch_size=4, grad_norm=n))
    assert c.value() == pytest.approx(np.std([2, 3, 4], ddof=1) / 3)


def test_noise_ratio_from_independent_estimates_matches_the_truth():
    # k micro-batches of b samples each: g_i = mu + noise with per-sample covariance sigma^2 I
    rng = np.random.default_rng(0)
    d, b, k, sigma = 4000, 8, 8, 0.5
    mu = rng.normal(size=d) * 0.1
    ratios = []
    for _ in range(50):
        g = mu + rng.normal(size=(k, d)) * sigma / np.sqrt(b)
        ratios.append(noise_ratio_from_estimates(g, np.full(k, float(b))))
    # truth: tr(Sigma)/(B |mu|^2) with the batch B = k*b, against |G|^2 = |mu|^2 + tr(Sigma)/B
    trace = d * sigma**2
    expected = trace / (k * b) / (mu @ mu + trace / (k * b))
    assert np.mean(ratios) == pytest.approx(expected, rel=0.05)


def test_grad_variance_prefers_independent_estimates_then_falls_back_to_the_sketch():
    c = GradientVarianceCollector(window=4, min_samples=2)
    rng = np.random.default_rng(1)
    for _ in range(3):
        c.update(deba.Observation(loss=1.0, batch_size=16, grad_sketch=rng.normal(size=32) + 1))
    assert c.source == "sketch" and c.value() > 0
    for _ in range(2):
        c.update(deba.Observation(loss=1.0, batch_size=16, micro_sketches=[rng.normal(size=32) + 1, rng.normal(size=32) + 1],
                                  micro_sizes=[8, 8]))
    assert c.source == "estimates"


def test_observation_validation():
    with pytest.raises(deba.DebaConfigError, match="batch_size"):
        deba.Observation(loss=1.0, batch_size=0)
    with pytest.raises(deba.DebaConfigError, match="loss"):
        deba.Observation(loss="x", batch_size=4)  # type: ignore[arg-type]
    with pytest.raises(deba.DebaConfigError, match="micro_sizes"):
        deba.Observation(loss=1.0, batch_size=4, micro_sketches=[[1.0], [2.0]])
    with pytest.raises(deba.DebaConfigError, match="micro_sizes"):
        deba.Observation(loss=1.0, batch_size=4, micro_sketches=[[1.0], [2.0]], micro_sizes=[2])
    assert not deba.Observation(loss=float("nan"), batch_size=4).is_finite
    assert not deba.Observation(loss=1.0, batch_size=4, grad_norm=float("inf")).is_finite
