"""Learning-rate coupling (rule 7) that composes with any ``torch.optim.lr_scheduler``.

An LR scheduler owns ``param_group["lr"]``: it writes its schedule there (and chainable forms read
it back). DEBA therefore never overwrites it. Optimizer step hooks multiply each group's LR by the
DEBA factor just before ``optimizer.step()`` and put the scheduled value back right after, so the
LR actually used is ``schedule x factor`` and the scheduler sees only its own values.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from deba.errors import DebaConfigError

__all__ = ["LRCoupler"]


class LRCoupler:
    """Applies ``factor`` to every param group's LR for the duration of each ``optimizer.step()``.

    Args:
        optimizer: the optimizer to couple.
        factor: the initial factor (usually ``scheduler.lr_factor``).

    Example:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.ones(1))
        >>> opt = torch.optim.SGD([p], lr=0.1)
        >>> coupler = LRCoupler(opt, factor=2.0)
        >>> p.grad = torch.ones(1)
        >>> opt.step()
        >>> round(p.item(), 6), opt.param_groups[0]["lr"], coupler.last_used
        (0.8, 0.1, [0.2])
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 1.0) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise DebaConfigError.single("optimizer", type(optimizer).__name__, "must be a torch.optim.Optimizer")
        self.optimizer = optimizer
        self._saved: list[Any] | None = None
        self.factor = factor
        self.last_used: list[float] = [float(g["lr"]) * factor for g in optimizer.param_groups]
        # An optimizer subclass whose step() calls super().step() runs the hooks twice, nested:
        # scale once on the way in, restore once on the way out.
        self._depth = 0
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    @property
    def factor(self) -> float:
        """The multiplier applied at the next ``optimizer.step()``."""
        return self._factor

    @factor.setter
    def factor(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise DebaConfigError.single("lr_factor", value, "must be a finite float > 0")
        self._factor = float(value)
        if self._saved is not None:
            # Set inside a step in flight: ``step(closure)`` runs the closure after the pre-hook,
            # and a framework that decides inside the closure (Lightning's on_before_optimizer_step)
            # means this step; the optimizer reads the LR after its closure.
            self._scale(self.optimizer)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        self._saved = [g["lr"] for g in optimizer.param_groups]
        self._scale(optimizer)

    def _scale(self, optimizer: torch.optim.Optimizer) -> None:
        for g, lr in zip(optimizer.param_groups, self._saved):
            g["lr"] = lr * self._factor
        self.last_used = [float(g["lr"]) for g in optimizer.param_groups]

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self._saved is not None:
            for g, lr in zip(optimizer.param_groups, self._saved):
                g["lr"] = lr
            self._saved = None

    def remove(self) -> None:
        """Detach from the optimizer."""
        for h in self._handles:
            h.remove()
        self._handles = []
