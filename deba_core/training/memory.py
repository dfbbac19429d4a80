"""How many samples fit in one micro-batch.

On CUDA: a doubling-then-bisection search that runs real forward/backward passes and treats an
out-of-memory error (or peak ``max_memory_allocated`` above the budget) as "too big". On CPU there
is no allocator counter to read, so the activation memory of one sample is measured with
``saved_tensors_hooks`` on a small batch and the cap is what fits in a RAM budget after the
parameters, gradients and optimizer state.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import nn

from deba.training.batching import call_model as _run, batch_len, is_out_of_memory, move_to
from deba.errors import DebaConfigError

__all__ = ["available_ram_bytes", "find_max_micro_batch", "saved_activation_bytes"]


def available_ram_bytes() -> int:
    """Memory the OS reports as available (``MemAvailable``), or total physical memory as a fallback."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def saved_activation_bytes(model: nn.Module, inputs: Any, loss_fn: Callable[[Any], torch.Tensor] | None = None) -> int:
    """Bytes autograd saves for backward during one forward pass of ``inputs``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        # Count each storage once: views of one tensor share it.
        try:
            key = t.untyped_storage().data_ptr()
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = _run(model, inputs)
        loss = loss_fn(out) if loss_fn is not None else (out.float().sum() if isinstance(out, torch.Tensor) else None)
    if loss is not None and loss.requires_grad:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def find_max_micro_batch(
    model: nn.Module,
    sample_batch: Any,
    *,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    memory_budget: int | None = None,
    budget_fraction: float = 0.5,
    optimizer_state_per_param: int = 2,
    upper: int = 65536,
) -> int:
    """The largest micro-batch that fits the memory budget.

    Args:
        model: the model, on ``device``.
        sample_batch: model inputs for a few samples (a tensor, tuple or dict); more samples are
            made by repeating them.
        loss_fn: maps the model's output to a scalar (default: ``output.sum()``).
        device: where to measure (default: the model's device).
        memory_budget: bytes allowed; default ``budget_fraction`` of free device memory (CUDA) or
            of available RAM (CPU).
        optimizer_state_per_param: optimizer tensors per parameter (Adam 2, SGD momentum 1).
        upper: never return more than this.
    """
    if not isinstance(model, nn.Module):
        raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
    if not 0 < budget_fraction <= 1:
        raise DebaConfigError.single("budget_fraction", budget_fraction, "must be in (0, 1]")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    make = _batch_maker(sample_batch, dev)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = memory_budget if memory_budget is not None else int(free * budget_fraction)
        return _largest_fitting_on_cuda(model, make, loss_fn, dev, budget, upper)
    budget = memory_budget if memory_budget is not None else int(available_ram_bytes() * budget_fraction)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    fixed = param_bytes * (2 + optimizer_state_per_param)  # weights, grads, optimizer state
    probe_n = min(max(batch_len(sample_batch), 2), 8)
    per_sample = saved_activation_bytes(model, make(probe_n), loss_fn) / probe_n
    room = budget - fixed
    if room <= per_sample:
        raise DebaConfigError.single(
            "memory_budget", budget, f"leaves no room for activations ({fixed} bytes for parameters and state)"
        )
    # Activations are saved once and their gradients live alongside during backward: count twice.
    return int(max(1, min(upper, room // max(2 * per_sample, 1))))


def _batch_maker(sample_batch: Any, dev: torch.device) -> Callable[[int], Any]:
    """``make(n)``: ``n`` samples on ``dev``, made by repeating ``sample_batch``."""
    n0 = batch_len(sample_batch)

    def make(n: int) -> Any:
        reps = -(-n // n0)

        def rep(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.repeat(reps, *([1] * (x.dim() - 1)))[:n]
            if isinstance(x, (tuple, list)):
                return type(x)(rep(v) for v in x)
            if isinstance(x, dict):
                return {k: rep(v) for k, v in x.items()}
            return x

        return move_to(rep(sample_batch), dev)

    return make


def _largest_fitting_on_cuda(model: nn.Module, make: Callable[[int], Any], loss_fn: Any, dev: torch.device,
                             budget: int, upper: int) -> int:
    """Doubling then bisection on the measured peak of one forward/backward."""

    def fits(n: int) -> bool:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        try:
            saved_activation_bytes(model, make(n), loss_fn)
        except Exception as exc:  # noqa: BLE001
            if is_out_of_memory(exc):
                model.zero_grad(set_to_none=True)
                return False
            raise
        return torch.cuda.max_memory_allocated(dev) - base <= budget

    lo, hi = 0, 1
    while hi <= upper and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, upper + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    if lo < 1:
        raise DebaConfigError.single("memory_budget", budget, "does not fit even one sample")
    return lo
