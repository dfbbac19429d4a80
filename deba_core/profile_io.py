"""Reading and writing profiles: YAML, JSON and TOML, never pickle.

``load_profile`` takes a profile name (built-in or from a plugin's ``deba.profiles`` entry point)
or a path. Every failure - a missing file, a syntax error, a value out of range - is a
``DebaConfigError`` whose field path says where the problem is.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigProblem, DebaConfigError
from .profile import ArchitectureProfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["PROFILE_SUFFIXES", "load_profile", "parse_profile_text", "write_profile", "builtin_profiles"]

PROFILE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


def _syntax_error(fmt: str, source: str, exc: BaseException) -> DebaConfigError:
    where = ""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(exc, json.JSONDecodeError):
        where = f" at line {exc.lineno}, column {exc.colno}"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    problem = ConfigProblem("<document>", source, f"is not valid {fmt.upper()}{where}: {detail}")
    return DebaConfigError(
        f"cannot parse profile {source}: not valid {fmt.upper()}{where}: {detail}",
        [problem],
        remedy=f"Fix the {fmt.upper()} syntax, or write the file with ArchitectureProfile.to_file().",
    )


def parse_profile_text(text: str, fmt: str, source: str = "<string>") -> ArchitectureProfile:
    """Parse profile text in ``fmt`` (``"yaml"``, ``"json"`` or ``"toml"``) and validate it.

    Raises:
        DebaConfigError: on a syntax error (field ``<document>``), a document that is not a
            mapping (field ``<root>``), or any invalid value (its field path).
    """
    if fmt not in ("yaml", "json", "toml"):
        raise DebaConfigError.single("format", fmt, "must be one of 'yaml', 'json', 'toml'")
    if not isinstance(text, str):
        raise DebaConfigError.single("text", type(text).__name__, "must be a str")
    try:
        if fmt == "yaml":
            data = yaml.safe_load(text)
        elif fmt == "json":
            data = json.loads(text, parse_constant=_reject_constant)
        else:
            data = tomllib.loads(text)
    except (yaml.YAMLError, ValueError, RecursionError, TypeError) as exc:
        # ValueError covers JSONDecodeError and TOMLDecodeError; deep nesting gives RecursionError.
        raise _syntax_error(fmt, source, exc) from exc
    if not isinstance(data, Mapping):
        raise DebaConfigError(
            f"profile {source} must be a mapping of fields, but its top level is {type(data).__name__}",
            [ConfigProblem("<root>", data, "must be a mapping of profile fields")],
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise DebaConfigError.many(
            f"invalid profile {source}",
            [ConfigProblem(f"<root>.{k!r}", k, "keys must be strings") for k in bad_keys],
        )
    try:
        return ArchitectureProfile.model_validate(dict(data))
    except DebaConfigError as exc:
        raise DebaConfigError(f"profile {source}: {exc}", exc.problems, exc.remedy) from exc
    except RecursionError as exc:
        raise DebaConfigError.single("<root>", source, "is nested too deeply") from exc


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in a profile")


def _looks_like_path(spec: str) -> bool:
    return Path(spec).suffix.lower() in PROFILE_SUFFIXES or os.sep in spec or "/" in spec


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
        path = Path(spec)
        fmt = PROFILE_SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise DebaConfigError.single(
                "profile", spec, f"must end in one of {sorted(PROFILE_SUFFIXES)} to be read as a file"
            )
        if not path.is_file():
            raise DebaConfigError.single("profile", spec, "is not an existing file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DebaConfigError.single("profile", spec, f"cannot be read ({exc})") from exc
        return parse_profile_text(text, fmt, source=str(path))
    from .registry import registry

    return registry.load("profiles", spec)


def builtin_profiles() -> dict[str, ArchitectureProfile]:
    """Every profile registered under the ``deba.profiles`` entry point, built-ins included.

    A plugin profile that fails to load is skipped with a warning naming it.
    """
    from .registry import registry

    return registry.load_all("profiles")


# Writing ------------------------------------------------------------------------------------


def write_profile(profile: ArchitectureProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` to ``path`` in the format its suffix names, atomically."""
    path = Path(path)
    fmt = PROFILE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DebaConfigError.single("path", str(path), f"must end in one of {sorted(PROFILE_SUFFIXES)}")
    data = profile.to_dict()
    if fmt == "yaml":
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    elif fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = dumps_toml(data)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DebaConfigError.single("value", value, "must be finite to be written as TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal is a valid TOML basic string
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    raise DebaConfigError.single("value", value, "cannot be written as a TOML scalar")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dumps_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for profile-shaped data (scalars, tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if value is None:
            continue  # TOML has no null; a missing optional field reads back as None
        full = f"{prefix}{_toml_key(key)}"
        if isinstance(value, Mapping):
            tables.append((full, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((full, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_scalar(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for full, table in tables:
        out += f"\n[{full}]\n" + dumps_toml(table, prefix=f"{full}.")
    for full, items in arrays:
        for item in items:
            out += f"\n[[{full}]]\n" + dumps_toml(item, prefix=f"{full}.")
    return out
