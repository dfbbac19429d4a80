"""Raw PyTorch adapter: ``deba.fit`` (DEBA runs the loop) and ``DebaController`` (you run it).

Both run the shared step engine (``deba.training.step``); this module is their entry in the
adapter registry.
"""

from __future__ import annotations

from typing import Any

from deba.training.adapter import FrameworkAdapter
from deba.training.controller import DebaController
from deba.training.step import StepEngine, StepOutcome, loss_of

__all__ = ["DebaController", "StepEngine", "StepOutcome", "TorchAdapter", "loss_of"]


class TorchAdapter(FrameworkAdapter):
    """The ``torch`` adapter: ``create(model, optimizer, **options)`` gives a :class:`deba.DebaController`.

    For a loop DEBA runs itself, call :func:`deba.fit`.

    Example:
        >>> import torch, deba
        >>> model = torch.nn.Linear(4, 2)
        >>> ctl = deba.registry.load("adapters", "torch", expected=deba.FrameworkAdapter).create(
        ...     model, torch.optim.SGD(model.parameters(), lr=0.1), profile="mlp")
        >>> type(ctl).__name__
        'DebaController'
    """

    name = "torch"
    wraps = "your own PyTorch loop (deba.DebaController) or deba.fit"

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> DebaController:
        return DebaController(*args, **kwargs)
