"""Per-sample squared gradient norms of linear layers equal those of one backward per sample."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deba.signals.per_sample import PerSampleNorms


def _net(inplace: bool) -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 8, bias=False), nn.Tanh(),
                         nn.Linear(8, 3))


@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("inplace", [False, True])
def test_norms_match_one_backward_per_sample(seq, inplace):
    torch.manual_seed(0)
    net = _net(inplace)
    x = torch.randn(5, 4, 6) if seq else torch.randn(5, 6)
    y = torch.randint(0, 3, (5,))

    def loss(out, target):
        return nn.functional.cross_entropy(out.mean(1) if seq else out, target)

    norms = PerSampleNorms(net)
    with norms:
        loss(net(x), y).backward()
    got = norms.take()
    want = []
    for i in range(5):  # sample i's share of the mean loss's gradient
        net.zero_grad()
        (loss(net(x[i : i + 1]), y[i : i + 1]) / 5).backward()
        want.append(sum(float(p.grad.square().sum()) for p in net.parameters()))
    assert torch.allclose(got, torch.tensor(want), rtol=1e-4)
    assert norms.take() is None, "taken once"
    # outside the context nothing is recorded
    loss(net(x), y).backward()
    assert norms.take() is None


def test_only_models_of_linear_layers_without_batch_coupling_qualify():
    assert PerSampleNorms.supports(_net(False))
    assert not PerSampleNorms.supports(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    assert not PerSampleNorms.supports(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)))
    assert not PerSampleNorms.supports(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)))
    frozen = nn.Sequential(nn.Embedding(4, 3), nn.Linear(3, 2))
    frozen[0].weight.requires_grad_(False)
    assert PerSampleNorms.supports(frozen), "frozen parameters do not count"


def test_the_step_engine_measures_without_splitting_a_linear_model():
    import deba
    from deba.training.step import StepEngine, loss_of

    torch.manual_seed(0)
    model = _net(False)
    prof = deba.load_profile("mlp").replace(policy="goodput", shares=None)
    sched = deba.BatchScheduler(prof, initial_batch=32, throughput={16: 1000.0, 32: 1900.0, 64: 3000.0})
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8),
                        forward_loss=loss_of(model, nn.functional.cross_entropy))
    assert engine.per_sample is not None and sched.measurement_interval(split=False) == 1
    out = engine.run((torch.randn(32, 6), torch.randint(0, 3, (32,))))
    assert out.result.micro_sizes == [32], "not split"
    assert out.obs.small_batch == 1.0 and out.obs.small_grad_sq > out.obs.grad_norm ** 2


def test_a_reused_layer_or_tied_weight_is_not_read_wrongly():
    lin = nn.Linear(4, 4)
    twice = nn.Sequential(lin, nn.ReLU(), lin)
    norms = PerSampleNorms(twice)
    with norms:
        twice(torch.randn(3, 4)).sum().backward()
    assert norms.take() is None, "a layer used twice: cross terms, so no reading"
    tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    tied[1].weight = tied[0].weight
    assert not PerSampleNorms.supports(tied)


def test_the_engines_small_estimate_is_the_mean_per_sample_squared_norm():
    import deba
    from deba.training.step import StepEngine, loss_of

    torch.manual_seed(1)
    model = _net(False)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    want = []
    for i in range(16):  # each sample's own gradient of its own loss
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        want.append(sum(float(p.grad.double().square().sum()) for p in model.parameters()))
    sched = deba.BatchScheduler(deba.load_profile("mlp").replace(policy="goodput", shares=None), initial_batch=16,
                                throughput={8: 1000.0, 16: 1900.0})
    engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8), forward_loss=loss_of(model, nn.functional.cross_entropy))
    obs = engine.run((x, y)).obs
    assert obs.small_batch == 1.0
    assert obs.small_grad_sq == pytest.approx(sum(want) / 16, rel=1e-4)
