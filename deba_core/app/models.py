"""Small built-in networks for ``deba run``, and building any timm/torchvision model by name."""

from __future__ import annotations

from torch import nn

from deba.profiles.detection import build_model
from deba.errors import DebaConfigError

__all__ = ["SMALL_MODELS", "SmallCNN", "SmallResNet", "make_model"]


class SmallCNN(nn.Module):
    """A compact CNN for 32x32 images: three conv-BN-ReLU stages and a linear head (~0.1M params).

    Example:
        >>> import torch
        >>> SmallCNN(1, 10)(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()

        def stage(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(stage(in_channels, width), stage(width, 2 * width), stage(2 * width, 2 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class SmallMLP(nn.Module):
    """A two-hidden-layer perceptron on flattened images."""

    def __init__(self, in_features: int, num_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


class _Basic(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN pairs and an identity (or 1x1 projection) shortcut."""

    def __init__(self, i: int, o: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                  nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o))
        self.short = (nn.Identity() if stride == 1 and i == o else
                      nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o)))

    def forward(self, x):
        return nn.functional.relu(self.body(x) + self.short(x))


class SmallResNet(nn.Module):
    """ResNet-18's layout (four stages of two basic blocks) at a narrower width, CIFAR-style stem.

    ``width=64`` is ResNet-18's own width (11M parameters); the default ``width=16`` has 0.7M, and
    the study's ``fashion-resnet`` task uses ``width=8`` (0.18M), which trains 40,000 samples on two
    cores in about a minute.

    Example:
        >>> import torch
        >>> SmallResNet(1, 10, width=8)(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        chans = [w, 2 * w, 4 * w, 8 * w]
        prev = w
        for i, c in enumerate(chans):
            layers += [_Basic(prev, c, 1 if i == 0 else 2), _Basic(c, c, 1)]
            prev = c
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


SMALL_MODELS = ("small-cnn", "small-mlp", "small-resnet")


def make_model(name: str, *, in_channels: int, num_classes: int, size: int = 32, width: int | None = None) -> nn.Module:
    """A built-in small net, or a timm/torchvision model (random weights) adapted to the input.

    Args:
        width: the channel width of ``small-cnn`` / ``small-resnet`` or the hidden width of
            ``small-mlp`` (``None``: each net's default); a timm/torchvision model takes none.

    Example:
        >>> make_model("small-resnet", in_channels=1, num_classes=10, width=8).head.in_features
        64
    """
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise DebaConfigError.single("width", width, "must be a positive integer")
        if name not in SMALL_MODELS:
            raise DebaConfigError.single("width", width, f"applies only to {', '.join(SMALL_MODELS)}, not to {name!r}")
    sized = {} if width is None else {"hidden" if name == "small-mlp" else "width": width}
    if name == "small-cnn":
        return SmallCNN(in_channels, num_classes, **sized)
    if name == "small-mlp":
        return SmallMLP(in_channels * size * size, num_classes, **sized)
    if name == "small-resnet":
        return SmallResNet(in_channels, num_classes, **sized)
    kwargs = {}
    try:
        import timm

        if name in timm.list_models():
            kwargs["in_chans"] = in_channels
            if "vit" in name or "deit" in name:
                kwargs["img_size"] = size
            return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    except ImportError:
        pass
    model = build_model(name, num_classes=num_classes)
    if in_channels != 3:
        raise DebaConfigError.single(
            "model", name, f"is a torchvision model built for 3-channel input, but the data has {in_channels}",
            remedy="Use --channels 3 (grey images are repeated), a timm model, or small-cnn.",
        )
    return model
