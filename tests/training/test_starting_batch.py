"""The user's batch is the starting batch (their LR belongs to it); the profile's only when they give none."""

from __future__ import annotations

import pytest
import torch

import deba


def test_fit_starts_at_the_users_batch_and_widens_the_profile_with_a_warning():
    x, y = torch.randn(200, 4), torch.randint(0, 2, (200,))
    model = torch.nn.Linear(4, 2)
    with pytest.warns(UserWarning, match="starting batch batch_size=12.*granularity 8 -> 4.*min_batch 16 -> 12"):
        res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                       loss_fn=torch.nn.functional.cross_entropy, profile="mlp", batch_size=12, epochs=1,
                       progress=False)
    first = res.step_records()[0]
    assert first["batch_size"] == 12 and first["lr_factor"] == 1.0, "B0's LR is the reference"
    assert res.profile.initial_batch == 12 and res.profile.min_batch == 12 and res.profile.granularity == 4


def test_without_a_batch_the_profiles_initial_batch_applies():
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = torch.nn.Linear(4, 2)
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   loss_fn=torch.nn.functional.cross_entropy, profile="mlp", epochs=1, progress=False)
    assert res.step_records()[0]["batch_size"] == deba.load_profile("mlp").initial_batch


def test_the_controller_takes_the_samplers_batch_and_keeps_it():
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    model = torch.nn.Linear(4, 2)
    sampler = deba.AdaptiveBatchSampler(data, batch_size=24)
    ctl = deba.DebaController(model, torch.optim.SGD(model.parameters(), lr=0.1), sampler=sampler, profile="mlp")
    assert ctl.batch_size == sampler.batch_size == 24 and ctl.profile.initial_batch == 24
    explicit = deba.DebaController(model, torch.optim.SGD(model.parameters(), lr=0.1), profile="mlp", batch_size=64)
    assert explicit.batch_size == 64


def test_starting_at_refuses_nonsense():
    with pytest.raises(deba.DebaConfigError, match="batch_size"):
        deba.load_profile("mlp").starting_at(0)
    assert deba.load_profile("mlp").starting_at(32) == deba.load_profile("mlp"), "in bounds and on the grid: unchanged"


def test_controller_step_runs_measurement_steps_in_manual_mode():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x @ torch.randn(8, 3)).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prof = deba.load_profile("mlp").replace(policy="goodput")
    ctl = deba.DebaController(model, opt, profile=prof, batch_size=32)
    ctl.scheduler.throughput = deba.control.throughput.ThroughputModel({16: 1000.0, 32: 1000.0})  # k = 1

    def forward_loss(b):
        return torch.nn.functional.cross_entropy(model(b[0]), b[1])

    for i in range(0, 256, 32):
        ctl.step((x[i:i + 32], y[i:i + 32]), forward_loss)
        assert ctl.step_ok
        opt.step()
    assert ctl.scheduler.noise.count == 8, "every step was a measurement step (k = 1)"
    with pytest.raises(deba.DebaConfigError, match="forward_loss"):
        ctl.step((x[:4], y[:4]), "loss")
