"""Profile name resolution: names, files and ``"auto"`` -> a validated ``ArchitectureProfile``.

This sits above the registry and above ``deba.profiles.detection`` (``"auto"`` detects; detection
never imports this module back): the registry only finds entry points (and is told to expect an
``ArchitectureProfile``); file reading is ``deba.profiles.formats``; validation is the schema's.
Every failure - a missing file, a syntax error, a value out of range - is a ``DebaConfigError``
whose field path says where the problem is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deba.errors import DebaConfigError
from deba.profiles.detection import profile_for
from deba.profiles.formats import PROFILE_SUFFIXES, format_of, read_document
from deba.profiles.schema import ArchitectureProfile
from deba.registry import registry

__all__ = ["builtin_profiles", "load_profile", "parse_profile_text", "resolve_profile"]


def parse_profile_text(text: str, fmt: str, source: str = "<string>") -> ArchitectureProfile:
    """Parse profile text in ``fmt`` (``"yaml"``, ``"json"`` or ``"toml"``) and validate it.

    Raises:
        DebaConfigError: on a syntax error (field ``<document>``), a document that is not a
            mapping (field ``<root>``), or any invalid value (its field path).

    Example:
        >>> import json, deba
        >>> from deba.profiles.loading import parse_profile_text
        >>> parse_profile_text(json.dumps(deba.load_profile("generic").to_dict()), "json").name
        'generic'
    """
    data = read_document(text, fmt, source)
    try:
        return ArchitectureProfile.model_validate(data)
    except DebaConfigError as exc:
        raise DebaConfigError(f"profile {source}: {exc}", exc.problems, exc.remedy) from exc
    except RecursionError as exc:
        raise DebaConfigError.single("<root>", source, "is nested too deeply") from exc


def _looks_like_path(spec: str) -> bool:
    return format_of(spec) is not None or os.sep in spec or "/" in spec


def _read_file(spec: str) -> ArchitectureProfile:
    path = Path(spec)
    fmt = format_of(path)
    if fmt is None:
        raise DebaConfigError.single("profile", spec, f"must end in one of {sorted(PROFILE_SUFFIXES)} to be read as a file")
    if not path.is_file():
        raise DebaConfigError.single("profile", spec, "is not an existing file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DebaConfigError.single("profile", spec, f"cannot be read ({exc})") from exc
    return parse_profile_text(text, fmt, source=str(path))


def load_profile(name_or_path: str | os.PathLike[str] | ArchitectureProfile) -> ArchitectureProfile:
    """Load a profile by name (built-in or plugin) or from a ``.yaml``/``.yml``/``.json``/``.toml`` file.

    Example:
        >>> import deba
        >>> deba.load_profile("resnet18").family
        'resnet'
    """
    if isinstance(name_or_path, ArchitectureProfile):
        return name_or_path
    if not isinstance(name_or_path, (str, os.PathLike)) or (isinstance(name_or_path, str) and not name_or_path):
        raise DebaConfigError.single(
            "profile", name_or_path, "must be a profile name, a path to a .yaml/.json/.toml file, or an ArchitectureProfile"
        )
    spec = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(spec):
        return _read_file(spec)
    return registry.load("profiles", spec, expected=ArchitectureProfile)


def builtin_profiles() -> dict[str, ArchitectureProfile]:
    """Every profile registered under the ``deba.profiles`` entry point, built-ins included.

    A plugin profile that fails to load is skipped with a warning naming it.
    """
    return registry.load_all("profiles", expected=ArchitectureProfile)


def resolve_profile(profile: ArchitectureProfile | str | os.PathLike[str], model: Any = None) -> ArchitectureProfile:
    """``"auto"`` -> architecture detection on ``model``; anything else -> :func:`load_profile`.

    Example:
        >>> import torch
        >>> from deba.profiles import resolve_profile
        >>> resolve_profile("auto", torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
        ...                                             torch.nn.Linear(8, 2))).family
        'mlp'
    """
    if isinstance(profile, str) and profile == "auto":
        if model is None:
            raise DebaConfigError.single("profile", "auto", "needs the model to detect its architecture")
        return profile_for(model)
    return load_profile(profile)
