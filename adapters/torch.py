"""Raw PyTorch adapter: one global batch per optimizer step, and a manual mode for your own loop."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
from torch import nn

from deba.batching import MicroBatchResult, run_micro_batches
from deba.decision import Decision
from deba.detection import profile_for
from deba.errors import DebaConfigError
from deba.lr import LRCoupler
from deba.observation import Observation
from deba.probe import GradientProbe
from deba.profile import ArchitectureProfile
from deba.profile_io import load_profile
from deba.sampler import AdaptiveBatchSampler
from deba.scheduler import BatchScheduler
from deba.scoring import ScoringStrategy

__all__ = ["DebaController", "TorchAdapter", "resolve_profile"]


def resolve_profile(profile: ArchitectureProfile | str, model: nn.Module) -> ArchitectureProfile:
    """``"auto"`` -> detection on ``model``; anything else -> :func:`deba.load_profile`."""
    if isinstance(profile, str) and profile == "auto":
        return profile_for(model)
    return load_profile(profile)


class TorchAdapter:
    """Runs forward and backward of one global batch, micro-batched, and observes the gradient.

    Args:
        model: the model (already on its device).
        loss_fn: ``loss_fn(outputs, targets)`` -> mean loss of the micro-batch.
        probe: the gradient probe.
        max_micro_batch: cap on samples per forward/backward (``None``: the whole batch at once).
        ddp: whether ``model`` is wrapped in DistributedDataParallel (uses ``no_sync``).

    Example:
        >>> import torch, deba
        >>> from deba.adapters.torch import TorchAdapter
        >>> model = torch.nn.Linear(3, 2)
        >>> adapter = TorchAdapter(model, torch.nn.functional.cross_entropy, deba.GradientProbe(model, 8),
        ...                        max_micro_batch=2)
        >>> result, obs = adapter.forward_backward((torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])))
        >>> result.micro_sizes, obs.batch_size
        ([2, 2, 1], 5)
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        probe: GradientProbe,
        *,
        max_micro_batch: int | None = None,
        ddp: bool | None = None,
        dist: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
        if not callable(loss_fn):
            raise DebaConfigError.single("loss_fn", loss_fn, "must be callable as loss_fn(outputs, targets)")
        if max_micro_batch is not None and (isinstance(max_micro_batch, bool) or not isinstance(max_micro_batch, int) or max_micro_batch < 1):
            raise DebaConfigError.single("max_micro_batch", max_micro_batch, "must be an int >= 1 or None")
        self.model = model
        self.loss_fn = loss_fn
        self.probe = probe
        self.max_micro_batch = max_micro_batch
        self.ddp = isinstance(model, nn.parallel.DistributedDataParallel) if ddp is None else ddp
        self.dist = dist  # a deba.adapters.distributed.DistributedContext, or None
        self.oom_events: list[dict[str, int]] = []
        self._deba_seconds = 0.0

    def take_deba_seconds(self) -> float:
        """Seconds spent in DEBA's own gradient reads since the last call (for overhead accounting)."""
        out, self._deba_seconds = self._deba_seconds, 0.0
        return out

    def _timed_sketch(self) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.probe.sketch()
        self._deba_seconds += time.perf_counter() - t0
        return out

    def _zero_grad(self) -> None:
        self.model.zero_grad(set_to_none=True)

    def forward_backward(self, batch: Any, **obs_fields: Any) -> tuple[MicroBatchResult, Observation]:
        """Gradients of one global batch in ``.grad`` and the step's observation."""
        if self.dist is not None:
            return self._forward_backward_distributed(batch, **obs_fields)
        result = run_micro_batches(
            self.model,
            batch,
            self.loss_fn,
            cap=self.max_micro_batch,
            sketch=self._timed_sketch,
            no_sync=self.model.no_sync if self.ddp else None,
            zero_grad=self._zero_grad,
        )
        if result.oom_events:
            # Out of memory after growth: keep the lowered cap for the following steps.
            self.max_micro_batch = result.cap
            self.oom_events.extend(result.oom_events)
        t0 = time.perf_counter()
        snap = self.probe.capture()
        self._deba_seconds += time.perf_counter() - t0
        micro = result.micro_sketches if len(result.micro_sketches) >= 2 else None
        micro_sizes = result.sketch_sizes
        obs = Observation(
            loss=result.loss,
            batch_size=result.samples,
            grad_norm=snap.norm,
            grad_finite=snap.finite,
            grad_sketch=snap.sketch,
            micro_sketches=micro,
            micro_sizes=micro_sizes if micro is not None else None,
            **obs_fields,
        )
        return result, obs


    def _forward_backward_distributed(self, batch: Any, **obs_fields: Any) -> tuple[MicroBatchResult, Observation]:
        """This rank's shard with local gradients, then one reduction and one shared observation."""
        from .distributed import allreduce_gradients, local_no_sync

        ctx = self.dist
        with local_no_sync(self.model):
            result = run_micro_batches(self.model, batch, self.loss_fn, cap=self.max_micro_batch,
                                       sketch=self._timed_sketch, zero_grad=self._zero_grad)
        if result.oom_events:
            self.max_micro_batch = result.cap
            self.oom_events.extend(result.oom_events)
        n_local = result.samples
        t0 = time.perf_counter()
        if result.micro_sketches:
            sketches, sizes = result.micro_sketches, result.sketch_sizes
        else:  # one micro-batch: the shard's own (still local) gradient is this rank's estimate
            sketches, sizes = [self.probe.sketch().double().cpu().numpy()], [n_local]
        loss_sum, n_total = ctx.sum([result.loss * n_local, float(n_local)])
        # Weighted by shard size, so unequal shards (an epoch's tail) still give the global mean.
        allreduce_gradients(self.probe.params, ctx.world, weight=n_local, total=n_total)
        all_sketches, all_sizes = ctx.gather_sketches(sketches, sizes, self.probe.sketch_size)
        snap = self.probe.capture()  # the reduced gradient: the same norm and sketch on every rank
        self._deba_seconds += time.perf_counter() - t0
        obs = Observation(
            loss=loss_sum / n_total, batch_size=int(round(n_total)), grad_norm=snap.norm, grad_finite=snap.finite,
            grad_sketch=snap.sketch, micro_sketches=all_sketches if len(all_sketches) >= 2 else None,
            micro_sizes=all_sizes if len(all_sketches) >= 2 else None, **obs_fields,
        )
        return result, obs


class DebaController:
    """Manual mode: DEBA inside a training loop you keep.

    Call :meth:`after_backward` after ``loss.backward()``; it probes the gradient, lets the
    scheduler decide, sets the LR factor that the next ``optimizer.step()`` applies (composing with
    your LR scheduler) and resizes the sampler. Skip ``optimizer.step()`` when :attr:`step_ok` is
    false (a non-finite loss or gradient).

    Args:
        model: the model being trained.
        optimizer: its optimizer.
        sampler: the :class:`deba.AdaptiveBatchSampler` feeding the loader (optional).
        profile: a profile, a name, a file, or ``"auto"`` (detect from ``model``).
        strategy: a strategy instance or registered name.

    Example:
        >>> import torch, deba
        >>> data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> sampler = deba.AdaptiveBatchSampler(data, batch_size=16)
        >>> loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
        >>> ctl = deba.DebaController(model, opt, sampler=sampler, profile="mlp")
        >>> for x, y in loader:
        ...     opt.zero_grad()
        ...     loss = torch.nn.functional.cross_entropy(model(x), y)
        ...     loss.backward()
        ...     decision = ctl.after_backward(loss, batch_size=len(y))
        ...     if ctl.step_ok:
        ...         opt.step()
        >>> ctl.scheduler.step
        4
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        sampler: AdaptiveBatchSampler | None = None,
        profile: ArchitectureProfile | str = "auto",
        strategy: ScoringStrategy | str = "equal-weight",
        seed: int = 0,
    ) -> None:
        self.profile = resolve_profile(profile, model)
        self.scheduler = BatchScheduler(self.profile, strategy=strategy)
        self.probe = GradientProbe(model, sketch_size=self.profile.sketch_size, seed=seed)
        self.lr = LRCoupler(optimizer, self.scheduler.lr_factor)
        if sampler is not None and not isinstance(sampler, AdaptiveBatchSampler):
            raise DebaConfigError.single("sampler", type(sampler).__name__, "must be a deba.AdaptiveBatchSampler")
        self.sampler = sampler
        if sampler is not None:
            sampler.batch_size = self.scheduler.batch_size
        self.step_ok = True

    @property
    def batch_size(self) -> int:
        """The batch size the scheduler wants now."""
        return self.scheduler.batch_size

    def after_backward(self, loss: float | torch.Tensor, batch_size: int, **fields: Any) -> Decision:
        """Observe the step whose gradients are in ``.grad``; returns the decision."""
        value = float(loss.detach().item()) if isinstance(loss, torch.Tensor) else loss
        obs = self.probe.observe(value, batch_size, **fields)
        self.step_ok = obs.is_finite
        # The optimizer step for this batch uses the factor of the batch size it was drawn at;
        # a change decided now applies from the next batch on.
        self.lr.factor = self.scheduler.lr_factor
        decision = self.scheduler.observe(obs)
        self._resize(decision)
        return decision

    def end_epoch(self) -> Decision:
        """Close an epoch (this is when ``interval: epoch`` profiles decide)."""
        decision = self.scheduler.end_epoch()
        self._resize(decision)
        return decision

    def _resize(self, decision: Decision) -> None:
        if self.sampler is not None:
            self.sampler.batch_size = decision.batch_size

    def state_dict(self) -> dict[str, Any]:
        """Scheduler and sampler state (JSON-able)."""
        return {
            "scheduler": self.scheduler.state_dict(),
            "sampler": None if self.sampler is None else self.sampler.state_dict(),
            "lr_factor": self.lr.factor,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.scheduler.load_state_dict(state["scheduler"])
        if self.sampler is not None and state.get("sampler") is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.lr.factor = float(state["lr_factor"])
