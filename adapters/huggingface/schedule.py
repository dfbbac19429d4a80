"""A Trainer LR schedule on DEBA's sample clock."""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["SampleClockLR"]


class SampleClockLR(torch.optim.lr_scheduler.LambdaLR):
    """A Trainer LR schedule evaluated on a sample clock instead of the optimizer-step count.

    ``clock()`` returns "equivalent fixed-batch steps" (samples seen / starting batch), so the
    schedule ends when the sample budget ends whatever the batch sizes were.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
        >>> inner = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / 10)
        >>> SampleClockLR(inner, lambda: 5.0).get_lr()
        [0.5]
    """

    def __init__(self, inner: torch.optim.lr_scheduler.LambdaLR, clock: Callable[[], float]) -> None:
        self._clock = clock
        super().__init__(inner.optimizer, inner.lr_lambdas, last_epoch=-1)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        k = self._clock()
        return [base * lmbda(k) for base, lmbda in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        # The clock is a live object (DEBA's sample counter, saved in deba_state.json), not state.
        state = super().state_dict()
        state.pop("_clock", None)
        return state
