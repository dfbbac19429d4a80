"""How the learning rate follows the batch (docs/design.md, rule 7), by optimizer family.

``lr_scaling`` names the rule; the factor multiplies the LR the user set for the starting batch
``B0``:

* ``none`` - 1; ``linear`` - ``B / B0``; ``sqrt`` - ``sqrt(B / B0)``;
* ``adascale`` - the AdaScale gain ``r = (1 + B_noise / B0) / (1 + B_noise / B)`` (Johnson et al.
  2020), between ``none`` and ``linear``: near 1 when the gradient is precise (a larger batch buys
  little), near ``B / B0`` when it is noisy. Without a noise estimate the gain is 1;
* ``auto`` (the v2 default) - ``adascale`` for SGD-family optimizers, ``sqrt`` for Adam-family
  ones (their moment estimates lag a batch change, and the square root is the milder rule), and
  ``adascale`` when the family is unknown.

The factor also scales weight decay where the optimizer couples it to the LR (SGD's ``weight_decay``
and AdamW's decoupled decay are both multiplied by ``lr``), and Adam's moment estimates are kept
across a change: docs/training.md says what that means for a run.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LR_RULES", "adascale_gain", "lr_factor", "optimizer_family", "progress_credit"]

LR_RULES = ("auto", "none", "linear", "sqrt", "adascale")

_ADAM = ("adam", "adamw", "nadam", "radam", "adamax", "sparseadam", "lamb", "lion", "adafactor")
_SGD = ("sgd", "asgd", "lars", "sgdw")


def optimizer_family(optimizer: Any) -> str | None:
    """``"sgd"``, ``"adam"`` or ``None`` from the optimizer's class name (wrappers unwrapped).

    Example:
        >>> import torch
        >>> p = [torch.nn.Parameter(torch.zeros(1))]
        >>> optimizer_family(torch.optim.AdamW(p)), optimizer_family(torch.optim.SGD(p, lr=0.1))
        ('adam', 'sgd')
    """
    seen = 0
    while hasattr(optimizer, "optimizer") and optimizer.optimizer is not optimizer and seen < 5:
        optimizer, seen = optimizer.optimizer, seen + 1  # accelerate's AcceleratedOptimizer and the like
    name = type(optimizer).__name__.lower()
    if name in _ADAM or name.startswith("adam"):
        return "adam"
    if name in _SGD:
        return "sgd"
    return None


def adascale_gain(batch: float, initial_batch: float, noise_scale: float | None) -> float:
    """``(1 + B_noise / B0) / (1 + B_noise / B)``; 1 without a noise estimate.

    Example:
        >>> adascale_gain(64, 32, None), round(adascale_gain(64, 32, 32.0), 4), round(adascale_gain(64, 32, 1e9), 3)
        (1.0, 1.3333, 2.0)
    """
    if noise_scale is None or noise_scale <= 0:
        return 1.0
    return (1.0 + noise_scale / initial_batch) / (1.0 + noise_scale / batch)


def lr_factor(rule: str, batch: float, initial_batch: float, family: str | None = None,
              noise_scale: float | None = None) -> float:
    """The LR multiplier for ``batch`` relative to ``initial_batch`` under ``rule``.

    Example:
        >>> lr_factor("linear", 64, 32), lr_factor("auto", 128, 32, family="adam")
        (2.0, 2.0)
    """
    if rule == "auto":
        rule = "sqrt" if family == "adam" else "adascale"
    ratio = batch / initial_batch
    if rule == "linear":
        return ratio
    if rule == "sqrt":
        return math.sqrt(ratio)
    if rule == "adascale":
        return adascale_gain(batch, initial_batch, noise_scale)
    return 1.0


def progress_credit(batch: float, initial_batch: float, factor: float, noise_scale: float | None) -> float:
    """Starting-batch-equivalent samples one step at ``batch`` with LR factor ``factor`` is worth.

    In McCandlish et al.'s model a step at batch ``B`` with LR factor ``f`` (relative to ``B0``'s
    LR) makes the progress of ``2f - f^2 / r`` steps at ``B0``, ``r`` the AdaScale gain; so it is
    worth ``B0 (2f - f^2 / r)`` samples at ``B0``. With the AdaScale factor (``f = r``) that is
    ``E(B) B``; with ``linear`` (``f = B / B0``) it falls, and turns negative past ``f = 2r``, which
    is why ``linear`` is not a default. Never below 0. Without a noise estimate ``r = 1``: a step
    is credited as if the gradient were exact (the pessimistic case: more training, not less).

    Never above ``batch`` either: below ``B0`` the model says a sample is worth more than one at
    ``B0`` (``E(B) > 1``), and trusting that ends the run early. In the study a DenseNet-121 that
    shrank 32 -> 16 stopped at 60 % of the fixed run's samples and lost 7 points of accuracy; a
    budget is never shortened by a smaller batch.

    Example:
        >>> progress_credit(32, 32, 1.0, None)
        32.0
        >>> round(progress_credit(64, 32, adascale_gain(64, 32, 96.0), 96.0), 6)  # E(B) B = 128/160 * 64
        51.2
        >>> progress_credit(16, 32, adascale_gain(16, 32, 96.0), 96.0)  # E(16) > 1, credited as 1
        16.0
    """
    r = adascale_gain(batch, initial_batch, noise_scale)
    return min(float(batch), max(0.0, initial_batch * (2.0 * factor - factor * factor / r)))
