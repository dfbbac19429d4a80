"""The built-in small nets: their width option, its validation, and the study's model kwargs."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

import deba
from deba.app.models import SmallResNet, make_model
from deba.app.study import PRESETS
from deba.app.study.cells import build_model


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_width_sets_each_small_nets_size():
    narrow = make_model("small-resnet", in_channels=1, num_classes=10, width=8)
    assert isinstance(narrow, SmallResNet) and narrow.head.in_features == 64
    assert _params(narrow) < _params(make_model("small-resnet", in_channels=1, num_classes=10)) / 3
    assert make_model("small-cnn", in_channels=1, num_classes=10, width=4).features[0][0].out_channels == 4
    assert make_model("small-mlp", in_channels=1, num_classes=10, size=8, width=7).net[1].out_features == 7
    assert narrow(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("width", [0, -3, True, 2.5, "8"])
def test_a_bad_width_is_refused_by_name(width):
    with pytest.raises(deba.DebaConfigError, match="width.*positive integer"):
        make_model("small-cnn", in_channels=1, num_classes=10, width=width)


def test_width_is_refused_for_a_library_model():
    with pytest.raises(deba.DebaConfigError, match="width.*applies only to small-cnn, small-mlp, small-resnet"):
        make_model("resnet18", in_channels=3, num_classes=10, width=8)


def test_the_study_builds_its_narrow_resnet_and_refuses_unknown_options():
    task = next(t for t in PRESETS["small"].tasks if t.name == "fashion-resnet")
    data = SimpleNamespace(channels=1, num_classes=10, size=32)
    model = build_model(task, data, seed=0)
    assert isinstance(model, SmallResNet) and model.head.in_features == 8 * task.model_kwargs["width"]
    again = build_model(task, data, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())), "seeded"
    with pytest.raises(deba.DebaConfigError, match=r"model_kwargs.*takes: width.*depth"):
        build_model(dataclasses.replace(task, model_kwargs={"depth": 3}), data, seed=0)
