"""What DEBA refuses in a Lightning run, before it would silently train wrong (each with the remedy)."""

from __future__ import annotations

import math
from typing import Any

from deba.errors import DebaConfigError
from deba.training.options import check_positive_int

__all__ = ["check_options", "check_trainer", "guard_stepping_batches", "unguard_stepping_batches"]


def check_options(epochs: Any, max_samples: Any, max_grad_norm: Any, *, seed: Any = 0) -> None:
    """The callback's own arguments (DEBA's settings are checked by ``deba.RunOptions``)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DebaConfigError.single("seed", seed, "must be an int >= 0")
    check_positive_int(epochs, "epochs")
    check_positive_int(max_samples, "max_samples")
    if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, (int, float))
                                      or not math.isfinite(max_grad_norm) or max_grad_norm <= 0):
        raise DebaConfigError.single("max_grad_norm", max_grad_norm, "must be a finite number > 0 or None")


def check_trainer(trainer: Any, module: Any) -> None:
    """Refuse a Trainer set-up DEBA cannot work with."""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    if trainer.accumulate_grad_batches != 1:
        raise DebaConfigError.single(
            "accumulate_grad_batches", trainer.accumulate_grad_batches, "must be 1 with DEBA: it sets the global batch "
            "itself and runs a batch larger than memory as micro-batches inside the step",
            remedy="Remove accumulate_grad_batches; give DebaCallback(max_micro_batch=...) and the DebaModule mixin.")
    strategy = trainer.strategy
    if not isinstance(strategy, (SingleDeviceStrategy, DDPStrategy)) or type(strategy).__name__ not in (
            "SingleDeviceStrategy", "DDPStrategy"):
        raise DebaConfigError.single(
            "strategy", type(strategy).__name__, "must be single-device or DDP: DEBA reads whole gradients and "
            "shards the global batch itself (FSDP and DeepSpeed partition both)",
            remedy="Trainer(strategy='ddp') or one device.")
    if trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
        raise DebaConfigError.single(
            "use_distributed_sampler", True, "must be False under DDP: Lightning would replace DEBA's sampler, which "
            "already gives each rank its shard of the global batch",
            remedy="Trainer(..., use_distributed_sampler=False) and deba_dataloader(...) in train_dataloader().")
    if not module.automatic_optimization and not getattr(module, "_deba_runs_steps", False):
        raise DebaConfigError.single(
            "automatic_optimization", False, "needs the DebaModule mixin: in your own manual optimization DEBA cannot "
            "see which batches make up an optimizer step",
            remedy="Mix in deba.adapters.lightning.DebaModule (implement deba_loss), or use automatic optimization.")
    precision = str(trainer.precision)
    if "16" in precision and "bf16" not in precision and getattr(module, "_deba_runs_steps", False):
        raise DebaConfigError.single(
            "precision", precision, "fp16 loss scaling cannot be used with the DebaModule mixin (DEBA would read "
            "scaled gradients in its own step)", remedy="Use precision='bf16-mixed', or DebaCallback alone.")


def guard_stepping_batches(trainer: Any) -> None:
    """``trainer.estimated_stepping_batches`` raises with a remedy: a schedule sized from it would end
    at the wrong time once the batch changes (the steps of a run are not known in advance)."""
    base = type(trainer)
    if getattr(base, "_deba_guarded", False):
        return

    def refuse(self: Any) -> int:
        raise DebaConfigError.single(
            "estimated_stepping_batches", "used", "cannot size an LR schedule under DEBA: the number of optimizer "
            "steps changes with the batch size, so a schedule sized in steps would end at the wrong time",
            remedy="Return DebaCallback.sample_clock(optimizer, lambda done: ...) from configure_optimizers: a "
                   "schedule on the share of the sample budget done, stepped every optimizer step.")

    trainer.__class__ = type(base.__name__, (base,), {"estimated_stepping_batches": property(refuse),
                                                       "_deba_guarded": True, "_deba_base": base})


def unguard_stepping_batches(trainer: Any) -> None:
    """Undo :func:`guard_stepping_batches`."""
    base = getattr(type(trainer), "_deba_base", None)
    if base is not None:
        trainer.__class__ = base
