"""The step engine: one DEBA optimizer step, written once for every way of training.

``deba.fit``, ``DebaController`` (manual mode) and ``DebaTrainer`` (HF) all call this engine; an
adapter only translates its framework's hooks into these calls (docs/design.md, "One step"):

1. run the global batch (this rank's shard of it) as micro-batches under the memory cap, reading
   a gradient sketch after each micro-batch while the gradient is still local;
2. under DDP, reduce once: the weighted loss and gradient all-reduce, the sketches all-gathered;
3. read the gradient (norm, sketch, finiteness) and build the :class:`deba.Observation`;
4. let the scheduler decide; under DDP rank 0's decision reaches every rank (``adopt``);
5. set the LR factor the optimizer step of *this* batch uses: the one of the decision in force
   when it was drawn (``Decision.lr_factor``); the new decision's factor applies from the next step;
6. resize the sampler and count the samples.

The caller then runs (or skips, for a non-finite step) ``optimizer.step()`` and calls
:meth:`StepEngine.after_optimizer_step`.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from deba.control.decision import Decision
from deba.control.scheduler import BatchScheduler
from deba.errors import DebaConfigError
from deba.signals.observation import Observation
from deba.signals.per_sample import PerSampleNorms
from deba.signals.probe import GradientProbe
from deba.training.batching import MicroBatchResult, batch_len, call_model, model_devices, run_micro_batches, synchronize
from deba.training.distributed import DistributedContext, allreduce_gradients, broadcast_module, local_no_sync
from deba.training.history import step_record
from deba.training.lr import LRCoupler
from deba.training.shadow import batch_dependent_modules, shadow_half_pass
from deba.training.norm_reads import NormReadPlan
from deba.training.precision import Precision
from deba.training.sampler import AdaptiveBatchSampler

__all__ = ["StepEngine", "StepOutcome", "loss_of"]

#: fp16 overflows in a row after which a non-finite gradient counts as a non-finite step.
_MAX_SCALER_SKIPS = 20


def loss_of(model: nn.Module, loss_fn: Callable[[Any, Any], torch.Tensor]) -> Callable[[Any], torch.Tensor]:
    """``forward_loss(micro)`` for ``(inputs, targets)`` batches: ``loss_fn(model(inputs), targets)``."""

    def forward_loss(micro: Any) -> torch.Tensor:
        if not isinstance(micro, (tuple, list)) or len(micro) != 2:
            raise DebaConfigError.single("batch", type(micro).__name__, "must be (inputs, targets)")
        return loss_fn(call_model(model, micro[0]), micro[1])

    return forward_loss


@dataclass
class StepOutcome:
    """What one step of the engine produced.

    Attributes:
        obs: the step's observation (global: all ranks together).
        decision: the decision in force from the next step on (rank 0's under DDP).
        result: this rank's micro-batch run (``None`` in manual mode, where the user ran backward).
        samples: samples of this step, all ranks together.
        step: the engine's step count after this step.
        total_samples: the engine's sample count after this step.
        lr_factor: the LR factor this step's optimizer step uses.
        seconds: wall time of the step inside the engine.
    """

    obs: Observation
    decision: Decision
    result: MicroBatchResult | None
    samples: int
    step: int
    total_samples: int
    lr_factor: float
    seconds: float

    @property
    def finite(self) -> bool:
        """Whether the loss and gradient were finite (a non-finite step is skipped)."""
        return self.obs.is_finite

    def record(self, epoch: int | None, lr: float | None, **extra: Any) -> dict[str, Any]:
        """The step's history record (one line of ``history.jsonl``)."""
        return step_record(self.step, epoch, self.total_samples, self.obs, self.decision, self.result,
                           lr=lr if self.finite else None, lr_factor=self.lr_factor, **extra)


class StepEngine:
    """Runs DEBA's part of every optimizer step (see the module docstring for the order).

    Args:
        model: the model (its parameters are probed; under DDP the plain or DDP-wrapped module).
        scheduler: the batch scheduler.
        probe: the gradient probe over the model's parameters.
        forward_loss: ``forward_loss(micro_batch) -> mean loss`` (see :func:`loss_of`); not
            needed in manual mode.
        backward: ``backward(loss)``; default ``loss.backward()`` (HF passes accelerate's).
        max_micro_batch: samples per forward/backward on this rank (``None``: no cap); lowered for
            good after an out-of-memory retry.
        dist: the distributed context (``None`` in one process).
        coupler: the LR coupler of the optimizer (``None``: DEBA leaves the LR alone).
        sampler: the adaptive sampler to resize (``None``: the caller resizes).
        no_sync: context manager keeping gradients local under DDP (default: ``model.no_sync``
            for a DDP model).
        precision: mixed precision (autocast, and the fp16 GradScaler); default full precision.
        optimizer: the optimizer, needed to unscale fp16 gradients before DEBA reads them.

    Example:
        >>> import torch, deba
        >>> from deba.training.step import StepEngine, loss_of
        >>> model = torch.nn.Linear(3, 2)
        >>> sched = deba.BatchScheduler("generic")
        >>> engine = StepEngine(model, sched, deba.GradientProbe(model, 8),
        ...                     forward_loss=loss_of(model, torch.nn.functional.cross_entropy), max_micro_batch=2)
        >>> out = engine.run((torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])))
        >>> out.result.micro_sizes, out.samples, engine.samples
        ([2, 2, 1], 5, 5)
    """

    def __init__(
        self,
        model: nn.Module,
        scheduler: BatchScheduler,
        probe: GradientProbe,
        *,
        forward_loss: Callable[[Any], torch.Tensor] | None = None,
        backward: Callable[[torch.Tensor], None] | None = None,
        max_micro_batch: int | None = None,
        dist: DistributedContext | None = None,
        coupler: LRCoupler | None = None,
        sampler: AdaptiveBatchSampler | None = None,
        no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
        precision: Precision | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
        if forward_loss is not None and not callable(forward_loss):
            raise DebaConfigError.single("forward_loss", forward_loss, "must be callable as forward_loss(micro_batch)")
        if max_micro_batch is not None and (isinstance(max_micro_batch, bool) or not isinstance(max_micro_batch, int)
                                            or max_micro_batch < 1):
            raise DebaConfigError.single("max_micro_batch", max_micro_batch, "must be an int >= 1 or None")
        self.model = model
        self._devices: list[torch.device] | None = None  # where a step's kernels run (timing waits there)
        self.scheduler = scheduler
        self.probe = probe
        self.forward_loss = forward_loss
        self.backward = backward
        self.max_micro_batch = max_micro_batch
        self.dist = dist
        self.coupler = coupler
        self.sampler = sampler
        self.no_sync = no_sync or (lambda: local_no_sync(model))
        self.precision = precision or Precision(None, "cpu")
        self.optimizer = optimizer
        self.measure_noise = True
        self._sketch = scheduler.needs_sketch  # read gradient sketches only for collectors that use them
        self._micro_sq: list[tuple[int, float]] = []  # (samples, |g_i|^2) of this step's micro-batches
        # Per-sample norms (a model of linear layers): measurement steps need no split.
        self.per_sample: PerSampleNorms | None = PerSampleNorms(model) if PerSampleNorms.supports(model) else None
        # BatchNorm: a split would change what the step trains on, so measure with a shadow half
        # (deba.training.shadow). ``shadow_halves``: None = whenever a BatchNorm is in training mode.
        self._batch_norms = batch_dependent_modules(model)
        self._shadow_halves: bool | None = None
        self._ps = [0.0, 0, False]  # sum of per-sample contributions' squared norms, samples, failed
        self._measuring = False
        self.norm_plan = NormReadPlan()  # which steps read the full gradient norm (its cost is ~1 % on a CPU)
        self._reading = True
        self._measure_own: list[float] = []  # DEBA's own seconds on recent measurement steps
        self._normal_own: list[float] = []  # ... and on recent other steps
        self._stride_cache: tuple[tuple[int, int], int] | None = None
        self._t_step: float | None = None  # start of the step in flight (throughput timing)
        self._opened = False  # start_step() opened the step in flight (manual mode)
        self._k_key: tuple[int, int] | None = None  # (batch, 50-step block) of the cached interval
        self._k = 1
        self._scaler_skips = 0
        self.steps = 0
        self.samples = 0
        self.equivalent_samples = 0.0  # starting-batch-equivalent samples (docs/design.md, "budget")
        self.deba_seconds = 0.0
        self.oom_events: list[dict[str, int]] = []
        self._last_samples = 0
        last = scheduler.last_decision
        self.lr_factor = last.lr_factor if last is not None else scheduler.lr_factor
        if sampler is not None:
            sampler.batch_size = scheduler.batch_size
        self._cap_throughput()

    def _cap_throughput(self) -> None:
        """Beyond the memory cap a step runs as micro-batches: throughput there is the cap's."""
        if self.max_micro_batch is not None:
            world = 1 if self.dist is None else self.dist.world
            self.scheduler.throughput.memory_cap = self.max_micro_batch * world

    # The step -----------------------------------------------------------------------------------

    def run(self, batch: Any, *, epoch: int | None = None) -> StepOutcome:
        """Forward and backward ``batch`` (this rank's shard), observe, decide; gradients stay in ``.grad``."""
        if self.forward_loss is None:
            raise DebaConfigError.single("forward_loss", None, "is needed to run a step (manual mode uses observe())")
        t0 = self._start_step()
        self.model.zero_grad(set_to_none=True)
        self._measuring = self._measure_now()
        self._reading = self._read_norm_now()
        own_before = self.deba_seconds
        try:
            if self.dist is None:
                result = self._micro_batches(batch)
                self.precision.unscale(self.optimizer)  # true gradients, read before any clipping
                small = self._small_estimates()
                obs = self._observation(result.loss, result.samples, result.micro_sketches, result.sketch_sizes, epoch,
                                        small)
            else:
                result, obs = self._distributed(batch, epoch)
        finally:
            self.probe.reset_increments()
            if self._measuring:
                self._measure_own = (self._measure_own + [self.deba_seconds - own_before])[-8:]
            else:
                self._normal_own = (self._normal_own + [self.deba_seconds - own_before])[-8:]
            self._measuring = False
        return self._conclude(obs, result, t0)

    def observe(self, loss: float | torch.Tensor, batch_size: int, **fields: Any) -> StepOutcome:
        """Manual mode: the user (or a framework) ran backward on ``batch_size`` samples; observe
        ``.grad`` and decide.

        Under DDP (``dist``) ``loss`` and ``batch_size`` are this rank's and the gradient in ``.grad``
        is the reduced one (as DDP leaves it): the loss and the sizes are summed over the ranks
        first, so every rank observes the same step. A forward and backward run inside
        :meth:`measuring` give a noise measurement from per-sample norms where they apply.
        """
        t0 = self._t_step if self._opened else self._start_step()
        self._opened = False
        value = float(loss.detach().item()) if isinstance(loss, torch.Tensor) else float(loss)
        small = self._external_small(batch_size)
        if self.dist is not None:
            sq, b, c = small if small is not None else (0.0, 0.0, 0)
            loss_sum, n, sq, b, c = self.dist.sum([value * batch_size, float(batch_size), sq, b, float(c)])
            value, batch_size, small = loss_sum / max(n, 1.0), int(round(n)), (sq, b, int(round(c)))
        if small is not None and small[2] >= 2:
            fields = {**fields, "small_batch": small[1] / small[2], "small_grad_sq": small[0] / small[2]}
        where = {"step": self.steps + 1, "samples": self.samples + batch_size, **fields}
        reading = self._read_norm_now() or "small_batch" in fields
        t1 = time.perf_counter()
        obs = self.probe.observe(value, batch_size, sketch=self._sketch, norm=reading, **where)
        if reading:
            self.norm_plan.record(time.perf_counter() - t1)
        return self._conclude(obs, None, t0)

    def measuring(self) -> contextlib.AbstractContextManager:
        """Manual mode: wrap the forward and backward you run. On a noise measurement step of a model
        made of linear layers it reads per-sample gradient norms (no split needed); otherwise it
        does nothing. :meth:`observe` then uses what it read."""
        self._ext_measuring = self.per_sample is not None and self.precision.scaler is None and self._measure_now()
        if not self._ext_measuring:
            return contextlib.nullcontext()
        self.per_sample.take()  # nothing left over from an interrupted step
        return self.per_sample

    def _external_small(self, batch_size: int) -> tuple[float, float, int] | None:
        """``(sum of |g_i|^2, samples, count)`` from the per-sample norms :meth:`measuring` read."""
        if not getattr(self, "_ext_measuring", False):
            return None
        self._ext_measuring = False
        v = self.per_sample.take()
        self.deba_seconds += self.per_sample.take_seconds()
        if v is None or v.numel() != batch_size or batch_size < 2:
            return None
        n = batch_size  # the mean loss's backward leaves g_i / n per sample
        return float(v.sum()) * n * n, float(n), n

    def end_epoch(self) -> Decision:
        """Close the epoch in the scheduler (``interval: epoch`` decides here); resizes the sampler."""
        decision = self._agree(self.scheduler.end_epoch())
        self.lr_factor = decision.lr_factor
        if self.sampler is not None:
            self.sampler.batch_size = decision.batch_size
        return decision

    def start_step(self) -> None:
        """Manual mode: the step's forward starts now (a framework calls this before its forward, so
        the step time :meth:`observe` records covers forward, backward and the optimizer step)."""
        self._start_step()
        self._opened = True

    def _start_step(self) -> float:
        """Start timing a step; a previous step nobody closed (manual mode) is timed start to start."""
        now = time.perf_counter()
        if self._t_step is not None and self._last_samples:
            self.scheduler.record_step_time(self._last_samples, now - self._t_step)
        self._t_step = now
        return now

    def after_optimizer_step(self) -> None:
        """After ``optimizer.step()`` (or its skip): under DDP every rank takes rank 0's buffers (as DDP
        does); the step's training time goes to the scheduler's throughput model."""
        if self.dist is not None:
            broadcast_module(self.model, buffers_only=True)
        if self._t_step is not None and self._last_samples:
            # The optimizer's kernels are only queued on a GPU: wait for them, or the step time
            # (and so the throughput model) would leave them out.
            if self._devices is None:  # found once: a model is on its devices before it trains
                self._devices = model_devices(self.model)
            for device in self._devices:
                synchronize(device)
            self.scheduler.record_step_time(self._last_samples, time.perf_counter() - self._t_step)
        self._t_step = None

    # Pieces of a step ---------------------------------------------------------------------------

    def _measure_now(self) -> bool:
        """Whether this step is a noise measurement step (every k steps, k from the scheduler)."""
        if not self.measure_noise:
            return False
        # What a measurement step costs DEBA beyond an ordinary step (its reads of the halves or samples).
        if not self.scheduler.needs_noise:
            return False
        key = (self.scheduler.batch_size, self.steps // 50)
        if key != self._k_key:
            own = None
            if self._measure_own:
                normal = sorted(self._normal_own)[len(self._normal_own) // 2] if self._normal_own else 0.0
                own = max(0.0, sorted(self._measure_own)[len(self._measure_own) // 2] - normal)
            # Only one process without per-sample norms splits a step; otherwise only DEBA's reads cost.
            alone = self.dist is None and self.per_sample is None
            k = self.scheduler.measurement_interval(own, split=alone, shadow=alone and self._shadow_now())
            if self.dist is not None:  # ranks time themselves: every rank measures on rank 0's steps
                k = self.dist.broadcast_object(k if self.dist.is_main else None)
            self._k_key, self._k = key, k
        k = self._k
        return k is not None and (self.steps + 1) % k == 0

    def _read_norm_now(self) -> bool:
        """Whether this step reads the full gradient norm (docs/design.md, "Overhead").

        Always on measurement steps, under an fp16 GradScaler, under DDP (ranks must agree on
        finiteness, and their timings differ), on an interval's first step, and whenever decisions
        do not already depend on timing (``BatchScheduler.timing_decides``); otherwise every
        ``j`` steps, ``j`` from :class:`NormReadPlan` (reads at most 0.25 % of step time).
        """
        if self._measuring or self.precision.scaler is not None or self.dist is not None:
            return True
        if not self.scheduler.timing_decides:  # keep the published rule and fixed tables timing-free
            return True
        if not self.scheduler.interval_has_norm:
            return True
        j = self._norm_stride()
        return j <= 1 or (self.steps + 1) % j == 0

    def _norm_stride(self) -> int:
        b = self.scheduler.batch_size
        key = (b, self.steps // 50)  # re-read the timings when the batch changes or every 50 steps
        if self._stride_cache is None or self._stride_cache[0] != key:
            t = self.scheduler.throughput.samples_per_second(b)
            self._stride_cache = (key, self.norm_plan.stride(b / t if t else None))
        return self._stride_cache[1]

    @property
    def shadow_halves(self) -> bool | None:
        """How a one-micro-batch measurement step is measured: ``True`` a shadow half-batch pass
        that leaves the step untouched (``deba.training.shadow``), ``False`` a split into halves,
        ``None`` (default) a shadow half whenever a BatchNorm is in training mode."""
        return self._shadow_halves

    @shadow_halves.setter
    def shadow_halves(self, value: bool | None) -> None:
        if value is not None and not isinstance(value, bool):
            raise DebaConfigError.single("shadow_halves", value, "must be True, False or None")
        self._shadow_halves = value
        self._k_key = None  # the measurement interval depends on it

    def _shadow_now(self) -> bool:
        """Whether a measurement of a one-micro-batch step runs a shadow half instead of a split."""
        if self._shadow_halves is not None:
            return self._shadow_halves
        return any(m.training for m in self._batch_norms)

    def _micro_batches(self, batch: Any) -> MicroBatchResult:
        cap, sketch = self.max_micro_batch, (self._timed_sketch if self._sketch else None)
        split = shadow = False
        per_sample = self.per_sample if self._measuring and self.dist is None else None
        self._ps = [0.0, 0, False]
        if self._measuring and self.dist is None and per_sample is None:
            n = batch_len(batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch)
            if (cap is None or n <= cap) and n >= 2:
                if self._shadow_now():
                    shadow = True  # the step itself runs unchanged, after the shadow half
                else:
                    # A one-micro-batch step is split in two for the measurement; its halves give no
                    # micro sketches, so the collectors see the step as if it had not been split.
                    cap, sketch, split = -(-n // 2), None, True
        self._micro_sq = []
        prec = self.precision
        forward_loss, backward = self.forward_loss, self.backward
        if prec.enabled:
            def forward_loss(micro: Any) -> torch.Tensor:
                with prec.autocast():
                    return self.forward_loss(micro)

            backward = backward or prec.backward
        after = None if not self._measuring else self._after_micro if per_sample is None else self._after_micro_samples
        shadow_sq: list[tuple[int, float]] = []
        if shadow:
            # Like a split's extra cost, the pass's own is in the step's time and in the interval
            # rule (measurement_interval), not in deba_seconds; its gradient read is (_after_micro).
            # The probe keeps the half's gradient (increment_sq's copy) for the pairing below.
            if shadow_half_pass(self.model, batch, n, forward_loss, backward, self._after_micro, self._batch_norms):
                shadow_sq = self._micro_sq
            self._micro_sq, after = [], None
        with per_sample if per_sample is not None else contextlib.nullcontext():
            result = run_micro_batches(
                None, batch, cap=cap, forward_loss=forward_loss, backward=backward, sketch=sketch,
                zero_grad=self._zero_grad, after_micro=after,
            )
        if shadow:
            self._micro_sq = self._shadow_pair(shadow_sq[0], n) if shadow_sq and not result.oom_events else []
        if per_sample is not None:
            self.deba_seconds += per_sample.take_seconds()
        if prec.scaler is not None:  # DEBA reads true gradients: unscaled, and before any clipping
            scale = prec.scale()
            result.micro_sketches = [s / scale for s in result.micro_sketches]
            self._micro_sq = [(size, sq / scale ** 2) for size, sq in self._micro_sq]
            self._ps[0] /= scale ** 2
        if split and not result.oom_events:
            result.cap = self.max_micro_batch  # the split was for measuring, not for memory
        if result.oom_events:
            # Out of memory after growth: keep the lowered cap for the following steps.
            self.max_micro_batch = result.cap
            self.oom_events.extend(result.oom_events)
            self._cap_throughput()
        return result

    def _shadow_pair(self, half: tuple[int, float], n: int) -> list[tuple[int, float]]:
        """Both halves' small estimates from the shadow half ``g1`` (``h`` samples) and the full
        step ``g``: the other half is taken as ``(n g - h g1) / (n - h)`` (exact without
        BatchNorm), so the pair's spread is the paired ``|g1 - g|^2`` a split gives, free of the
        ``|G|^2`` terms one half alone would carry. In the engine's convention: ``(b_i, |(b_i/n) g_i|^2)``."""
        t0 = time.perf_counter()
        h, g1 = half
        d = self.probe.increment_sq()  # |g - g1|^2 (the probe kept g1 from the shadow pass)
        full = sum(float(torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64)) ** 2
                   for p in self.probe.params if p.grad is not None and not p.grad.is_sparse)
        dot = 0.5 * (full + g1 - d)  # g . g1
        rest = n - h
        g2 = max(0.0, (n * n * full - 2.0 * n * h * dot + h * h * g1) / (rest * rest))
        self.deba_seconds += time.perf_counter() - t0
        return [(h, (h / n) ** 2 * g1), (rest, (rest / n) ** 2 * g2)]

    def _zero_grad(self) -> None:
        # Also a retry after out-of-memory: the micro-batch norms of the failed try are void.
        self.model.zero_grad(set_to_none=True)
        self._micro_sq = []
        self._ps = [0.0, 0, False]
        if self.per_sample is not None:
            self.per_sample.take()
        self.probe.reset_increments()

    def _after_micro(self, size: int) -> None:
        t0 = time.perf_counter()
        self._micro_sq.append((size, self.probe.increment_sq()))
        self.deba_seconds += time.perf_counter() - t0

    def _after_micro_samples(self, size: int) -> None:
        t0 = time.perf_counter()
        v = self.per_sample.take()
        if v is None or v.numel() != size:
            self._ps[2] = True  # a layer it cannot read: no measurement this step
        else:
            self._ps[0] += float(v.sum())
            self._ps[1] += size
        self.deba_seconds += time.perf_counter() - t0

    def _small_estimates(self) -> tuple[float, float, int] | None:
        """``(sum of |g_i|^2, sum of b_i, count)`` over this rank's micro-batches (``|g_i|^2`` unscaled),
        or over its samples when per-sample norms were read (then every ``b_i`` is 1)."""
        total, n, failed = self._ps
        if n:
            # Sample i's share of the accumulated gradient is g_i / n: undo the weighting.
            return (None if failed or n < 2 else (total * n * n, float(n), int(n)))
        if not self._micro_sq:
            return None
        n = sum(size for size, _ in self._micro_sq)
        # The accumulated gradient holds (b_i / n) g_i per micro-batch: undo the loss weighting.
        sq = sum(s / (size / n) ** 2 for size, s in self._micro_sq)
        return sq, float(n), len(self._micro_sq)

    def _distributed(self, batch: Any, epoch: int | None) -> tuple[MicroBatchResult, Observation]:
        """This rank's shard with local gradients, then one reduction and one shared observation."""
        ctx = self.dist
        with self.no_sync():
            result = self._micro_batches(batch)
        t0 = time.perf_counter()
        small = self._small_estimates()
        n_local = result.samples
        if not self._sketch:  # no collector reads sketches: nothing to gather
            sketches, sizes = [], []
        elif result.micro_sketches:
            sketches, sizes = result.micro_sketches, result.sketch_sizes
        else:  # one micro-batch: the shard's own (still local, still fp16-scaled) gradient is the estimate
            sketches, sizes = [self.probe.sketch().double().cpu().numpy() / self.precision.scale()], [n_local]
        # Ranks (or their micro-batches) are independent small estimates of the same step.
        sq_sum, b_sum, count = small if small is not None else (0.0, 0.0, 0)
        loss_sum, n_total, sq_sum, b_sum, count = ctx.sum([result.loss * n_local, float(n_local), sq_sum, b_sum,
                                                           float(count)])
        # Weighted by shard size, so unequal shards (an epoch's tail) still give the global mean.
        allreduce_gradients(self.probe.params, ctx.world, weight=n_local, total=n_total)
        # After the reduction, so every rank's GradScaler sees the same overflow and skips alike.
        self.precision.unscale(self.optimizer)
        all_sketches, all_sizes = (ctx.gather_sketches(sketches, sizes, self.probe.sketch_size) if self._sketch
                                   else ([], []))
        self.deba_seconds += time.perf_counter() - t0
        small = (sq_sum, b_sum, int(round(count))) if count >= 2 else None
        obs = self._observation(loss_sum / n_total, int(round(n_total)), all_sketches, all_sizes, epoch, small)
        return result, obs

    def _observation(self, loss: float, n: int, sketches: list, sizes: list[int], epoch: int | None,
                     small: tuple[float, float, int] | None = None) -> Observation:
        t0 = time.perf_counter()
        # Under DDP the reduced gradient: the same on every rank.
        snap = self.probe.capture(self._sketch, norm=self._reading)
        spent = time.perf_counter() - t0
        self.deba_seconds += spent
        if self._reading:
            self.norm_plan.record(spent)
        independent = len(sketches) >= 2
        # At least two small estimates (halves, a shadow pair, ranks, samples).
        usable = small is not None and small[2] >= 2
        return Observation(
            loss=loss, batch_size=n, grad_norm=snap.norm, grad_finite=snap.finite,
            grad_sketch=snap.sketch if self._sketch else None,
            micro_sketches=sketches if independent else None, micro_sizes=sizes if independent else None,
            step=self.steps + 1, epoch=epoch, samples=self.samples + n,
            small_batch=None if not usable else small[1] / small[2],
            small_grad_sq=None if not usable else small[0] / small[2],
        )

    def _conclude(self, obs: Observation, result: MicroBatchResult | None, t0: float) -> StepOutcome:
        """Decide, agree, set the LR factor of this step, resize the sampler, count."""
        t_obs = time.perf_counter()
        applied = self.lr_factor  # this batch was drawn under the decision in force before it
        if self.coupler is not None:
            self.coupler.factor = applied
        n = obs.batch_size
        # The budget clock moves before the scheduler sees the step (timing as shares of the run).
        credit = self.scheduler.progress_credit(n, applied) if obs.is_finite else 0.0  # a skipped step makes no progress
        self.scheduler.advance(n, credit)
        overflow = self.precision.scaler is not None and math.isfinite(obs.loss) and not obs.is_finite
        self._scaler_skips = self._scaler_skips + 1 if overflow else 0
        if overflow and self._scaler_skips <= _MAX_SCALER_SKIPS:
            # The *scaled* gradient overflowed: the GradScaler skips this step and lowers its scale.
            # That is not a non-finite training step, so the scheduler does not see it (unless it
            # keeps happening: then the gradient itself is non-finite, whatever the scale).
            decision = self.scheduler.hold("gradient overflow under fp16 loss scaling: the GradScaler skips the step")
        else:
            decision = self._agree(self.scheduler.observe(obs))
        self.lr_factor = decision.lr_factor
        if not obs.is_finite:
            # Clear the gradients: an optimizer step that runs anyway (HF) then changes nothing.
            self.model.zero_grad(set_to_none=True)
        self._last_samples = n
        self.steps += 1
        self.samples += n
        self.equivalent_samples += credit
        if self.sampler is not None:
            self.sampler.batch_size = decision.batch_size
            self.sampler.mark_consumed(n)
        self.deba_seconds += time.perf_counter() - t_obs
        return StepOutcome(obs, decision, result, n, self.steps, self.samples, applied, time.perf_counter() - t0)

    def _agree(self, decision: Decision) -> Decision:
        """Rank 0's decision, and when any rank decided otherwise the state it came from, on every rank.

        Ranks see the same observations but time their own steps, so throughput-driven decisions
        can differ; then rank 0's whole scheduler state (windows, cooldown, estimators) replaces
        the others', which keeps every rank's state, and so its checkpoint, rank 0's.
        """
        if self.dist is None:
            return decision
        ctx = self.dist
        agreed = ctx.broadcast_decision(decision)
        mine = (decision.batch_size, decision.lr_factor) != (agreed.batch_size, agreed.lr_factor)
        if ctx.any(mine):
            state = ctx.broadcast_object(self.scheduler.state_dict() if ctx.is_main else None)
            if not ctx.is_main:
                if mine:
                    warnings.warn(f"DEBA: rank {ctx.rank} decided {decision.batch_size}, rank 0 "
                                  f"{agreed.batch_size}; following rank 0 and its state", RuntimeWarning, stacklevel=3)
                self.scheduler.load_state_dict(state)
        return agreed

    def _timed_sketch(self) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.probe.sketch()
        self.deba_seconds += time.perf_counter() - t0
        return out

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The engine's counters and the LR factor in force (JSON-able)."""
        return {"steps": self.steps, "samples": self.samples, "equivalent_samples": self.equivalent_samples,
                "lr_factor": self.lr_factor, "grad_scaler": self.precision.state_dict(),
                "max_micro_batch": self.max_micro_batch, "oom_events": list(self.oom_events),
                "deba_seconds": self.deba_seconds, "norm_reads": self.norm_plan.state_dict(),
                "measurement_seconds": list(self._measure_own), "normal_seconds": list(self._normal_own),
                "measurement_interval": None if self._k_key is None else [list(self._k_key), self._k]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        try:
            self.steps = int(state["steps"])
            self.samples = int(state["samples"])
            self.equivalent_samples = float(state["equivalent_samples"])
            self.precision.load_state_dict(state.get("grad_scaler") or {})
            self.lr_factor = float(state["lr_factor"])
            cap = state.get("max_micro_batch")
            self.max_micro_batch = None if cap is None else int(cap)
            self.oom_events = list(state.get("oom_events", []))
            self.deba_seconds = float(state.get("deba_seconds", 0.0))
            self.norm_plan.load_state_dict(state.get("norm_reads") or {})
            self._stride_cache = None
            self._measure_own = [float(x) for x in state.get("measurement_seconds", [])]
            self._normal_own = [float(x) for x in state.get("normal_seconds", [])]
            k = state.get("measurement_interval")
            self._k_key, self._k = (None, 1) if k is None else (tuple(k[0]), k[1])
        except (KeyError, TypeError, ValueError) as exc:
            raise DebaConfigError.single("state.engine", type(exc).__name__, f"is malformed ({exc})") from exc
