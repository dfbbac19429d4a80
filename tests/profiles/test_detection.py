"""Architecture detection: the six named networks from timm and torchvision, and custom modules."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import deba

SIX = [
    ("resnet18", "resnet18", "resnet18"),
    ("resnet50", "resnet50", "resnet50"),
    ("densenet121", "densenet121", "densenet121"),
    ("efficientnet_b0", "efficientnet_b0", "efficientnet_b0"),
    ("mobilenetv3_large_100", "mobilenet_v3_large", "mobilenetv3"),
    ("vit_base_patch16_224", "vit_b_16", "vit_b16"),
]


@pytest.mark.slow
@pytest.mark.parametrize("timm_name,tv_name,profile", SIX, ids=[s[2] for s in SIX])
def test_six_architectures_match_exactly_in_timm_and_torchvision(timm_name, tv_name, profile):
    for model in (timm.create_model(timm_name, pretrained=False, num_classes=10),
                  torchvision.models.get_model(tv_name, weights=None, num_classes=10)):
        found = deba.detect(model)
        assert found.profile_name == profile, (type(model), found.reason)
        assert found.match == "exact", found.to_dict()
        assert deba.profile_for(model).name == profile


def test_detection_by_name_and_unknown_names():
    assert deba.profile_for("resnet18").name == "resnet18"  # timm name
    assert deba.profile_for("mobilenet_v3_small").name == "mobilenetv3"  # torchvision-only name
    with pytest.raises(deba.DebaConfigError, match="resnet18"):
        deba.profile_for("resnet81")


def test_detection_leaves_the_model_as_it_was():
    model = torchvision.models.resnet18(weights=None, num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deba.detect(model)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "BN running stats must not change"


@pytest.mark.slow
def test_traits_are_measured_not_guessed():
    t = deba.detect(torchvision.models.densenet121(weights=None)).traits
    assert t.n_dense_concat >= 50 and t.dense and not t.residual
    t = deba.detect(timm.create_model("efficientnet_b0", pretrained=False)).traits
    assert t.n_depthwise_conv == 16 and t.n_squeeze_excitation == 16 and t.dominant_activation == "silu"
    t = deba.detect(timm.create_model("vit_base_patch16_224", pretrained=False)).traits
    assert t.attention == 12 and t.n_layernorm >= 24 and t.n_residual_add >= 24


class TinyResNet(nn.Module):
    """Hand-written residual net: no library class names to go by."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                                  nn.Conv2d(16, 16, 3, padding=1)) for _ in range(4))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(x + block(x))
        return self.head(x.mean((2, 3)))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)
        self.head = nn.Linear(32, 2)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))


class Weird(nn.Module):
    def forward(self, x):
        return x


def test_custom_modules_get_the_nearest_family():
    found = deba.detect(TinyResNet())
    assert found.profile_name == "resnet18" and found.family == "resnet" and found.match == "family"
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    assert deba.detect(plain).family == "cnn"
    mlp = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    assert deba.profile_for(mlp).name == "mlp"
    tr = deba.detect(TinyTransformer())
    assert tr.profile_name == "vit_b16" and tr.family == "transformer" and tr.match == "family"
    assert deba.detect(Weird()).profile_name == "generic"
    with pytest.raises(deba.DebaConfigError):
        deba.detect(42)  # type: ignore[arg-type]
