"""Spike detection: rare on fixed-batch training, immediate on a real blow-up."""

from __future__ import annotations

import pytest
import torch

import deba
from deba.signals.spike import SpikeDetector


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


@pytest.mark.slow
def test_false_alarms_on_fixed_batch_runs_are_rarer_than_one_in_a_thousand_steps():
    x, y = _digits()
    steps = alarms = 0
    for seed, batch, lr in ((0, 16, 0.1), (1, 16, 0.05), (2, 64, 0.2)):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        det = SpikeDetector()
        for _ in range(25):
            perm = torch.randperm(len(y))
            for i in range(0, len(y) - batch + 1, batch):
                idx = perm[i : i + batch]
                loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
                alarms += det.update(float(loss.detach()))
    assert steps > 5000 and alarms / steps < 1e-3, f"{alarms} false alarms in {steps} fixed-batch steps"


def test_a_blow_up_is_flagged_within_a_few_steps_and_outliers_are_not():
    det = SpikeDetector()
    losses = [1.0 - 0.001 * i for i in range(100)]
    assert not any(det.update(v) for v in losses)
    assert not det.update(1.9), "one outlier below twice the recent maximum is not a spike"
    flagged = [det.update(v) for v in (5.0, 8.0, 12.0)]
    assert any(flagged) and det.spikes >= 1
    before = list(det.losses)
    det.update(float("nan"))
    assert list(det.losses) == before, "non-finite losses never enter the window"


def test_state_round_trip_and_validation():
    a, b = SpikeDetector(window=8, min_count=4), SpikeDetector(window=8, min_count=4)
    for v in (1.0, 0.8, 0.9, 1.1, 0.7):
        a.update(v)
    b.load_state_dict(a.state_dict())
    assert [a.update(v) for v in (0.5, 9.0, 9.0)] == [b.update(v) for v in (0.5, 9.0, 9.0)]
    with pytest.raises(deba.DebaConfigError, match="spike_factor"):
        SpikeDetector(factor=1.0)


def test_losses_at_or_below_zero_raise_no_false_alarm():
    det = SpikeDetector()
    assert not any(det.update(-1.0 - 0.001 * (i % 7)) for i in range(200)), "a constant negative loss is calm"
    assert any(det.update(v) for v in (5.0, 9.0, 12.0)), "and a blow-up from there is still a spike"
