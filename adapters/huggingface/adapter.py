"""The ``huggingface`` entry of the adapter registry (imports nothing from transformers)."""

from __future__ import annotations

from typing import Any

from deba.training.adapter import FrameworkAdapter

__all__ = ["HuggingFaceAdapter"]


class HuggingFaceAdapter(FrameworkAdapter):
    """The ``huggingface`` adapter: ``create(**trainer_kwargs)`` gives a ``DebaTrainer``.

    Example:
        >>> from deba.adapters.huggingface import HuggingFaceAdapter
        >>> HuggingFaceAdapter.requires
        ('transformers', 'accelerate')
    """

    name = "huggingface"
    wraps = "transformers.Trainer (DebaTrainer)"
    requires = ("transformers", "accelerate")
    extra = "hf"

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        from deba.adapters.huggingface.trainer import DebaTrainer

        return DebaTrainer(*args, **kwargs)
