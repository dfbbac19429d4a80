"""``DebaRun``: one DEBA run, the object every front end shares.

``deba.fit``, ``DebaController``, ``DebaTrainer``, ``DebaCallback`` and the ``DebaModule`` mixin all
construct a ``DebaRun`` and translate their framework's hooks into its calls, so a fix lands once
(docs/design.md, "One run, written once"). It owns:

* the wiring: profile (resolved, starting at the user's batch) -> scheduler -> gradient probe ->
  LR coupler -> step engine (:meth:`DebaRun.attach`, once the model, optimizer and sampler exist);
* the budget and its clock (:class:`deba.training.budget.RunBudget`, :meth:`DebaRun.plan`);
* the start-up throughput probe (:meth:`DebaRun.probe_throughput`): which sizes, its bound (1 %
  of the run; under DDP no time cut-off, so ranks cannot stop at different sizes), its batches;
* the history writer and the step record (:meth:`DebaRun.record`);
* the non-finite abort (:meth:`DebaRun.check_nonfinite`);
* the checkpoint state document (:meth:`DebaRun.state_document`, :meth:`DebaRun.restore`);
* the values every front end logs (:meth:`DebaRun.log_values`).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

import torch
from torch import nn

from deba.control.decision import Decision
from deba.control.scheduler import BatchScheduler
from deba.errors import DebaConfigError, NonFiniteTraining
from deba.profiles.loading import resolve_profile
from deba.profiles.lr_rule import optimizer_family
from deba.profiles.schema import ArchitectureProfile
from deba.signals.probe import GradientProbe
from deba.training.budget import RunBudget
from deba.training.checkpoint import build_state, restore_state
from deba.training.distributed import DistributedContext
from deba.training.history import HistoryWriter
from deba.training.lr import LRCoupler
from deba.training.options import RunOptions
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.step import StepEngine, StepOutcome
from deba.training.throughput_probe import PROBE_REPEATS, passes_per_size, probe_throughput, startup_sizes

__all__ = ["DebaRun", "probe_batch_maker", "run_profile"]

#: Offset of the start-up probe's batch generator from the run's seed (its draws never touch the
#: training RNG or the sampler's order).
_PROBE_SEED_OFFSET = 7919


def probe_batch_maker(size: int, assemble: Callable[[list[int]], Any], seed: int, world: int = 1
                      ) -> Callable[[int], Any]:
    """``make_batch(n)`` for the start-up probe: ``n // world`` random indices of a dataset of
    ``size`` samples, assembled by ``assemble(indices)`` as the training loader would.

    Example:
        >>> make = probe_batch_maker(10, lambda idx: idx, seed=0)
        >>> len(make(4)), all(0 <= i < 10 for i in make(4))
        (4, True)
    """
    gen = torch.Generator().manual_seed(seed + _PROBE_SEED_OFFSET)

    def make_batch(n: int) -> Any:
        idx = torch.randint(0, size, (max(1, n // world),), generator=gen).tolist()
        return assemble(idx)

    return make_batch


def run_profile(profile: Any, model: nn.Module, *, initial_batch: int | None = None,
                initial_field: str = "batch_size", fixed_batch: int | None = None, world: int = 1) -> ArchitectureProfile:
    """The run's profile: ``profile`` resolved (``"auto"``: detected from ``model``), starting at
    the user's batch, or pinned to ``fixed_batch`` for a fixed-batch baseline.

    Example:
        >>> import torch
        >>> run_profile("mlp", torch.nn.Linear(2, 2), initial_batch=24).initial_batch
        24
    """
    prof = resolve_profile(profile, model)
    if initial_batch is not None:
        prof = prof.starting_at(initial_batch, field=initial_field)
    if fixed_batch is not None:
        # One grid step that the world size divides whenever the batch does (equal shards).
        prof = prof.replace(min_batch=fixed_batch, max_batch=fixed_batch, initial_batch=fixed_batch,
                            granularity=math.gcd(fixed_batch, world))
    return prof


class DebaRun:
    """DEBA's part of one training run, whatever runs the loop.

    Args:
        options: DEBA's settings (:class:`deba.RunOptions`).
        model: the model (architecture detection for ``profile="auto"``).
        initial_batch: the user's batch, the starting batch ``B0`` (global); ``None``: the
            profile's. ``initial_field`` names where it came from, for errors.
        optimizer: the optimizer, when it exists already (its family picks the LR rule).
        fixed_batch: run a fixed-batch baseline at this size instead (DEBA observes, never changes).
        world: ranks; a fixed batch's grid step divides evenly across them.

    Example:
        >>> import torch, deba
        >>> from deba.training.run import DebaRun
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> run = DebaRun(deba.RunOptions(profile="mlp"), model, initial_batch=16, optimizer=opt)
        >>> run.plan(640)
        >>> engine = run.attach(model, opt, forward_loss=lambda b: torch.nn.functional.cross_entropy(model(b[0]), b[1]))
        >>> out = engine.run((torch.randn(16, 4), torch.randint(0, 2, (16,))))
        >>> run.budget.equivalent, run.samples, run.budget_spent()
        (True, 16, False)
    """

    def __init__(self, options: RunOptions, model: nn.Module, *, initial_batch: int | None = None,
                 initial_field: str = "batch_size", optimizer: torch.optim.Optimizer | None = None,
                 fixed_batch: int | None = None, world: int = 1) -> None:
        if not isinstance(options, RunOptions):
            raise DebaConfigError.single("options", type(options).__name__, "must be a deba.RunOptions")
        self.options = options
        self.profile = self._profile(model, initial_batch, initial_field, fixed_batch, world)
        self.fixed_batch = fixed_batch
        self.scheduler = BatchScheduler(
            self.profile, strategy=options.strategy, strategy_options=options.strategy_options, policy=options.policy,
            throughput=options.throughput, optimizer_family=None if optimizer is None else optimizer_family(optimizer))
        self.budget = RunBudget(None, equivalent=False, owned=False)
        self.engine: StepEngine | None = None
        self.sampler: AdaptiveBatchSampler | None = None
        self.history: HistoryWriter | None = None
        # Checkpointed: a resumed run keeps the probe's cost in its clock and reports it again.
        self.clock: dict[str, Any] = {"epoch": 0, "wall": 0.0, "eval_time": 0.0, "lr_steps": 0, "probe_seconds": 0.0,
                                      "probe_sizes": [], "probe_passes": 0}
        self.abort_after = options.nonfinite_abort or 3 * self.profile.nonfinite_patience
        self._pending: dict[str, Any] | None = None  # a state document waiting for the engine
        self._pending_sampler: dict[str, Any] | None = None  # ... and a sampler position for attach()
        self._planned = False

    def _profile(self, model: nn.Module, initial_batch: int | None, field: str, fixed: int | None,
                 world: int) -> ArchitectureProfile:
        return run_profile(self.options.profile, model, initial_batch=initial_batch, initial_field=field,
                           fixed_batch=fixed, world=world)


    # The budget ---------------------------------------------------------------------------------

    def plan(self, total: int | None, *, owned: bool = True) -> None:
        """Set the budget: ``total`` samples of the run (``None``: unknown); ``owned=False`` when
        the framework, not DEBA, stops the run (``total`` then only sizes the share timing).

        ``options.budget="auto"`` counts equivalent samples when DEBA owns the stop and the policy
        reads the noise scale (only there can ``E(B)`` be measured).
        """
        kind = self.options.budget
        equivalent = kind == "equivalent" or (kind == "auto" and owned and self.scheduler.policy.needs_noise)
        if equivalent and not owned:
            raise DebaConfigError.single("budget", "equivalent", "needs DEBA to own the stop (epochs=... or "
                                         "max_samples=...) to train equivalent samples")
        self.budget = RunBudget(total, equivalent=equivalent, owned=owned)
        self._planned = True
        self.scheduler.measure_noise = equivalent
        # A known budget lets the profile's timing be shares of the run (docs/design.md).
        self.scheduler.plan(total, equivalent=equivalent)

    @property
    def samples(self) -> int:
        """Samples trained so far (all ranks)."""
        if self.engine is not None:
            return self.engine.samples
        return int(self._pending["engine"]["samples"]) if self._pending else 0

    @property
    def equivalent_samples(self) -> float:
        """Starting-batch-equivalent samples trained so far."""
        if self.engine is not None:
            return self.engine.equivalent_samples
        return float(self._pending["engine"]["equivalent_samples"]) if self._pending else 0.0

    @property
    def progress(self) -> float:
        """What the budget counts, so far."""
        return self.budget.progress(self.samples, self.equivalent_samples)

    def budget_spent(self) -> bool:
        """Whether DEBA's budget is spent (never when the framework owns the stop)."""
        return self.budget.spent(self.samples, self.equivalent_samples)

    def share_done(self) -> float:
        """Share of the budget done, in [0, 1]."""
        return self.budget.share_done(self.samples, self.equivalent_samples)

    # Wiring -------------------------------------------------------------------------------------

    def attach(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, *,
               sampler: AdaptiveBatchSampler | None = None, forward_loss: Callable[[Any], torch.Tensor] | None = None,
               backward: Callable[[torch.Tensor], None] | None = None, dist: DistributedContext | None = None,
               no_sync: Callable[[], contextlib.AbstractContextManager] | None = None, precision: Any = None,
               per_sample_norms: bool = True, seed: int = 0, probe_model: nn.Module | None = None) -> StepEngine:
        """Build the LR coupler and the step engine (once the model, optimizer and sampler exist).

        ``probe_model`` is the module whose parameters are probed when it is not ``model`` (a
        wrapped model steps, the plain one holds the parameters).
        """
        if self.engine is not None:
            raise DebaConfigError.single("attach", "twice", "is called once per run")
        if optimizer is not None and self.scheduler.optimizer_family is None:
            self.scheduler.optimizer_family = optimizer_family(optimizer)
        self.sampler = sampler
        if sampler is not None and self._pending_sampler is not None:
            sampler.load_state_dict(self._pending_sampler)
            self._pending_sampler = None
        if sampler is not None:
            # An epoch's tail smaller than one grid step joins the batch before it, in every front end.
            sampler.min_last_batch = max(sampler.min_last_batch, self.profile.granularity)
        coupler = None if optimizer is None else LRCoupler(optimizer, self.scheduler.lr_factor)
        cap = self.options.max_micro_batch or self.profile.max_micro_batch
        probe = GradientProbe(probe_model or model, sketch_size=self.profile.sketch_size, seed=seed)
        self.engine = StepEngine(model, self.scheduler, probe, forward_loss=forward_loss, backward=backward,
                                 max_micro_batch=cap, dist=dist, coupler=coupler, sampler=sampler, no_sync=no_sync,
                                 precision=precision, optimizer=optimizer, per_sample_norms=per_sample_norms)
        if self._pending is not None:
            self._restore_engine(self._pending)
        return self.engine

    def detach(self) -> None:
        """Remove the LR coupler's optimizer hooks and close the history (the run is over)."""
        if self.engine is not None and self.engine.coupler is not None:
            self.engine.coupler.remove()
        if self.history is not None:
            self.history.close()

    def open_history(self, folder: Any, *, filename: str, rank: int = 0, tensorboard: bool = False,
                     keep: int = 10_000) -> HistoryWriter:
        """The history writer: ``filename`` in ``folder`` on rank 0, ``<stem>-rank<r>.jsonl`` elsewhere
        (every rank records its own trajectory, so agreement can be checked)."""
        stem = filename[:-len(".jsonl")] if filename.endswith(".jsonl") else filename
        name = filename if rank == 0 else f"{stem}-rank{rank}.jsonl"
        self.history = HistoryWriter(folder, tensorboard=tensorboard and rank == 0, keep=keep, filename=name)
        return self.history

    # The start-up probe -------------------------------------------------------------------------

    def wants_probe(self, requested: bool | None = None) -> bool:
        """Whether the start-up probe runs: asked for, or by default where the policy reads
        throughput and the batch is not fixed; never with a fixed table or after the first step."""
        wanted = self.options.probe_throughput if requested is None else requested
        if wanted is None:
            wanted = self.scheduler.policy.needs_noise and self.fixed_batch is None
        return bool(wanted) and self.scheduler.throughput.fixed is None and self.samples == 0

    def probe_throughput(self, make_batch: Callable[[int], Any], *, world: int = 1,
                         forward_loss: Callable[[Any], torch.Tensor] | None = None,
                         guard: Callable[[], contextlib.AbstractContextManager] | None = None) -> float:
        """Time a few candidate sizes before the first step (goodput needs ``T(B)`` beyond the start).

        Sizes up to the start are always timed; past it the probe stops at 1 % of the run's
        expected length (5 s at most). Under DDP there is no time cut-off: ranks on their own
        clocks would stop at different sizes. ``guard`` wraps the passes (e.g. DDP's ``no_sync``).
        The seconds spent go on the run's clock (``clock["probe_seconds"]``) and are returned.
        """
        engine = self._require_engine()
        p = self.profile
        sizes = startup_sizes(self.scheduler.batch_size, p.max_batch, p.granularity, world)
        limits: dict[str, Any] = {"max_seconds": float("inf")} if world > 1 else {"run_samples": self.budget.total}
        t0 = time.perf_counter()
        with guard() if guard is not None else contextlib.nullcontext():
            timed = probe_throughput(engine.model, forward_loss or engine.forward_loss, make_batch, sizes,
                                     self.scheduler.throughput, cap=engine.max_micro_batch, repeats=PROBE_REPEATS,
                                     start=self.scheduler.batch_size, **limits)
        spent = time.perf_counter() - t0
        # The probe is training time a fixed batch does not spend: it goes on the run's clock.
        self.clock["wall"] += spent
        self.clock.update(probe_seconds=spent, probe_sizes=sorted(timed), probe_passes=passes_per_size(PROBE_REPEATS))
        return spent

    # Per step -----------------------------------------------------------------------------------

    def end_epoch_if_used(self) -> Decision | None:
        """Close DEBA's epoch when the sampler's epoch was used up; a framework also ends its own
        epoch when a budget stops the run mid-epoch, and that is no epoch end (``None`` then)."""
        s = self.sampler
        if self.engine is None or s is None or not (s.position >= s.num_samples or s.epoch_done):
            return None
        return self.engine.end_epoch()

    def record(self, out: StepOutcome, epoch: int | None, **extra: Any) -> dict[str, Any]:
        """The step's history record (written when there is a history), once the optimizer step ran."""
        engine = self._require_engine()
        lr = engine.coupler.last_used[0] if engine.coupler is not None else None
        rec = out.record(epoch, lr, equivalent_samples=engine.equivalent_samples, **extra)
        if self.history is not None:
            self.history.write(rec)
        return rec

    def check_nonfinite(self) -> None:
        """Stop the run when the non-finite steps in a row reach ``abort_after``.

        Raises:
            NonFiniteTraining: with what to check.
        """
        bad = self.scheduler.nonfinite_consecutive
        if bad >= self.abort_after:
            engine = self._require_engine()
            factor = engine.coupler.factor if engine.coupler is not None else engine.lr_factor
            raise NonFiniteTraining(
                f"step {engine.steps}: {bad} consecutive non-finite losses or gradients "
                f"(batch now {self.scheduler.batch_size}). Check the learning rate (scaled by lr_factor="
                f"{factor:.3g}), the data for NaN/inf, the loss function, and mixed-precision scaling."
            )

    def log_values(self, decision: Decision | None = None) -> dict[str, float]:
        """What every front end logs (HF as ``deba_<name>``, Lightning as ``deba/<name>``)."""
        d = decision if decision is not None else self.scheduler.last_decision
        out: dict[str, float] = {"batch_size": float(self.scheduler.batch_size), "samples": float(self.samples),
                                 "equivalent_samples": float(self.equivalent_samples)}
        if d is None:
            return out
        out["lr_factor"] = float(d.lr_factor)
        if d.score is not None:
            out["score"] = float(d.score)
        if d.noise_scale is not None:
            out["noise_scale"] = float(d.noise_scale)
        if d.noise_scale_low is not None:
            out["noise_scale_low"] = float(d.noise_scale_low)
        return out

    # State --------------------------------------------------------------------------------------

    def state_document(self, *, world: int = 1, **extra: Any) -> dict[str, Any]:
        """The ``deba_state.json`` document (the same for every front end, plus ``extra``)."""
        engine = self._require_engine()
        return build_state(profile=self.profile, scheduler=self.scheduler, engine=engine, sampler=self.sampler,
                           history_records=0 if self.history is None else self.history.count, world_size=world,
                           clock=dict(self.clock), **extra)

    def restore(self, state: dict[str, Any], *, field: str = "profile", sampler: bool = True) -> None:
        """Continue from a state document: now the scheduler (and sampler, unless ``sampler=False``,
        when the framework restored the loader's position itself); the engine now or when it is
        attached."""
        engine = self.engine if self.engine is not None else _NoEngine()
        restore_state(state, profile=self.profile, scheduler=self.scheduler, engine=engine,
                      sampler=self.sampler if sampler else None, field=field)
        if sampler and self.sampler is None:
            self._pending_sampler = state.get("sampler")  # applied when attach() gets the sampler
        if self._planned:
            # The scheduler's share timing follows this run's budget, as the stop does.
            self.scheduler.plan(self.budget.total, equivalent=self.budget.equivalent)
        if self.engine is None:
            self._pending = state
        else:
            self._resume_engine(state)
        self.clock.update(state.get("clock") or {})
        if self.history is not None:
            self.history.start(resumed_records=int(state.get("history_records", 0)))

    def _restore_engine(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self._resume_engine(state)
        self._pending = None

    def _resume_engine(self, state: dict[str, Any]) -> None:
        """The LR factor in force and the sampler's size: the engine set the fresh run's when it was built."""
        if self.engine.coupler is not None:
            self.engine.coupler.factor = self.engine.lr_factor
        saved = state.get("sampler")
        if self.sampler is not None and saved is not None:
            self.sampler.batch_size = int(saved["batch_size"])

    def _require_engine(self) -> StepEngine:
        if self.engine is None:
            raise DebaConfigError.single("DebaRun", "not attached", "needs attach(model, optimizer, ...) first")
        return self.engine


class _NoEngine:
    """Stands in for the engine while its state waits for :meth:`DebaRun.attach`."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise DebaConfigError.single("state.engine", type(state).__name__, "must be a dict")
