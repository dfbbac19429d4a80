"""Mixed precision and clipping in fit: DEBA reads unscaled, unclipped gradients; a scaler skip is not non-finite."""

from __future__ import annotations

import pytest
import torch

import deba
from deba.training.precision import Precision
from deba.training.step import StepEngine, loss_of


def _data():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    return x, (x @ torch.randn(8, 3)).argmax(1)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_fit_trains_under_autocast(amp):
    x, y = _data()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), eval_data=(x, y),
                   loss_fn=torch.nn.functional.cross_entropy, profile="mlp", epochs=3, progress=False, amp=amp,
                   max_grad_norm=1.0)
    assert res.final["eval_accuracy"] > 0.6
    assert all(r["finite"] for r in res.step_records())


def test_the_engine_reads_the_unscaled_gradient_before_clipping():
    x, y = _data()
    model = torch.nn.Linear(8, 3)
    ref = torch.nn.Linear(8, 3)
    ref.load_state_dict(model.state_dict())
    torch.nn.functional.cross_entropy(ref(x[:32]), y[:32]).backward()
    true_norm = float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ref.parameters()])))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prec = Precision("fp16", "cpu")
    engine = StepEngine(model, deba.BatchScheduler("mlp"), deba.signals.GradientProbe(model, 8), precision=prec, optimizer=opt,
                        forward_loss=loss_of(model, torch.nn.functional.cross_entropy))
    out = engine.run((x[:32], y[:32]))
    assert prec.scale() > 1000, "a real loss scale was in force"
    assert out.obs.grad_norm == pytest.approx(true_norm, rel=0.02), "DEBA saw the true (unscaled) gradient"


def test_a_gradscaler_overflow_is_skipped_not_counted_as_non_finite():
    x, y = _data()
    model = torch.nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prec = Precision("fp16", "cpu")
    sched = deba.BatchScheduler("mlp")

    def overflowing(batch):  # a finite loss whose scaled gradient overflows fp16
        return loss_of(model, torch.nn.functional.cross_entropy)(batch) * 1e30

    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8), precision=prec, optimizer=opt, forward_loss=overflowing)
    out = engine.run((x[:32], y[:32]))
    before = prec.scale()
    prec.step(opt)
    assert "GradScaler" in out.decision.reason and sched.nonfinite_total == 0 and sched.step == 0
    assert prec.scale() < before, "the scaler lowered its scale"


def test_bad_precision_arguments():
    with pytest.raises(deba.DebaConfigError, match="amp"):
        Precision("int8", "cpu")
    x, y = _data()
    model = torch.nn.Linear(8, 3)
    with pytest.raises(deba.DebaConfigError, match="max_grad_norm"):
        deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                 loss_fn=torch.nn.functional.cross_entropy, epochs=1, max_grad_norm=-1.0, progress=False)
