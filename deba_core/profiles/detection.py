"""From a model (or a model name) to the profile that fits it.

Classification works on measured traits, never on class names, so a ResNet-18 built by timm, by
torchvision or by hand lands on the same profile. The rules, in order:

1. attention blocks and (almost) no convolutions -> ``vit`` family (``vit_b16``);
2. several depthwise convolutions -> lightweight: hard-swish -> ``mobilenetv3``, SiLU ->
   ``efficientnet_b0``, otherwise the nearest, ``mobilenetv3``;
3. dense concatenations -> ``densenet121``;
4. residual additions -> ``resnet50`` when deep or bottlenecked (many 1x1 convolutions),
   ``resnet18`` otherwise;
5. a plain CNN -> nearest by depth (``resnet18`` or ``resnet50``); only linear layers -> ``mlp``;
6. anything else -> ``generic``. Detection never fails on an unusual model.

A match is ``exact`` when the traits also match the reference network's signature (its weight
layer count), ``family`` when only the family does, ``generic`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.profiles.traits import ArchitectureTraits, measure_traits
from deba.registry import registry

__all__ = ["Detection", "build_model", "classify", "detect", "profile_for"]

# Weight layers (conv + linear) of the reference networks, whichever library builds them.
# torchvision's ViT keeps the q/k/v projection as a bare parameter inside nn.MultiheadAttention,
# so it has 12 fewer Linear layers than timm's.
_REFERENCE_DEPTH: dict[str, tuple[int, ...]] = {
    "resnet18": (21,),
    "resnet50": (54,),
    "densenet121": (121,),
    "efficientnet_b0": (82,),
    "mobilenetv3": (64,),
    "vit_b16": (38, 50),
}


@dataclass(frozen=True)
class Detection:
    """Result of :func:`detect`: the traits, the chosen profile and why."""

    traits: ArchitectureTraits
    profile_name: str
    family: str
    match: str  # "exact", "family" or "generic"
    reason: str

    @property
    def profile(self) -> ArchitectureProfile:
        """The chosen profile, loaded from the registry (the lookup ``load_profile`` makes for a name).

        Detection sits below ``deba.profiles.loading`` (which imports it for ``"auto"``), so it asks
        the registry itself rather than importing ``load_profile`` back.
        """
        return registry.load("profiles", self.profile_name, expected=ArchitectureProfile)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "profile": self.profile_name,
            "family": self.family,
            "match": self.match,
            "reason": self.reason,
            "traits": self.traits.model_dump(mode="json"),
        }


def _exact(name: str, t: ArchitectureTraits) -> bool:
    # The classifier head may be replaced (10 classes instead of 1000) but not removed or doubled.
    return any(abs(t.depth - ref) <= 1 for ref in _REFERENCE_DEPTH[name])


def classify(t: ArchitectureTraits) -> tuple[str, str, str]:
    """(profile name, family, reason) for a set of traits."""
    if t.attention >= 2 and t.n_conv <= 2:
        return "vit_b16", "vit" if t.input_kind == "image" else "transformer", (
            f"{t.attention} attention blocks and {t.n_conv} convolutions: transformer"
        )
    if t.n_depthwise_conv >= 3:
        act = t.dominant_activation
        if act == "hardswish":
            return "mobilenetv3", "mobilenet", f"{t.n_depthwise_conv} depthwise convolutions with hard-swish"
        if act == "silu":
            return "efficientnet_b0", "efficientnet", f"{t.n_depthwise_conv} depthwise convolutions with SiLU"
        return "mobilenetv3", "mobilenet", f"{t.n_depthwise_conv} depthwise convolutions ({act}): lightweight CNN"
    if t.dense:
        return "densenet121", "densenet", f"{t.n_dense_concat} channel concatenations: dense connectivity"
    if t.n_conv >= 3 and t.residual:
        bottleneck = t.n_pointwise_conv >= 0.4 * t.n_conv
        if t.depth >= 35 or bottleneck:
            return "resnet50", "resnet", f"{t.n_residual_add} residual additions, depth {t.depth}: deep ResNet"
        return "resnet18", "resnet", f"{t.n_residual_add} residual additions, depth {t.depth}: shallow ResNet"
    if t.n_conv >= 1:
        if t.depth >= 35:
            return "resnet50", "cnn", f"plain CNN of depth {t.depth}: nearest is the deep-CNN profile"
        return "resnet18", "cnn", f"plain CNN of depth {t.depth}: nearest is the shallow-CNN profile"
    if t.n_linear >= 1 and t.attention == 0 and t.n_embedding == 0:
        return "mlp", "mlp", f"{t.n_linear} linear layers and nothing else"
    return "generic", "generic", "no known architecture pattern"


def build_model(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a timm or torchvision model by name with random weights (never downloads).

    Raises:
        DebaConfigError: the name is known to neither library (with near names suggested).
    """
    if not isinstance(name, str) or not name:
        raise DebaConfigError.single("model", name, "must be a timm or torchvision model name")
    extra = dict(kwargs)
    if num_classes is not None:
        extra["num_classes"] = num_classes
    known: list[str] = []
    try:
        import timm

        if name in timm.list_models():
            return timm.create_model(name, pretrained=False, **extra)
        known += timm.list_models()
    except ImportError:
        pass
    try:
        import torchvision

        tv_names = torchvision.models.list_models()
        if name in tv_names:
            return torchvision.models.get_model(name, weights=None, **extra)
        known += tv_names
    except ImportError:
        pass
    if not known:
        raise DebaConfigError.single(
            "model", name, "needs timm or torchvision to be built by name",
            remedy="pip install 'deba[timm]' (or torchvision), or pass an nn.Module.",
        )
    import difflib

    near = difflib.get_close_matches(name, sorted(set(known)), n=5, cutoff=0.6)
    raise DebaConfigError.single(
        "model", name, "is not a timm or torchvision model name",
        remedy=f"Did you mean: {', '.join(near)}?" if near else "See timm.list_models() or torchvision.models.list_models().",
    )


def detect(model_or_name: nn.Module | str) -> Detection:
    """Measure ``model_or_name`` and choose its profile (see module docstring)."""
    model = build_model(model_or_name) if isinstance(model_or_name, str) else model_or_name
    if not isinstance(model, nn.Module):
        raise DebaConfigError.single("model", type(model_or_name).__name__, "must be an nn.Module or a model name")
    traits = measure_traits(model)
    name, family, reason = classify(traits)
    if name in _REFERENCE_DEPTH:
        match = "exact" if _exact(name, traits) and family not in ("cnn", "transformer") else "family"
    else:
        match = "family" if name != "generic" else "generic"
    return Detection(traits=traits, profile_name=name, family=family, match=match, reason=reason)


def profile_for(model_or_name: nn.Module | str | ArchitectureProfile) -> ArchitectureProfile:
    """The built-in profile that fits a model, a timm/torchvision name, or a profile name.

    Example:
        >>> import torch, deba
        >>> deba.profile_for(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))).name
        'mlp'
    """
    if isinstance(model_or_name, ArchitectureProfile):
        return model_or_name
    return detect(model_or_name).profile
