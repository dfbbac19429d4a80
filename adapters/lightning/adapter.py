"""The ``lightning`` entry of the adapter registry (imports nothing from lightning)."""

from __future__ import annotations

from typing import Any

from deba.training.adapter import FrameworkAdapter

__all__ = ["LightningAdapter"]


class LightningAdapter(FrameworkAdapter):
    """The ``lightning`` adapter: ``create(**options)`` gives a :class:`DebaCallback` for ``lightning.Trainer``.

    Example:
        >>> from deba.adapters.lightning import LightningAdapter
        >>> LightningAdapter.requires, LightningAdapter.extra
        (('lightning',), 'lightning')
    """

    name = "lightning"
    wraps = "lightning.Trainer (DebaCallback, and the DebaModule mixin for steps DEBA runs)"
    requires = ("lightning",)
    extra = "lightning"

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        from deba.adapters.lightning.callback import DebaCallback

        return DebaCallback(*args, **kwargs)
