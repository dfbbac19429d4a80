"""Per-sample squared gradient norms of a model built of linear layers, in one backward pass.

For a linear layer ``z = a W^T + c`` the gradient a backward pass deposits for one sample is the
outer product of that sample's input ``a_i`` and the gradient at its output ``d_i``, so its squared
norm is ``|a_i|^2 |d_i|^2`` for ``W`` and ``|d_i|^2`` for ``c`` (Goodfellow 2015, "Efficient
per-example gradient computations"); with a sequence dimension (``a`` of shape ``(N, T, in)``) it is
``sum_{t,t'} (a_t . a_t')(d_t . d_t')``. Summed over the layers that is the squared norm of each
sample's own contribution to ``.grad``, read from activations the backward pass already has, at
a small fraction of a step's cost.

The noise-scale estimator can then use ``b = 1`` (each sample) as its small gradient size next to the
full batch ``B`` of the *same* step, without splitting the step in two (docs/design.md, "Signals"):
on small, overhead-bound models, where a split costs most of a step, this is what makes measuring
affordable. It applies only where it is exact: every trainable parameter belongs to an
``nn.Linear``, and no layer mixes samples (batch normalisation couples the samples of a batch, so
a sample's share of the gradient is no longer its own gradient).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

__all__ = ["PerSampleNorms"]

_BATCH_COUPLING = (nn.modules.batchnorm._BatchNorm,)


class PerSampleNorms:
    """Hooks that collect per-sample squared gradient norms while active (a context manager).

    Args:
        model: the model; see :meth:`supports` for which models qualify.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> norms = PerSampleNorms(net)
        >>> x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
        >>> with norms:
        ...     torch.nn.functional.cross_entropy(net(x), y, reduction="sum").backward()
        >>> per_sample = norms.take()
        >>> per_sample.shape
        torch.Size([5])
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
        self._handles: list[Any] = []
        self._total: torch.Tensor | None = None
        self.failed = False  # an input shape it cannot handle was seen
        self._seconds = 0.0  # time spent in the hooks since take_seconds()
        self._seen: set[int] = set()  # layers tapped since the last take()

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether every trainable parameter is a linear layer's and no layer couples samples."""
        if any(isinstance(m, _BATCH_COUPLING) for m in model.modules()):
            return False
        owned = [id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)]
        if len(owned) != len(set(owned)):
            return False  # a weight tied between layers: its per-sample gradient has cross terms
        params = [p for p in model.parameters() if p.requires_grad]
        return bool(params) and all(id(p) in set(owned) for p in params)

    def __enter__(self) -> "PerSampleNorms":
        self._total, self.failed, self._seen = None, False, set()
        self._handles = [m.register_forward_hook(self._forward) for m in self.layers]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def take_seconds(self) -> float:
        """Seconds spent in the hooks since the last call (DEBA's own time)."""
        out, self._seconds = self._seconds, 0.0
        return out

    def take(self) -> torch.Tensor | None:
        """The per-sample squared norms collected since the last call (``None`` when none or failed)."""
        out, self._total = self._total, None
        failed, self.failed = self.failed, False
        self._seen = set()
        return None if failed else out

    def _forward(self, module: nn.Linear, inputs: tuple[Any, ...], output: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self._tap(module, inputs, output)
        finally:
            self._seconds += time.perf_counter() - t0

    def _tap(self, module: nn.Linear, inputs: tuple[Any, ...], output: Any) -> Any:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor) or not output.requires_grad:
            return None
        a = inputs[0].detach() if inputs and isinstance(inputs[0], torch.Tensor) else None
        if a is None or a.dim() < 2:
            self.failed = True
            return None
        if id(module) in self._seen:
            self.failed = True  # a layer used twice in one pass: its per-sample gradient has cross terms
            return None
        self._seen.add(id(module))
        has_w = module.weight.requires_grad
        has_b = module.bias is not None and module.bias.requires_grad
        # A tap (identity with a backward that reads the gradient) replaces the output, so an
        # in-place op on the output later (ReLU(inplace=True)) cannot change what the tap sees.
        def read(d: torch.Tensor) -> None:
            t0 = time.perf_counter()
            self._add(_sample_sq(a, d, has_w, has_b))
            self._seconds += time.perf_counter() - t0

        return _Tap.apply(output, read)

    def _add(self, sq: torch.Tensor) -> None:
        if self._total is None:
            self._total = sq
        elif self._total.shape == sq.shape:
            self._total = self._total + sq
        else:
            self.failed = True


class _Tap(torch.autograd.Function):
    """Identity in the forward pass; hands the output's gradient to ``read`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, read: Any) -> torch.Tensor:
        ctx.read = read
        return x.clone()  # a new tensor: in-place ops downstream modify it, not ``x``

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.read(grad.detach())
        return grad, None


def _sample_sq(a: torch.Tensor, d: torch.Tensor, weight: bool, bias: bool) -> torch.Tensor:
    """Per-sample ``|grad W|^2 + |grad c|^2`` of one linear layer from its input and output gradient."""
    n = a.shape[0]
    a = a.reshape(n, -1, a.shape[-1]).float()
    d = d.reshape(n, -1, d.shape[-1]).float()
    out = torch.zeros(n, device=d.device)
    if a.shape[1] == 1:
        a2, d2 = a[:, 0].square().sum(-1), d[:, 0].square().sum(-1)
        if weight:
            out = out + a2 * d2
        if bias:
            out = out + d2
        return out
    if weight:
        # |sum_t d_t a_t^T|^2 = sum_{t,t'} (a_t . a_t')(d_t . d_t')
        out = out + (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(d, d.transpose(1, 2))).sum((1, 2))
    if bias:
        out = out + d.sum(1).square().sum(-1)
    return out
