"""Profile file formats: YAML, JSON and TOML as plain mappings, never pickle.

This module knows documents, not profiles: :func:`read_document` gives a ``dict``,
:func:`write_document` writes one. Validation into an ``ArchitectureProfile`` is
``deba.profiles.loading``'s job, so nothing here imports the schema.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from deba.errors import ConfigProblem, DebaConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["PROFILE_SUFFIXES", "dumps_toml", "format_of", "read_document", "write_document"]

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


def read_document(text: str, fmt: str, source: str = "<string>") -> dict[str, Any]:
    """Parse ``text`` in ``fmt`` (``"yaml"``, ``"json"`` or ``"toml"``) into a plain mapping.

    Raises:
        DebaConfigError: on a syntax error (field ``<document>``), a document that is not a
            mapping (field ``<root>``), or a key that is not a string.
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
    return dict(data)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in a profile")


def format_of(path: str | os.PathLike[str]) -> str | None:
    """``"yaml"``, ``"json"`` or ``"toml"`` from a file name's suffix, or ``None``."""
    return PROFILE_SUFFIXES.get(Path(path).suffix.lower())


# Writing ------------------------------------------------------------------------------------


def write_document(data: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the mapping ``data`` to ``path`` in the format its suffix names, atomically."""
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise DebaConfigError.single("path", str(path), f"must end in one of {sorted(PROFILE_SUFFIXES)}")
    data = dict(data)
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
