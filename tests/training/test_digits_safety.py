"""Rule 10's promise with default settings: DEBA on the digits MLP never ends worse than a plain
fixed-batch loop by more than seed noise (issue 11: mean paired difference over 5 seeds within 1.5
points on the 360-image test split, and no divergence where the fixed batch does not diverge)."""

from __future__ import annotations

import math
import statistics
import warnings

import pytest
import torch

import deba
from deba.app.data import load_dataset
from deba.app.models import make_model

SEEDS = range(5)
EPOCHS, BATCH, LR = 10, 16, 0.05


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return make_model("small-mlp", in_channels=1, num_classes=10, size=8)


def _accuracy(model, data) -> float:
    x, y = data.test.tensors
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _plain(data, seed: int) -> float:
    """What a user writes without DEBA: a DataLoader at batch 16, SGD, a fixed number of epochs."""
    model = _model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    loader = torch.utils.data.DataLoader(data.train, batch_size=BATCH, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    model.train()
    for _ in range(EPOCHS):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return _accuracy(model, data)


def _deba(data, seed: int) -> float:
    """The same, through deba.fit with every default: profile "auto", the user's batch of 16."""
    model = _model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            deba.fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, epochs=EPOCHS,
                     batch_size=BATCH, progress=False, seed=seed, tensorboard=False)
    except deba.NonFiniteTraining:
        return float("nan")
    return _accuracy(model, data)


@pytest.mark.slow
def test_default_deba_ends_within_seed_noise_of_a_plain_fixed_batch_loop():
    data = load_dataset("digits", size=8, channels=1, seed=0)
    assert len(data.test) == 360
    pairs = [(_plain(data, s), _deba(data, s)) for s in SEEDS]
    print("digits MLP, fixed 16 vs DEBA defaults (accuracy %):",
          [(round(100 * f, 2), round(100 * d, 2)) for f, d in pairs])
    for fixed, adaptive in pairs:
        assert math.isnan(fixed) or not math.isnan(adaptive), "DEBA diverged where the fixed batch did not"
    diff = statistics.fmean(100 * (d - f) for f, d in pairs)
    assert diff >= -1.5, f"mean paired difference {diff:.2f} points"
