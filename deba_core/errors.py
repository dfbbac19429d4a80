"""The exceptions DEBA raises.

Every misconfiguration is a :class:`DebaConfigError` (a ``ValueError``), so callers can catch
one type. The error keeps a structured list of problems (field path, value, message) so tools can
show them, and its text names each field, echoes the value and says what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = ["ConfigProblem", "DebaConfigError", "DebaPluginError", "DebaError", "NonFiniteTraining", "format_loc"]


class DebaError(Exception):
    """Base class of every exception DEBA raises on purpose."""


class NonFiniteTraining(DebaError):
    """Training kept producing NaN/inf losses or gradients even after shrinking the batch."""


@dataclass(frozen=True)
class ConfigProblem:
    """One bad value: where it is, what it was, what is wrong."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        shown = _short_repr(self.value)
        return f"`{self.field}` {self.message}, but got {self.field.rsplit('.', 1)[-1]}={shown}"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_loc(loc: Iterable[Any]) -> str:
    """Turn a pydantic-style location tuple into a dotted path: ``("rules", 0, "op")`` -> ``rules[0].op``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


class DebaConfigError(DebaError, ValueError):
    """A misconfiguration: a bad profile value, an unknown name, an option that cannot work.

    Attributes:
        problems: every problem found, each with its field path, value and message.
        remedy: what to change, when there is one obvious fix.

    Example:
        >>> err = DebaConfigError.single("growth_factor", 0.9, "must be > 1")
        >>> str(err)
        '`growth_factor` must be > 1, but got growth_factor=0.9'
        >>> err.problems[0].field
        'growth_factor'
    """

    def __init__(
        self,
        message: str,
        problems: Sequence[ConfigProblem] = (),
        remedy: str | None = None,
    ) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        self.remedy = remedy
        text = message if remedy is None else f"{message}\n{remedy}"
        super().__init__(text)

    @property
    def fields(self) -> list[str]:
        """The field paths of all problems, in order."""
        return [p.field for p in self.problems]

    @classmethod
    def single(cls, field: str, value: Any, message: str, remedy: str | None = None) -> "DebaConfigError":
        """An error about one field, e.g. ``single("window", 1, "must be >= 2")``."""
        problem = ConfigProblem(field, value, message)
        return cls(str(problem), [problem], remedy)

    @classmethod
    def many(cls, title: str, problems: Sequence[ConfigProblem], remedy: str | None = None) -> "DebaConfigError":
        """An error listing several problems under one title."""
        if len(problems) == 1:
            return cls(f"{title}: {problems[0]}", problems, remedy)
        lines = "\n".join(f"  - {p}" for p in problems)
        return cls(f"{title} ({len(problems)} problems):\n{lines}", problems, remedy)


class DebaPluginError(DebaError):
    """A plugin could not be loaded, or its object is not what its entry-point group expects.

    The message names the plugin, its entry-point group and its distribution; the original error
    is chained as ``__cause__``.
    """
