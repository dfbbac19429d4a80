"""Glue between pydantic and :class:`DebaConfigError`.

Pydantic's ``ValidationError`` has good locations but is a foreign type; DEBA promises one error
type for every misconfiguration. :class:`StrictModel` re-raises validation failures as
``DebaConfigError`` with pydantic's locations kept as dotted field paths. Cross-field checks raise
:class:`CrossFieldError`, which carries its own field path (pydantic would otherwise put it at
the model root, where it names no field).
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from deba.errors import ConfigProblem, DebaConfigError, format_loc

__all__ = ["CrossFieldError", "StrictModel", "config_error_from_validation"]


class CrossFieldError(ValueError):
    """Raised inside a model validator; each entry is ``(loc, value, message)``."""

    def __init__(self, problems: Sequence[tuple[tuple[Any, ...], Any, str]]) -> None:
        self.entries = list(problems)
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, _, msg in self.entries))


def _clean_msg(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:] if msg else msg


def config_error_from_validation(exc: ValidationError, title: str) -> DebaConfigError:
    """Convert a pydantic ``ValidationError`` into a ``DebaConfigError`` keeping locations."""
    problems: list[ConfigProblem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldError):
            for sub_loc, value, msg in cause.entries:
                problems.append(ConfigProblem(format_loc(loc + tuple(sub_loc)), value, msg))
            continue
        if isinstance(cause, DebaConfigError) and cause.problems:
            # A nested model's own __init__ already converted its errors (pydantic calls custom
            # __init__ methods for nested models): prefix their paths with the outer location.
            outer = format_loc(loc)
            for sub in cause.problems:
                inner = "" if sub.field == "<root>" else sub.field
                joined = outer if not inner else (f"{outer}{inner}" if inner.startswith("[") else f"{outer}.{inner}")
                problems.append(ConfigProblem(joined if loc else (inner or "<root>"), sub.value, sub.message))
            continue
        problems.append(ConfigProblem(format_loc(loc), err.get("input"), _clean_msg(err.get("msg", "is invalid"))))
    return DebaConfigError.many(title, problems)


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys and raises ``DebaConfigError``.

    Ints are strict (``"16"`` and ``True`` are not batch sizes); floats accept ints but not
    strings, NaN or infinity.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error_from_validation(exc, f"invalid {type(self).__name__}") from exc

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise config_error_from_validation(exc, f"invalid {cls.__name__}") from exc

    def replace(self, **changes: Any):
        """A validated copy with some fields changed (``model_copy`` would skip validation)."""
        data = self.model_dump(mode="python")
        data.update(changes)
        return type(self).model_validate(data)
