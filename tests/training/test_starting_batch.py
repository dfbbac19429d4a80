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
