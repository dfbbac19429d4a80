"""HuggingFace ``Trainer`` with an adaptive, architecture-aware batch size: :class:`DebaTrainer`.

``transformers`` and ``accelerate`` are the ``deba[hf]`` extra. This package imports them only
when one of its trainer names is used (``from deba.adapters.huggingface import DebaTrainer``);
without them that import raises an ImportError naming the extra. The registry entry
(:class:`HuggingFaceAdapter`) imports nothing heavy, so ``deba plugins`` lists it either way.
See ``trainer.py`` for how DEBA fits into ``Trainer.train()``.
"""

from __future__ import annotations

from typing import Any

from deba.adapters.huggingface.adapter import HuggingFaceAdapter

__all__ = ["DebaTrainer", "HuggingFaceAdapter", "SUPPORTED_TRANSFORMERS", "SampleClockLR", "TrainerBatchSampler"]

#: The transformers versions this adapter is tested against (see docs/huggingface.md).
SUPPORTED_TRANSFORMERS = ">=5.0,<6"

_LAZY = {
    "DebaTrainer": "deba.adapters.huggingface.trainer",
    "SampleClockLR": "deba.adapters.huggingface.schedule",
    "TrainerBatchSampler": "deba.adapters.huggingface.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deba.adapters.huggingface' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's attributes and its lazy names, so tab completion shows them."""
    return sorted(set(globals()) | set(_LAZY))
