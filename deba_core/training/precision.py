"""Mixed precision for the step engine: autocast, and a GradScaler where fp16 needs one.

The engine runs each micro-batch's forward under :func:`torch.autocast`; with ``float16`` the loss is
scaled before backward and the gradients unscaled (``GradScaler.unscale_``) before DEBA reads them,
so every gradient DEBA measures is the true one, read before any clipping. A step the scaler skips
(an overflow of the *scaled* gradient) is not a non-finite training step: the scheduler does not
see it, and the scaler lowers its scale as it always does.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from deba.errors import DebaConfigError

__all__ = ["Precision"]

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


class Precision:
    """How forward and backward run: full precision, or autocast to ``bf16``/``fp16``.

    Args:
        amp: ``False``/``None`` (full precision), ``True`` (fp16 on CUDA, bf16 elsewhere), or
            ``"bf16"``/``"fp16"``.
        device: the device the model runs on.

    Example:
        >>> p = Precision("bf16", "cpu")
        >>> p.dtype, p.scaler is None
        (torch.bfloat16, True)
    """

    def __init__(self, amp: bool | str | None, device: torch.device | str) -> None:
        dev = torch.device(device)
        self.device_type = dev.type
        if amp in (None, False):
            self.dtype = None
        elif amp is True:
            self.dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
        elif isinstance(amp, str) and amp.lower() in _DTYPES:
            self.dtype = _DTYPES[amp.lower()]
        else:
            raise DebaConfigError.single("amp", amp, "must be False, True, 'bf16' or 'fp16'")
        self.scaler = torch.amp.GradScaler(self.device_type) if self.dtype == torch.float16 else None

    @property
    def enabled(self) -> bool:
        """Whether autocast is on."""
        return self.dtype is not None

    def autocast(self) -> AbstractContextManager:
        """The forward pass's context."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale(self) -> float:
        """The current loss scale (1 without a scaler)."""
        return 1.0 if self.scaler is None else float(self.scaler.get_scale())

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled when a scaler is on."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Unscale the gradients in place before they are read (a no-op without a scaler)."""
        if self.scaler is not None:
            if optimizer is None:
                raise DebaConfigError.single("optimizer", None, "is needed to unscale fp16 gradients")
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``, through the scaler when there is one (it skips overflowed steps)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (JSON-able; empty without one)."""
        return {} if self.scaler is None else dict(self.scaler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
