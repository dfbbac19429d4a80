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
from deba.training.batching import MicroBatchResult, batch_len, call_model, model_devices, synchronize
from deba.training.distributed import DistributedContext, allreduce_gradients, broadcast_module, local_no_sync
from deba.training.history import step_record
from deba.training.lr import LRCoupler
from deba.training.measurement import (AcrossRanks, Measured, Measurement, MeasurementInterval, MicroBatchRunner,
                                       PerSampleStep, PlainStep, ShadowHalf, SmallEstimates, SplitStep, read_manual)
from deba.training.norm_reads import NormReadPlan
from deba.training.precision import Precision
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.shadow import batch_dependent_modules
from deba.training.stopwatch import Stopwatch

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


def _check_cap(max_micro_batch: Any) -> int | None:
    if max_micro_batch is not None and (isinstance(max_micro_batch, bool) or not isinstance(max_micro_batch, int)
                                        or max_micro_batch < 1):
        raise DebaConfigError.single("max_micro_batch", max_micro_batch, "must be an int >= 1 or None")
    return max_micro_batch


def _check_shadow(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise DebaConfigError.single("shadow_halves", value, "must be True, False or None")
    return value


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DebaConfigError.single(name, value, "must be True or False")
    return value


class StepEngine:
    """Runs DEBA's part of every optimizer step (see the module docstring for the order).

    Args:
        model: the model (its parameters are probed; under DDP the plain or DDP-wrapped module).
        scheduler: the batch scheduler.
        probe: the gradient probe over the model's parameters.
        forward_loss: ``forward_loss(micro_batch) -> mean loss`` (see :func:`loss_of`); not
            needed in manual mode, and :meth:`run` may be given one per call.
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
        per_sample_norms: measure a model of linear layers with per-sample gradient norms
            (``False``: never, e.g. when a framework's GradScaler scales the output gradients).
        shadow_halves: how a one-micro-batch measurement step is measured: ``True`` a shadow
            half-batch pass that leaves the step untouched (``deba.training.shadow``), ``False`` a
            split into halves, ``None`` a shadow half whenever a BatchNorm is in training mode.
        measure_noise: run noise measurement steps at all (``False``: never measure).

    Example:
        >>> import torch, deba
        >>> from deba.training.step import StepEngine, loss_of
        >>> model = torch.nn.Linear(3, 2)
        >>> sched = deba.BatchScheduler("generic")
        >>> engine = StepEngine(model, sched, deba.signals.GradientProbe(model, 8),
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
        per_sample_norms: bool = True,
        shadow_halves: bool | None = None,
        measure_noise: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
        if forward_loss is not None and not callable(forward_loss):
            raise DebaConfigError.single("forward_loss", forward_loss, "must be callable as forward_loss(micro_batch)")
        self.model = model
        self.scheduler = scheduler
        self.probe = probe
        self.forward_loss = forward_loss
        self.backward = backward
        self.max_micro_batch = _check_cap(max_micro_batch)
        self.dist = dist
        self.coupler = coupler
        self.sampler = sampler
        self.no_sync = no_sync or (lambda: local_no_sync(model))
        self.precision = precision or Precision(None, "cpu")
        self.optimizer = optimizer
        self.measure_noise = _check_flag("measure_noise", measure_noise)
        # Per-sample norms (a model of linear layers): measurement steps need no split.
        self.per_sample: PerSampleNorms | None = (
            PerSampleNorms(model) if _check_flag("per_sample_norms", per_sample_norms) and PerSampleNorms.supports(model)
            else None)
        # BatchNorm: a split would change what the step trains on, so measure with a shadow half.
        self._batch_norms = batch_dependent_modules(model)
        self._shadow_halves = _check_shadow(shadow_halves)
        self._sketch = scheduler.needs_sketch  # read gradient sketches only for collectors that use them
        self._interval = MeasurementInterval(scheduler, dist)  # which steps measure
        self.norm_plan = NormReadPlan()  # which steps read the full gradient norm (its cost is ~1 % on a CPU)
        self.own_time = Stopwatch()  # DEBA's own time (deba_seconds)
        self._measuring = False  # the step in flight measures
        self._reading = True  # ... and reads the full gradient norm
        self._ext_measuring = False  # measuring() opened a manual-mode measurement
        self._devices: list[torch.device] | None = None  # where a step's kernels run (timing waits there)
        self._t_step: float | None = None  # start of the step in flight (throughput timing)
        self._opened = False  # start_step() opened the step in flight (manual mode)
        self._last_samples = 0
        self._scaler_skips = 0
        self.steps = 0
        self.samples = 0
        self.equivalent_samples = 0.0  # starting-batch-equivalent samples (docs/design.md, "budget")
        self.oom_events: list[dict[str, int]] = []
        last = scheduler.last_decision
        self.lr_factor = last.lr_factor if last is not None else scheduler.lr_factor
        if sampler is not None:
            sampler.batch_size = scheduler.batch_size
        self._cap_throughput()

    @property
    def deba_seconds(self) -> float:
        """DEBA's own seconds so far (its reads, reductions and decisions; docs/design.md, "Overhead")."""
        return self.own_time.seconds

    def cap_memory(self, max_micro_batch: int | None) -> None:
        """Set the memory cap (samples per forward/backward on this rank; ``None``: no cap) from the
        next step on, as a manual-mode caller's per-call cap. Like the constructor's cap it is lowered
        for good after an out-of-memory retry; unlike it, it leaves the throughput model's
        ``memory_cap`` as it is."""
        self.max_micro_batch = _check_cap(max_micro_batch)

    def _cap_throughput(self) -> None:
        """Beyond the memory cap a step runs as micro-batches: throughput there is the cap's."""
        if self.max_micro_batch is not None:
            world = 1 if self.dist is None else self.dist.world
            self.scheduler.throughput.memory_cap = self.max_micro_batch * world

    # The step -----------------------------------------------------------------------------------

    def run(self, batch: Any, *, epoch: int | None = None,
            forward_loss: Callable[[Any], torch.Tensor] | None = None) -> StepOutcome:
        """Forward and backward ``batch`` (this rank's shard), observe, decide; gradients stay in ``.grad``.

        ``forward_loss`` (this call's) overrides the constructor's."""
        forward_loss = self.forward_loss if forward_loss is None else forward_loss
        if forward_loss is None:
            raise DebaConfigError.single("forward_loss", None, "is needed to run a step (manual mode uses observe())")
        if not callable(forward_loss):
            raise DebaConfigError.single("forward_loss", forward_loss, "must be callable as forward_loss(micro_batch)")
        t0 = self._start_step()
        self.model.zero_grad(set_to_none=True)
        self._measuring = self._measure_now()
        self._reading = self._read_norm_now()
        own_before = self.own_time.seconds
        try:
            if self.dist is None:
                measured = self._micro_batches(batch, forward_loss)
                self.precision.unscale(self.optimizer)  # true gradients, read before any clipping
                result = measured.result
                obs = self._observation(result.loss, result.samples, result.micro_sketches, result.sketch_sizes, epoch,
                                        measured.small)
            else:
                result, obs = self._distributed(batch, epoch, forward_loss)
        finally:
            self.probe.reset_increments()
            self._interval.record(self._measuring, self.own_time.since(own_before))
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
        small = self._manual_small(batch_size)
        if self.dist is not None:
            loss_sum, n, small = AcrossRanks.combine(self.dist, value * batch_size, batch_size, small)
            value, batch_size = loss_sum / max(n, 1.0), int(round(n))
        if small is not None and small.usable:
            fields = {**fields, "small_batch": small.small_batch, "small_grad_sq": small.small_grad_sq}
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

    def _manual_small(self, batch_size: int) -> SmallEstimates | None:
        """The per-sample estimates :meth:`measuring` read (``None`` when it read none)."""
        if not self._ext_measuring:
            return None
        self._ext_measuring = False
        return read_manual(self.per_sample, batch_size, self.own_time)

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
        alone = self.dist is None and self.per_sample is None
        return self._interval.due(self.steps, alone=alone, shadow=self._shadow_now)

    def _read_norm_now(self) -> bool:
        """Whether this step reads the full gradient norm (docs/design.md, "Overhead").

        Always on measurement steps, under an fp16 GradScaler, under DDP (ranks must agree on
        finiteness, and their timings differ); otherwise as :meth:`NormReadPlan.due` says (on an
        interval's first step, whenever decisions do not already depend on timing, and every ``j``
        steps, the reads costing at most 0.25 % of step time).
        """
        if self._measuring or self.precision.scaler is not None or self.dist is not None:
            return True
        return self.norm_plan.due(self.scheduler, self.steps)

    def _norm_stride(self) -> int:
        return self.norm_plan.stride_at(self.scheduler, self.steps)

    @property
    def shadow_halves(self) -> bool | None:
        """How a one-micro-batch measurement step is measured: ``True`` a shadow half-batch pass
        that leaves the step untouched (``deba.training.shadow``), ``False`` a split into halves,
        ``None`` (default) a shadow half whenever a BatchNorm is in training mode. Set it with the
        constructor's ``shadow_halves``."""
        return self._shadow_halves

    def _shadow_now(self) -> bool:
        """Whether a measurement of a one-micro-batch step runs a shadow half instead of a split."""
        if self._shadow_halves is not None:
            return self._shadow_halves
        return any(m.training for m in self._batch_norms)

    def _measurement(self, batch: Any) -> Measurement:
        """How this step runs: plainly, or as one of the noise measurement paths."""
        if not self._measuring:
            local: Measurement = PlainStep()
        elif self.dist is not None:
            local = PlainStep(read_norms=True)  # the ranks (and their micro-batches) are the estimates
        elif self.per_sample is not None:
            return PerSampleStep(self.per_sample)
        else:
            n = batch_len(batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch)
            cap = self.max_micro_batch
            if (cap is None or n <= cap) and n >= 2:
                # One micro-batch: a BatchNorm model runs a shadow half first (the step itself runs
                # unchanged); any other is split in two.
                return ShadowHalf(n, self._batch_norms) if self._shadow_now() else SplitStep(n)
            local = PlainStep(read_norms=True)  # several micro-batches measure themselves
        return local if self.dist is None else AcrossRanks(local, self.no_sync)

    def _micro_batches(self, batch: Any, forward_loss: Callable[[Any], torch.Tensor]) -> Measured:
        runner = MicroBatchRunner(model=self.model, probe=self.probe, forward_loss=forward_loss, backward=self.backward,
                                  cap=self.max_micro_batch, sketch=self._sketch, stopwatch=self.own_time,
                                  precision=self.precision, per_sample=self.per_sample)
        measured = self._measurement(batch).run(batch, runner)
        result = measured.result
        scale = runner.loss_scale()
        if scale is not None:  # DEBA reads true gradients: unscaled, and before any clipping
            result.micro_sketches = [s / scale for s in result.micro_sketches]
        if result.oom_events:
            # Out of memory after growth: keep the lowered cap for the following steps.
            self.max_micro_batch = result.cap
            self.oom_events.extend(result.oom_events)
            self._cap_throughput()
        return measured

    def _distributed(self, batch: Any, epoch: int | None,
                     forward_loss: Callable[[Any], torch.Tensor]) -> tuple[MicroBatchResult, Observation]:
        """This rank's shard with local gradients, then one reduction and one shared observation."""
        ctx = self.dist
        measured = self._micro_batches(batch, forward_loss)
        result = measured.result
        with self.own_time:
            n_local = result.samples
            if not self._sketch:  # no collector reads sketches: nothing to gather
                sketches, sizes = [], []
            elif result.micro_sketches:
                sketches, sizes = result.micro_sketches, result.sketch_sizes
            else:  # one micro-batch: the shard's own (still local, still fp16-scaled) gradient is the estimate
                sketches, sizes = [self.probe.sketch().double().cpu().numpy() / self.precision.scale()], [n_local]
            loss_sum, n_total, small = AcrossRanks.combine(ctx, result.loss * n_local, n_local, measured.small)
            # Weighted by shard size, so unequal shards (an epoch's tail) still give the global mean.
            allreduce_gradients(self.probe.params, ctx.world, weight=n_local, total=n_total)
            # After the reduction, so every rank's GradScaler sees the same overflow and skips alike.
            self.precision.unscale(self.optimizer)
            all_sketches, all_sizes = (ctx.gather_sketches(sketches, sizes, self.probe.sketch_size) if self._sketch
                                       else ([], []))
        obs = self._observation(loss_sum / n_total, int(round(n_total)), all_sketches, all_sizes, epoch, small)
        return result, obs

    def _observation(self, loss: float, n: int, sketches: list, sizes: list[int], epoch: int | None,
                     small: SmallEstimates | None = None) -> Observation:
        with self.own_time:
            # Under DDP the reduced gradient: the same on every rank.
            snap = self.probe.capture(self._sketch, norm=self._reading)
        if self._reading:
            self.norm_plan.record(self.own_time.last)
        independent = len(sketches) >= 2
        # At least two small estimates (halves, a shadow pair, ranks, samples).
        usable = small is not None and small.usable
        return Observation(
            loss=loss, batch_size=n, grad_norm=snap.norm, grad_finite=snap.finite,
            grad_sketch=snap.sketch if self._sketch else None,
            micro_sketches=sketches if independent else None, micro_sizes=sizes if independent else None,
            step=self.steps + 1, epoch=epoch, samples=self.samples + n,
            small_batch=small.small_batch if usable else None,
            small_grad_sq=small.small_grad_sq if usable else None,
        )

    def _conclude(self, obs: Observation, result: MicroBatchResult | None, t0: float) -> StepOutcome:
        """Decide, agree, set the LR factor of this step, resize the sampler, count."""
        with self.own_time:
            applied = self.lr_factor  # this batch was drawn under the decision in force before it
            if self.coupler is not None:
                self.coupler.factor = applied
            n = obs.batch_size
            # The budget clock moves before the scheduler sees the step (timing as shares of the run).
            credit = self.scheduler.progress_credit(n, applied) if obs.is_finite else 0.0  # a skipped step: no progress
            self.scheduler.advance(n, credit)
            decision = self._decide(obs)
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
        return StepOutcome(obs, decision, result, n, self.steps, self.samples, applied, time.perf_counter() - t0)

    def _decide(self, obs: Observation) -> Decision:
        """The scheduler's decision on ``obs``, or a hold when the fp16 GradScaler skips the step."""
        overflow = self.precision.scaler is not None and math.isfinite(obs.loss) and not obs.is_finite
        self._scaler_skips = self._scaler_skips + 1 if overflow else 0
        if overflow and self._scaler_skips <= _MAX_SCALER_SKIPS:
            # The *scaled* gradient overflowed: the GradScaler skips this step and lowers its scale.
            # That is not a non-finite training step, so the scheduler does not see it (unless it
            # keeps happening: then the gradient itself is non-finite, whatever the scale).
            return self.scheduler.hold("gradient overflow under fp16 loss scaling: the GradScaler skips the step")
        return self._agree(self.scheduler.observe(obs))

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

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The engine's counters and the LR factor in force (JSON-able)."""
        return {"steps": self.steps, "samples": self.samples, "equivalent_samples": self.equivalent_samples,
                "lr_factor": self.lr_factor, "grad_scaler": self.precision.state_dict(),
                "max_micro_batch": self.max_micro_batch, "oom_events": list(self.oom_events),
                "deba_seconds": self.deba_seconds, "norm_reads": self.norm_plan.state_dict(),
                **self._interval.state_dict()}

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
            self.own_time.seconds = float(state.get("deba_seconds", 0.0))
            self.norm_plan.load_state_dict(state.get("norm_reads") or {})
            self._interval.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise DebaConfigError.single("state.engine", type(exc).__name__, f"is malformed ({exc})") from exc
