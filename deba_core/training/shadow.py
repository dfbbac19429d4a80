"""A noise measurement that leaves training untouched: the shadow half-batch pass.

A noise measurement needs the gradient at two batch sizes. The cheap way, splitting a
one-micro-batch step into two halves, changes what a model with BatchNorm trains on: each half is
normalised with its own statistics and the running statistics move twice. Measured on the study's
DenseNet-121 task, that perturbation alone moved a 100-step run's final accuracy by several points
(docs/benchmarks.md). So for a model with BatchNorm layers in training mode the step engine
instead runs a *shadow* forward and backward of the first half of the batch before the real step,
reads that half's gradient, and then puts back everything the pass changed (the gradients, the
BatchNorm running statistics and counters, torch's RNG states) before the full batch runs exactly
as an unmeasured step would. A measurement then changes the measurement step's time, never the
trained weights.

The step engine pairs the half with the full step (the other half taken as ``(n g - h g1)/(n - h)``),
so it gets two small estimates as a split does. The measurement interval follows the pass's cost:
``0.5 T(B) / T(B/2)`` of a step (``T`` in samples/s), against ``T(B) / T(B/2) - 1`` for a split; equal
at a ratio of 2, dearer below it. Restored: all initialised buffers and torch's CPU and CUDA RNG
(not Python's, NumPy's or other devices' generators).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from deba.training.batching import is_out_of_memory, slice_batch

__all__ = ["batch_dependent_modules", "shadow_half_pass"]


def batch_dependent_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose training-mode output depends on which samples share the batch: every
    BatchNorm (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``, lazy ones, and subclasses such as timm's
    ``BatchNormAct2d``).

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU())
        >>> [type(x).__name__ for x in batch_dependent_modules(m)]
        ['BatchNorm2d']
    """
    if not isinstance(model, nn.Module):
        from deba.errors import DebaConfigError

        raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def shadow_half_pass(model: nn.Module, batch: Any, n: int, forward_loss: Callable[[Any], torch.Tensor],
                     backward: Callable[[torch.Tensor], None] | None, after_micro: Callable[[int], None],
                     modules: list[nn.Module]) -> bool:
    """Forward and backward the first ``n // 2`` samples of ``batch``, call ``after_micro(n // 2)``
    with that half's gradient in ``.grad``, then restore what the pass changed.

    Args:
        model: the model (its gradients are cleared before and after the pass).
        batch: the step's batch of ``n`` samples.
        n: its size (at least 2).
        forward_loss: ``forward_loss(batch) -> mean loss``, as the step uses it.
        backward: ``backward(loss)`` (``None``: ``loss.backward()``).
        after_micro: reads the half's gradient (the step engine's per-micro-batch read).
        modules: the modules whose buffers the pass may change (:func:`batch_dependent_modules`).

    Returns:
        Whether the half was measured (``False`` when it ran out of memory: no measurement this
        step, and training goes on untouched).
    """
    # Every initialised buffer, not only BatchNorm's (spectral norm's u/v, InstanceNorm statistics).
    saved = [(buf, buf.detach().clone()) for buf in model.buffers()
             if not isinstance(buf, nn.parameter.UninitializedBuffer)]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    model.zero_grad(set_to_none=True)
    try:
        # One pass, no retry at a smaller size: an out-of-memory error ends the measurement, not the step.
        loss = forward_loss(slice_batch(batch, 0, n // 2))
        if backward is None:
            loss.backward()
        else:
            backward(loss)
        after_micro(n // 2)
        return True
    except Exception as exc:  # noqa: BLE001 - only allocation failures are absorbed
        if not is_out_of_memory(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return False
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)  # running mean/var and num_batches_tracked as before the pass
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
