"""``DebaModule``: a LightningModule mixin that lets DEBA run each training step.

What a callback cannot do, this does: the global batch runs as micro-batches under the memory cap
(so it may exceed what fits; out-of-memory steps re-run smaller), a one-micro-batch step is split
in two on noise measurement steps, and under DDP each rank's gradient is read before DEBA reduces it
once (DDP's ``no_sync``). It uses Lightning's manual optimization: you write ``deba_loss(batch)``
(the mean loss of any slice of a batch) instead of ``training_step``; the mixin steps the
optimizer, and the LR schedules of interval ``"step"`` / ``"epoch"`` through your
``lr_scheduler_step``.
"""

from __future__ import annotations

from typing import Any

from deba.adapters.lightning import _require

_require()

import torch  # noqa: E402

from deba.errors import DebaConfigError  # noqa: E402

__all__ = ["DebaModule"]


class DebaModule:
    """Mix in before ``LightningModule``: ``class Net(DebaModule, lightning.LightningModule)``.

    Implement :meth:`deba_loss`; do not override ``training_step``. Needs a :class:`DebaCallback`
    in the Trainer's callbacks. Lightning's ``gradient_clip_val`` does not apply under manual
    optimization: give ``DebaCallback(max_grad_norm=...)`` instead.

    Example (not run here: it needs lightning)::

        class Net(DebaModule, lightning.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Linear(784, 10)

            def deba_loss(self, batch):
                x, y = batch
                return torch.nn.functional.cross_entropy(self.net(x.flatten(1)), y)
    """

    _deba_runs_steps = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def deba_loss(self, batch: Any) -> torch.Tensor:
        """The mean loss of ``batch`` (any slice of a training batch: DEBA calls it per micro-batch)."""
        raise NotImplementedError("a DebaModule implements deba_loss(batch) -> mean loss")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        callback = _deba_callback(self)
        loss = callback.run_module_step(self, batch)
        return loss


def _deba_callback(module: Any) -> Any:
    from deba.adapters.lightning.callback import DebaCallback

    for cb in module.trainer.callbacks:
        if isinstance(cb, DebaCallback):
            return cb
    raise DebaConfigError.single("callbacks", [type(c).__name__ for c in module.trainer.callbacks],
                                 "must include a DebaCallback to train a DebaModule",
                                 remedy="lightning.Trainer(callbacks=[DebaCallback(...)], ...)")
