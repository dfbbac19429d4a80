"""DEBA in ``lightning.Trainer``: :class:`DebaCallback`, the :class:`DebaModule` mixin, :func:`deba_dataloader`.

``lightning`` (2.x) is the ``deba[lightning]`` extra. This package imports it only when one of its
names is used (``from deba.adapters.lightning import DebaCallback``); without it that import raises
an ImportError naming the extra. The registry entry (:class:`LightningAdapter`) imports nothing
heavy, so ``deba plugins`` lists it either way. See ``docs/lightning.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DebaCallback", "DebaModule", "LightningAdapter", "LightningBatchSampler", "SUPPORTED_LIGHTNING",
           "deba_dataloader"]

#: The lightning versions this adapter is tested against (see docs/lightning.md).
SUPPORTED_LIGHTNING = ">=2.0,<3"

# Nothing is imported with the package itself, LightningAdapter included: adapter.create imports
# the callback module, which imports this package's _require, so an eager import here would close
# a circle (package -> adapter -> callback -> package).
_LAZY = {
    "DebaCallback": "deba.adapters.lightning.callback",
    "LightningAdapter": "deba.adapters.lightning.adapter",
    "DebaModule": "deba.adapters.lightning.module",
    "LightningBatchSampler": "deba.adapters.lightning.data",
    "deba_dataloader": "deba.adapters.lightning.data",
}


def _require() -> None:
    """Import lightning, or raise an ImportError naming the extra."""
    try:
        import lightning  # noqa: F401
    except ImportError as exc:
        raise ImportError("deba.adapters.lightning needs lightning 2.x: pip install 'deba[lightning]'") from exc


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deba.adapters.lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's attributes and its lazy names, so tab completion shows them."""
    return sorted(set(globals()) | set(_LAZY))
