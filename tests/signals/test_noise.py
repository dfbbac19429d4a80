"""The noise-scale estimator against closed-form truth, measured during training by the step engine.

Least squares with Gaussian inputs, ``y = x . w* + s eps``, loss ``(x . w - y)^2 / 2``: with
``u = w - w*`` the per-sample gradient has mean ``u`` and covariance ``(|u|^2 + s^2) I + u u^T``, so

    B_simple = tr(Sigma) / |G|^2 = (d + 1) + s^2 d / |u|^2,

which rises more than tenfold as ``w`` converges. The engine measures with its production rule:
``k`` (steps between measurement steps) from the throughput table, the averaging horizon in steps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import deba
from deba.signals.noise import NoiseMeasurement, NoiseScaleEstimator
from deba.training.step import StepEngine

D, S, B, LR = 40, 1.0, 32, 0.0015


def _trajectory(seed: int, throughput: dict[int, float], steps: int, per_sample: bool | str = False
                ) -> tuple[np.ndarray, np.ndarray, int]:
    gen = torch.Generator().manual_seed(seed)
    w_star = torch.randn(D, generator=gen, dtype=torch.float64)
    model = torch.nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + 3.0 * torch.randn(D, generator=gen, dtype=torch.float64)).reshape(1, D))
    # The data comes at B whatever the scheduler says, so it must stay there (k is per batch size).
    prof = deba.load_profile("mlp").replace(policy="goodput", min_batch=B, initial_batch=B, max_batch=B)
    sched = deba.BatchScheduler(prof, throughput=throughput)
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def forward_loss(batch):
        x, y = batch
        return 0.5 * ((model(x).squeeze(1) - y) ** 2).mean()

    # per_sample=False: the general path, measurement steps split the batch in two; "shadow": the
    # BatchNorm path, one extra pass over half the batch.
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8), forward_loss=forward_loss,
                        per_sample_norms=per_sample is True, shadow_halves=True if per_sample == "shadow" else None)
    assert (engine.per_sample is not None) == (per_sample is True)
    estimates, truth = [], []
    for _ in range(steps):
        u = model.weight.detach().reshape(-1) - w_star
        truth.append((D + 1) + S * S * D / float(u @ u))
        x = torch.randn(B, D, generator=gen, dtype=torch.float64)
        y = x @ w_star + S * torch.randn(B, generator=gen, dtype=torch.float64)
        out = engine.run((x, y))
        opt.step()
        estimates.append(math.nan if out.decision.noise_scale is None else out.decision.noise_scale)
    return np.array(estimates), np.array(truth), sched.measurement_interval(split=per_sample is not True,
                                                                            shadow=per_sample == "shadow")


@pytest.mark.slow
@pytest.mark.parametrize("ratio,k,steps,rise,per_sample", [(1.0, 1, 3000, 10.0, False), (1.05, 10, 2400, 2.5, False),
                                                           (1.5, 1, 3000, 10.0, True),
                                                           (0.01, 1, 3000, 10.0, "shadow")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_estimate_tracks_the_closed_form_noise_scale_in_each_third(seed, ratio, k, steps, rise, per_sample):
    # Split path: T(B)/T(B/2) = ratio, the production rule measures every k = ceil((ratio - 1) / 0.5 %)
    # steps. Per-sample path (b = 1, no split): k = 1 whatever the table says about splitting.
    # Shadow path (one half-batch estimate per measurement, k = ceil(0.5 ratio / 0.5 %)).
    est, truth, used_k = _trajectory(seed, {B // 2: 1000.0, B: 1000.0 * ratio}, steps, per_sample)
    assert used_k == k
    first, last = np.median(truth[: steps // 10]), np.median(truth[-steps // 10 :])
    assert last > rise * first, f"the truth rises {last / first:.1f}-fold as w converges"
    assert np.isnan(est).mean() < 0.15, f"an estimate exists most of the run ({np.isnan(est).mean():.0%} without)"
    for third, (e, t) in enumerate(zip(np.array_split(est, 3), np.array_split(truth, 3))):
        ok = ~np.isnan(e)
        err = float(np.median(np.abs(np.log(e[ok] / t[ok]))))
        assert err <= math.log(1.25), f"third {third}: median |log(estimate/truth)| = {err:.3f}"


def test_two_size_measurement_is_unbiased_and_the_ratio_is_of_averages():
    est = NoiseScaleEstimator(horizon=1e9, min_measurements=1)
    rng = np.random.default_rng(0)
    g_true, tr_true = 2.0, 400.0  # B_simple = 200
    for _ in range(4000):
        small = g_true + tr_true / 16 + rng.normal(0, 0.5)
        big = g_true + tr_true / 32 + rng.normal(0, 0.25)
        est.update(NoiseMeasurement(16, max(small, 0.0), 32, max(big, 0.0)))
    assert est.g_sq == pytest.approx(g_true, rel=0.1) and est.trace == pytest.approx(tr_true, rel=0.1)
    assert est.noise_scale == pytest.approx(200.0, rel=0.15)


def test_no_estimate_while_the_signal_is_not_clearly_positive():
    est = NoiseScaleEstimator()
    rng = np.random.default_rng(1)
    for _ in range(200):  # |G|^2 = 0: pure noise
        small, big = 100 / 16 + rng.normal(0, 1.0), 100 / 32 + rng.normal(0, 0.5)
        est.update(NoiseMeasurement(16, max(small, 0.0), 32, max(big, 0.0)))
    assert est.noise_scale is None, "no point estimate while |G|^2 is not clearly positive"
    # ... but a valid lower bound (the truth is infinite): noise dominates a batch of 32 by far.
    assert est.noise_scale_low is not None and est.noise_scale_low > 32


def test_the_lower_bound_lies_below_the_point_estimate_and_tightens_with_measurements():
    rng = np.random.default_rng(2)
    est = NoiseScaleEstimator(horizon=1e9)
    bounds = []
    for i in range(300):
        small, big = 2.0 + 400 / 16 + rng.normal(0, 3.0), 2.0 + 400 / 32 + rng.normal(0, 1.5)
        est.update(NoiseMeasurement(16, max(small, 0.0), 32, max(big, 0.0)))
        if est.noise_scale is not None:
            assert est.noise_scale_low <= est.noise_scale
            bounds.append(est.noise_scale_low / est.noise_scale)
    assert len(bounds) > 100 and bounds[-1] > bounds[0], "the bound tightens as measurements accumulate"


def test_state_round_trip_continues_exactly():
    a, b = NoiseScaleEstimator(), NoiseScaleEstimator()
    for i in range(10):
        a.update(NoiseMeasurement(8, 3.0 + i % 3, 16, 2.0 + (i % 2) * 0.1), gap=2)
    b.load_state_dict(a.state_dict())
    m = NoiseMeasurement(8, 4.0, 16, 2.5)
    a.update(m, gap=3)
    b.update(m, gap=3)
    assert a.state_dict() == b.state_dict() and a.noise_scale == b.noise_scale
    with pytest.raises(deba.DebaConfigError, match="small_batch"):
        NoiseMeasurement(16, 1.0, 16, 1.0)
