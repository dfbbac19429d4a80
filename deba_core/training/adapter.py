"""The adapter contract: how a training framework is plugged into DEBA.

An adapter translates its framework's hooks into calls of the shared step engine
(``deba.training.step``); it decides nothing itself. It is registered under the ``deba.adapters``
entry-point group (DEBA's own adapters too) and found through the registry, so ``deba plugins``
lists it and a third-party adapter is used exactly like a built-in one.

A subclass sets three class attributes and implements :meth:`FrameworkAdapter.create`; the rest has
defaults. The module that holds the subclass must import without the framework installed (import
the framework inside ``create``), so ``deba plugins`` can list an adapter whose extra is missing.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import Any, ClassVar

__all__ = ["FrameworkAdapter"]


class FrameworkAdapter(ABC):
    """One framework integration: a name, what it wraps, and how it is created.

    Attributes:
        name: the registered name (``"torch"``, ``"huggingface"``, ...).
        wraps: what it plugs DEBA into, in words (shown by ``deba plugins``).
        requires: importable module names the adapter needs (checked by :meth:`available`).
        extra: the pip extra that installs them (``"hf"`` for ``pip install 'deba[hf]'``), if any.

    Example:
        >>> from deba.training.adapter import FrameworkAdapter
        >>> class Echo(FrameworkAdapter):
        ...     name, wraps = "echo", "nothing: returns its arguments"
        ...     @classmethod
        ...     def create(cls, *args, **kwargs):
        ...         return args, kwargs
        >>> Echo.available(), Echo.create(1, a=2)
        (True, ((1,), {'a': 2}))
    """

    name: ClassVar[str] = ""
    wraps: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        """The framework object with DEBA inside (a trainer, a callback, a controller...)."""

    @classmethod
    def available(cls) -> bool:
        """Whether every module in :attr:`requires` can be imported here."""
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @classmethod
    def missing(cls) -> list[str]:
        """The modules of :attr:`requires` that are not installed."""
        return [m for m in cls.requires if importlib.util.find_spec(m) is None]

    @classmethod
    def describe(cls) -> str:
        """One line: what it wraps and, when something is missing, how to install it."""
        missing = cls.missing()
        if not missing:
            return cls.wraps
        how = f"pip install 'deba[{cls.extra}]'" if cls.extra else f"install {', '.join(missing)}"
        return f"{cls.wraps} (needs {', '.join(missing)}: {how})"
