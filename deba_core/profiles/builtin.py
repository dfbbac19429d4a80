"""The built-in profiles, shipped as YAML data files beside this module.

Each is registered in ``pyproject.toml`` under the ``deba.profiles`` entry point as a callable
returning the profile, exactly like a third-party plugin would register one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from deba.profiles.schema import ArchitectureProfile
from deba.profiles.loading import parse_profile_text

__all__ = ["BUILTIN_NAMES", "load_builtin"]

BUILTIN_NAMES = (
    "resnet18",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    "mobilenetv3",
    "vit_b16",
    "mlp",
    "generic",
    "paper",
)


@lru_cache(maxsize=None)
def load_builtin(name: str) -> ArchitectureProfile:
    """Read ``profiles/data/<name>.yaml`` from the installed package."""
    text = resources.files("deba.profiles").joinpath("data", f"{name}.yaml").read_text(encoding="utf-8")
    return parse_profile_text(text, "yaml", source=f"built-in profile {name!r}")


def _entry(name: str):
    def factory() -> ArchitectureProfile:
        return load_builtin(name)

    factory.__name__ = name
    factory.__doc__ = f"The built-in ``{name}`` profile."
    return factory


resnet18 = _entry("resnet18")
resnet50 = _entry("resnet50")
densenet121 = _entry("densenet121")
efficientnet_b0 = _entry("efficientnet_b0")
mobilenetv3 = _entry("mobilenetv3")
vit_b16 = _entry("vit_b16")
mlp = _entry("mlp")
generic = _entry("generic")
paper = _entry("paper")
