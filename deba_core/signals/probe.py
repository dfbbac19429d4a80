"""One pass over ``.grad`` after backward: total norm, fixed-index sketch, non-finite flag."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from deba.errors import DebaConfigError
from deba.signals.observation import Observation

__all__ = ["GradientProbe", "GradientSnapshot"]

#: Tensors at least this large are read with a BLAS dot on the CPU.
_DOT_MIN = 1 << 16


@dataclass(frozen=True)
class GradientSnapshot:
    """What the probe read: total L2 norm (``None`` when not read), the sketch and whether every
    entry read was finite."""

    norm: float | None
    sketch: np.ndarray
    finite: bool
    params_with_grad: int


def _sq(t: torch.Tensor) -> float:
    """``|t|^2`` as a Python float (a BLAS dot for large CPU tensors, see :meth:`GradientProbe._norm`)."""
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous():
        flat = t.view(-1)
        return float(torch.dot(flat, flat))
    return float(torch.linalg.vector_norm(t.float()) ** 2)


class GradientProbe:
    """Reads the gradient once per step, cheaply.

    The sketch samples ``sketch_size`` fixed coordinates of the flattened parameter vector,
    uniformly (drawn once from ``seed``), so sketches of different steps, micro-batches or ranks
    are comparable and ``|sketch|^2 * n_params / sketch_size`` estimates ``|grad|^2``. The norm is
    taken with ``torch._foreach_norm`` per (device, dtype) group - the same fused kernel
    ``clip_grad_norm_`` uses - and everything comes back to the host in one transfer. Parameters
    without a gradient are skipped (their sketch entries read 0).

    Args:
        params: a module or an iterable of parameters (only ``requires_grad`` ones are read).
        sketch_size: coordinates in the sketch (capped at the parameter count).
        seed: seed of the coordinate draw; equal seeds give equal sketches on every rank.

    Example:
        >>> import torch, deba
        >>> model = torch.nn.Linear(4, 2)
        >>> probe = deba.signals.GradientProbe(model, sketch_size=8)
        >>> model(torch.ones(3, 4)).sum().backward()
        >>> snap = probe.capture()
        >>> snap.finite, snap.sketch.shape
        (True, (8,))
    """

    def __init__(self, params: nn.Module | Iterable[torch.Tensor], sketch_size: int = 512, seed: int = 0) -> None:
        if isinstance(sketch_size, bool) or not isinstance(sketch_size, int) or sketch_size < 1:
            raise DebaConfigError.single("sketch_size", sketch_size, "must be an int >= 1")
        if isinstance(params, nn.Module):
            params = params.parameters()
        try:
            self.params = [p for p in params if isinstance(p, torch.Tensor) and p.requires_grad]
        except TypeError as exc:
            raise DebaConfigError.single("params", type(params).__name__, "must be a module or an iterable of tensors") from exc
        if not self.params:
            raise DebaConfigError.single("params", 0, "must contain at least one tensor with requires_grad=True")
        self.n_params = sum(p.numel() for p in self.params)
        m = min(sketch_size, self.n_params)
        gen = torch.Generator().manual_seed(int(seed))
        flat = torch.randint(0, self.n_params, (m,), generator=gen).sort().values
        offsets = torch.tensor([0] + [p.numel() for p in self.params]).cumsum(0)
        owner = torch.searchsorted(offsets, flat, right=True) - 1
        # (param index, local indices on the param's device, position in the sketch)
        self._groups: list[tuple[int, torch.Tensor, slice]] = []
        pos = 0
        for i in owner.unique().tolist():
            local = flat[owner == i] - offsets[i]
            n = local.numel()
            self._groups.append((i, local.to(self.params[i].device), slice(pos, pos + n)))
            pos += n
        self.sketch_size = m
        self._prev: list[torch.Tensor | None] | None = None
        self._valid: list[bool] = []

    def _norm(self, grads: list[torch.Tensor]) -> torch.Tensor:
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        parts = []
        for g in grads:
            if g.device.type == "cpu" and g.dtype in (torch.float32, torch.float64) and g.numel() >= _DOT_MIN \
                    and g.is_contiguous():
                # On the CPU a BLAS dot reads a large tensor at close to memory bandwidth, about 1.6x
                # faster than ``_foreach_norm`` (measured on ResNet-18, docs/design.md "Overhead").
                flat = g.view(-1)
                parts.append(torch.dot(flat, flat).float())
            else:
                groups.setdefault((g.device, g.dtype), []).append(g)
        for tensors in groups.values():
            norms = torch._foreach_norm(tensors)
            parts.append(torch.linalg.vector_norm(torch.stack(norms).float()).square())
        device = grads[0].device
        return torch.stack([p.to(device) for p in parts]).sum().sqrt()

    @staticmethod
    def _cheap_finite(grads: list[torch.Tensor], limit: int = 1 << 20) -> bool:
        """Finiteness of the small gradients at both ends of the model (without reading the rest).

        A NaN or inf raised anywhere in backward flows into the gradients of the layers nearer the
        input, which backward reaches last, and a non-finite loss gradient shows at the output
        layer: the first and last parameters (the first few, skipping ones over ``limit`` entries,
        such as an embedding table) catch it at a tiny cost.
        """
        ends = [g for g in grads[:4] if g.numel() <= limit][:1] + [g for g in grads[-2:] if g.numel() <= limit]
        if not ends:
            return True
        return bool(torch.stack([torch.isfinite(g).all() for g in ends]).all())

    def sketch(self) -> torch.Tensor:
        """The sketch of the current ``.grad`` values, as a float32 tensor on the first grad's device."""
        pieces = []
        device = self.params[0].device
        for i, local, _ in self._groups:
            g = self.params[i].grad
            if g is None or g.is_sparse:
                pieces.append(torch.zeros(local.numel(), device=device))
            else:
                pieces.append(g.detach().reshape(-1).index_select(0, local).float().to(device))
        return torch.cat(pieces)

    def increment_sq(self) -> float:
        """``|grad - grad at the previous call|^2`` (after :meth:`reset_increments`: ``|grad|^2``).

        Used on noise measurement steps only: it keeps one copy of the gradient between calls, so
        the squared norm of each micro-batch's own contribution can be read exactly. The copy is
        updated in place (no new tensor per call); on the CPU it is kept between measurement steps,
        because a fresh allocation of that size costs page faults worth several passes over it
        (on a GPU the caching allocator keeps freed memory anyway).
        """
        total = 0.0
        if self._prev is None:
            self._prev = [None] * len(self.params)
            self._valid = [False] * len(self.params)
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None or g.is_sparse:
                if g is None and self._valid[i] and self._prev[i] is not None:
                    total += _sq(self._prev[i])  # a gradient that went away: its increment is -copy
                    self._valid[i] = False
                continue
            g = g.detach()
            buf = self._prev[i]
            if self._valid[i] and buf is not None:
                buf.sub_(g)  # minus this call's increment: the sign does not change its norm
                total += _sq(buf)
                buf.copy_(g)
            else:
                total += _sq(g)
                if buf is None or buf.shape != g.shape or buf.dtype != g.dtype or buf.device != g.device:
                    self._prev[i] = g.clone()
                else:
                    buf.copy_(g)
            self._valid[i] = True
        return total

    def reset_increments(self) -> None:
        """Forget the copy :meth:`increment_sq` keeps (frees its memory, except on the CPU)."""
        if self._prev is None:
            return
        if any(b is not None and b.device.type != "cpu" for b in self._prev):
            self._prev = None
            return
        self._valid = [False] * len(self.params)

    def capture(self, sketch: bool = True, norm: bool = True) -> GradientSnapshot:
        """Norm, sketch and finiteness of the gradients now in ``.grad``.

        Args:
            sketch: read the sketch (``False``: an empty sketch).
            norm: read the total norm, which reads every gradient entry (``False``: ``norm`` is
                ``None`` and finiteness is checked on the gradients at both ends of the model only,
                see :meth:`_cheap_finite`; the step engine skips the full read on some steps of
                large models, docs/design.md "Overhead").
        """
        grads = []
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            grads.append(g.detach().coalesce().values() if g.is_sparse else g.detach())
        if not grads:
            return GradientSnapshot(0.0, np.zeros(self.sketch_size if sketch else 0), True, 0)
        if not norm:
            picked = self.sketch().double().cpu().numpy() if sketch else np.zeros(0)
            return GradientSnapshot(None, picked, self._cheap_finite(grads) and bool(np.isfinite(picked).all()),
                                    len(grads))
        total_norm = self._norm(grads)
        if not sketch:
            total = float(total_norm)
            return GradientSnapshot(total, np.zeros(0), math.isfinite(total), len(grads))
        both = torch.cat([total_norm.reshape(1).float(), self.sketch().to(total_norm.device)]).cpu().numpy()
        both = both.astype(np.float64)
        total = float(both[0])
        # A NaN or inf anywhere makes the total norm non-finite, so one check covers every entry.
        return GradientSnapshot(total, both[1:], math.isfinite(total), len(grads))

    def observe(self, loss: float, batch_size: int, sketch: bool = True, norm: bool = True, **fields) -> Observation:
        """Capture the gradient and build the step's :class:`Observation` (``sketch=False``: none;
        ``norm=False``: no norm read, see :meth:`capture`)."""
        snap = self.capture(sketch, norm)
        return Observation(
            loss=loss,
            batch_size=batch_size,
            grad_norm=snap.norm,
            grad_finite=snap.finite,
            grad_sketch=snap.sketch if sketch else None,
            **fields,
        )
