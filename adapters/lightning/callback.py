"""``DebaCallback``: DEBA in a ``lightning.Trainer`` run, on the shared step engine.

How it fits into ``Trainer.fit`` (docs/lightning.md):

* **Data**: the training DataLoader carries DEBA's sampler (:func:`deba_dataloader`); the callback
  finds it when training starts, and the DataLoader's batch size is the starting batch ``B0``.
* **Step, automatic optimization** (the callback alone): Lightning runs forward and backward; in
  ``on_before_optimizer_step`` (gradients unscaled, not yet clipped, already reduced under DDP)
  the callback hands the step to the engine's manual mode: probe, decision (rank 0's on every
  rank), the LR factor of this step, sampler resize. A non-finite step's gradients are set to
  ``None``, so the optimizer skips every parameter. What a callback cannot do there: micro-batch a
  batch larger than memory, split a step to measure the noise, read each rank's gradient before DDP
  reduces it. For a model made only of linear layers it still measures the noise (per-sample
  norms read during Lightning's own backward); otherwise it has no noise estimate and the goodput
  policy holds.
* **Step, the DebaModule mixin**: the module's ``training_step`` lets the engine run the step
  (micro-batches under the memory cap, measurement steps, local gradients reduced once under DDP,
  out-of-memory back-off), then steps the optimizer and the step-interval LR schedules.
* **LR**: the factor goes through optimizer hooks; the user's schedule (and ``lr_scheduler_step``)
  keeps owning ``param_group["lr"]``. ``trainer.estimated_stepping_batches`` is refused with a remedy:
  use :meth:`DebaCallback.sample_clock`.
* **Logs**: ``deba/batch_size`` (also on the progress bar), ``deba/score``, ``deba/noise_scale``,
  ``deba/lr_factor`` through ``LightningModule.log``; every step in ``history_dir`` if given.
* **Checkpoints**: DEBA's state (the ``deba_state.json`` schema, plus the RNG) is the callback's
  ``state_dict`` inside Lightning's checkpoint; ``trainer.fit(ckpt_path=...)`` continues the
  batch-size trajectory and the sample order.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from deba.adapters.lightning import _require

_require()

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402

from deba.adapters.lightning.checks import (check_options, check_trainer, guard_stepping_batches,  # noqa: E402
                                            unguard_stepping_batches)
from deba.adapters.lightning.data import find_sampler, offer_restore, withdraw_restore  # noqa: E402
from deba.control.scheduler import BatchScheduler  # noqa: E402
from deba.errors import DebaConfigError  # noqa: E402
from deba.profiles.loading import resolve_profile  # noqa: E402
from deba.profiles.lr_rule import optimizer_family  # noqa: E402
from deba.signals.probe import GradientProbe  # noqa: E402
from deba.training import distributed  # noqa: E402
from deba.training.batching import batch_len, move_to  # noqa: E402
from deba.training.checkpoint import build_state, capture_rng, restore_rng, restore_state  # noqa: E402
from deba.training.fit import NonFiniteTraining  # noqa: E402
from deba.training.history import HistoryWriter  # noqa: E402
from deba.training.lr import LRCoupler  # noqa: E402
from deba.training.step import StepEngine, StepOutcome  # noqa: E402
from deba.training.throughput_probe import probe_throughput, startup_sizes  # noqa: E402

__all__ = ["DebaCallback", "SAMPLE_CAP"]

#: An equivalent budget never trains more than this many times the strict budget's samples (as deba.fit).
SAMPLE_CAP = 4


class DebaCallback(pl.Callback):
    """DEBA for ``lightning.Trainer``: adaptive global batch, LR factor, logs, checkpoints, DDP.

    Args:
        profile: a profile, a name, a file, or ``"auto"`` (detected from the LightningModule).
        strategy, strategy_options, policy, throughput: the scheduler's (``throughput``: a fixed
            table batch -> samples/s instead of measuring).
        max_micro_batch: samples per forward/backward in steps DEBA runs (the mixin).
        epochs, max_samples: DEBA's budget; DEBA then stops the Trainer when it is spent (give
            ``Trainer(max_epochs=-1)`` or a generous cap). Without either, the budget is
            ``max_epochs`` epochs of samples and Lightning stops the run.
        budget: ``"equivalent"`` (starting-batch-equivalent samples, as ``deba.fit``; needs
            ``epochs`` or ``max_samples``), ``"samples"``, or ``"auto"`` (equivalent when DEBA owns
            the budget and the policy reads the noise scale, else samples).
        probe_throughput: time a few sizes before the first step (default: when the policy reads
            throughput and no table is given).
        history_dir: write every step to ``<history_dir>/deba_history.jsonl`` (rank ``r``: ``-rank{r}``).
        max_grad_norm: gradient clipping in steps DEBA runs (the mixin; Lightning's own clipping
            applies to the callback alone), after DEBA read the gradient.
        seed: seed of the gradient sketch.

    Example (not run here: it trains a model)::

        trainer = lightning.Trainer(max_epochs=5, callbacks=[DebaCallback(profile="auto")])
        trainer.fit(module)   # module.train_dataloader() returns deba_dataloader(dataset, 32)
    """

    def __init__(self, profile: Any = "auto", *, strategy: Any = "equal-weight", strategy_options: dict | None = None,
                 policy: Any = None, throughput: Any = None, max_micro_batch: int | None = None,
                 epochs: int | None = None, max_samples: int | None = None, budget: str = "auto",
                 probe_throughput: bool | None = None, history_dir: str | None = None,
                 max_grad_norm: float | None = None, seed: int = 0, nonfinite_abort: int | None = None) -> None:
        check_options(budget, epochs, max_samples, max_micro_batch, max_grad_norm, probe_throughput=probe_throughput,
                      seed=seed, nonfinite_abort=nonfinite_abort)
        self.options = {"profile": profile, "strategy": strategy, "strategy_options": strategy_options,
                        "policy": policy, "throughput": throughput, "probe": probe_throughput}
        self.max_micro_batch, self.epochs, self.max_samples, self.budget_kind = max_micro_batch, epochs, max_samples, budget
        self.history_dir, self.max_grad_norm, self.seed, self.nonfinite_abort = history_dir, max_grad_norm, seed, nonfinite_abort
        self.engine: StepEngine | None = None
        self.scheduler: BatchScheduler | None = None
        self.sampler = None
        self.budget: int | None = None
        self.equivalent = False
        self.history: HistoryWriter | None = None
        self._pending_state: dict[str, Any] | None = None
        self._step: dict[str, Any] = {}  # the step in flight (automatic optimization)
        self._out: StepOutcome | None = None

    # Set-up ---------------------------------------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        check_trainer(trainer, pl_module)
        guard_stepping_batches(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        unguard_stepping_batches(trainer)
        withdraw_restore(self)
        if self.history is not None:
            self.history.close()
        if self.engine is not None and self.engine.coupler is not None:
            self.engine.coupler.remove()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.sampler = self._find_sampler(trainer)
        self._build(trainer, pl_module)
        if self._pending_state is not None:
            self._restore(self._pending_state, trainer)
            self._pending_state = None
        elif self.history is not None:
            self.history.start()
        self._maybe_probe(trainer, pl_module)

    def _find_sampler(self, trainer: pl.Trainer) -> Any:
        loader = trainer.train_dataloader
        loader = getattr(loader, "loaders", loader)  # a CombinedLoader around one loader
        if isinstance(loader, (list, tuple, dict)):
            raise DebaConfigError.single("train_dataloader", type(loader).__name__, "must be one DataLoader")
        dataset = getattr(loader, "dataset", None)
        if isinstance(dataset, torch.utils.data.IterableDataset):
            raise DebaConfigError.single(
                "train_dataloader.dataset", type(dataset).__name__, "must be map-style: DEBA's sampler needs indices "
                "to give every sample once per epoch while the batch size changes",
                remedy="Use a map-style dataset with __len__ and __getitem__.")
        sampler = find_sampler(loader)
        if sampler is None:
            raise DebaConfigError.single(
                "train_dataloader", type(loader).__name__, "has no DEBA sampler, so DEBA cannot change its batch size",
                remedy="Return deba.adapters.lightning.deba_dataloader(dataset, batch_size) from train_dataloader().")
        if (sampler.num_replicas, sampler.rank) != (trainer.world_size, trainer.global_rank):
            raise DebaConfigError.single(
                "train_dataloader", f"sharded for {sampler.num_replicas} rank(s)", f"must shard for the trainer's "
                f"{trainer.world_size}", remedy="Build deba_dataloader(...) inside train_dataloader(), where the process group exists.")
        return sampler

    def _build(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """The scheduler, LR coupler, probe and step engine for this run."""
        o = self.options
        b0 = self.sampler.initial_batch_size
        profile = resolve_profile(o["profile"], module).starting_at(b0, field="the training DataLoader's batch_size")
        ctx = distributed.context(module.device) if trainer.world_size > 1 else None
        if ctx is not None:
            ctx.check_granularity(profile.granularity)
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is None or len(trainer.optimizers) > 1:
            raise DebaConfigError.single("configure_optimizers", len(trainer.optimizers), "must return one optimizer")
        self.scheduler = sched = BatchScheduler(profile, strategy=o["strategy"], strategy_options=o["strategy_options"],
                                                policy=o["policy"], throughput=o["throughput"],
                                                optimizer_family=optimizer_family(opt))
        owns = self.epochs is not None or self.max_samples is not None
        self.equivalent = self.budget_kind == "equivalent" or (self.budget_kind == "auto" and owns and sched.policy.needs_noise)
        if self.equivalent and not owns:
            raise DebaConfigError.single("budget", "equivalent", "needs DebaCallback(epochs=...) or max_samples=...: "
                                         "DEBA must own the stop to train equivalent samples")
        n = self.sampler.num_samples
        self.budget = self.max_samples if self.max_samples is not None else (
            self.epochs * n if self.epochs is not None else (trainer.max_epochs * n if trainer.max_epochs and trainer.max_epochs > 0 else None))
        sched.measure_noise = self.equivalent
        sched.plan(self.budget, equivalent=self.equivalent)
        self.engine = StepEngine(module, sched, GradientProbe(module, sketch_size=profile.sketch_size, seed=self.seed),
                                 dist=ctx, coupler=LRCoupler(opt, sched.lr_factor), sampler=self.sampler, optimizer=opt,
                                 max_micro_batch=self.max_micro_batch or profile.max_micro_batch)
        self._bind_module(trainer, module)
        if self.history_dir is not None:
            rank = trainer.global_rank
            self.history = HistoryWriter(self.history_dir, tensorboard=False,
                                         filename="deba_history.jsonl" if rank == 0 else f"deba_history-rank{rank}.jsonl")
        self.abort_after = self.nonfinite_abort or 3 * profile.nonfinite_patience

    def _bind_module(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """With the DebaModule mixin the engine runs the step: the module's loss, Lightning's backward,
        DDP's ``no_sync`` (DEBA reduces the gradient once itself)."""
        if not getattr(module, "_deba_runs_steps", False):
            scaler = getattr(trainer.precision_plugin, "scaler", None)
            if scaler is not None:
                # Lightning scales and unscales; DEBA only needs to know that an overflow is the
                # GradScaler's skip, not a non-finite training step (and per-sample hooks would see
                # scaled output gradients, so they are off).
                self.engine.precision = _LightningScaler(scaler)
                self.engine.per_sample = None
            return
        engine = self.engine
        engine.forward_loss = module.deba_loss
        engine.backward = module.manual_backward
        wrapped = trainer.strategy.model
        if engine.dist is not None and hasattr(wrapped, "no_sync"):
            engine.no_sync = wrapped.no_sync

    def _maybe_probe(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """The start-up throughput probe (goodput compares sizes training has not visited yet)."""
        wanted = self.options["probe"]
        sched, engine = self.scheduler, self.engine
        if wanted is None:
            wanted = sched.policy.needs_noise and sched.throughput.fixed is None
        if not wanted or engine.steps > 0:
            return
        loss = engine.forward_loss or _training_step_loss(module)
        dataset, world = trainer.train_dataloader.dataset, trainer.world_size
        collate = getattr(trainer.train_dataloader, "collate_fn", None) or torch.utils.data.default_collate
        gen = torch.Generator().manual_seed(self.seed + 7919)

        def make_batch(n: int) -> Any:
            idx = torch.randint(0, len(dataset), (max(1, n // world),), generator=gen).tolist()
            return move_to(collate([dataset[i] for i in idx]), module.device)

        p = sched.profile
        probe_throughput(module, loss, make_batch, startup_sizes(sched.batch_size, p.max_batch, p.granularity, world),
                         sched.throughput, cap=engine.max_micro_batch)

    # The step ------------------------------------------------------------------------------

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._out = None
        if getattr(pl_module, "_deba_runs_steps", False):
            return
        self.engine.start_step()  # the step time covers Lightning's forward, backward and optimizer step
        ctx = self.engine.measuring()
        ctx.__enter__()
        self._step = {"n": batch_len(batch), "ctx": ctx, "loss": None}

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self._step:
            self._step["loss"] = loss.detach()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        step, self._step = self._step, {}
        if not step:
            return  # the mixin's step: the engine has observed it already
        step["ctx"].__exit__(None, None, None)
        if step["loss"] is None:  # training_step returned None: Lightning skips the step, so does DEBA
            self._skipped(step["n"])
            return
        self._out = self.engine.observe(step["loss"], step["n"], epoch=self.sampler.epoch)

    def run_module_step(self, module: pl.LightningModule, batch: Any) -> torch.Tensor:
        """The DebaModule mixin's step: the engine runs forward/backward, then the optimizer steps."""
        engine = self.engine
        if engine is None:
            raise DebaConfigError.single("DebaCallback", None, "must be in Trainer(callbacks=[...]) to train a DebaModule")
        out = engine.run(batch, epoch=self.sampler.epoch)
        opt = module.optimizers()
        if out.finite:
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.max_grad_norm)
            opt.step()
        opt.zero_grad(set_to_none=True)
        self._out = out
        _step_schedules(module, "step")
        return torch.tensor(out.obs.loss)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        out, self._out = self._out, None
        if self._step:  # Lightning skipped the optimizer step (training_step returned None)
            self._step["ctx"].__exit__(None, None, None)
            self._skipped(self._step["n"])
            self._step = {}
        if out is None:
            return
        self.engine.after_optimizer_step()
        if self.history is not None:
            self.history.write(out.record(self.sampler.epoch, self.engine.coupler.last_used[0],
                                          equivalent_samples=self.engine.equivalent_samples))
        self._log(pl_module, out)
        if self.scheduler.nonfinite_consecutive >= self.abort_after:
            raise NonFiniteTraining(f"step {self.engine.steps}: {self.scheduler.nonfinite_consecutive} consecutive "
                                    "non-finite losses or gradients; check the learning rate and the data")
        if self.budget_done():
            trainer.should_stop = True

    def _skipped(self, n_local: int) -> None:
        """A batch Lightning trained on without a step: its samples are used, nothing is observed."""
        world = 1 if self.engine.dist is None else self.engine.dist.world
        self.sampler.mark_consumed(n_local * world)
        self.scheduler.hold("training_step returned None: Lightning skipped the step")

    def _log(self, module: pl.LightningModule, out: StepOutcome) -> None:
        d = out.decision
        n = out.samples
        module.log("deba/batch_size", float(d.batch_size), on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        module.log("deba/lr_factor", float(out.lr_factor), on_step=True, on_epoch=False, batch_size=n)
        if d.score is not None:
            module.log("deba/score", float(d.score), on_step=True, on_epoch=False, batch_size=n)
        if d.noise_scale is not None or d.noise_scale_low is not None:
            module.log("deba/noise_scale", float(d.noise_scale if d.noise_scale is not None else d.noise_scale_low),
                       on_step=True, on_epoch=False, batch_size=n)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.engine is not None:
            self.engine.end_epoch()
        if getattr(pl_module, "_deba_runs_steps", False):
            _step_schedules(pl_module, "epoch")

    # Budget ------------------------------------------------------------------------------

    @property
    def progress(self) -> float:
        """What the budget counts: equivalent samples or samples, so far."""
        if self.engine is None:
            return 0.0
        return self.engine.equivalent_samples if self.equivalent else float(self.engine.samples)

    def budget_done(self) -> bool:
        """Whether DEBA's budget is spent (``None`` budget: never; Lightning's max_epochs stops the run)."""
        if self.budget is None or (self.epochs is None and self.max_samples is None):
            return False
        if self.equivalent and self.engine.samples >= SAMPLE_CAP * self.budget:
            return True
        return self.progress >= self.budget

    def done_fraction(self) -> float:
        """Share of the budget done, in [0, 1] (0 before training starts or with no budget)."""
        return 0.0 if not self.budget else min(1.0, self.progress / self.budget)

    def sample_clock(self, optimizer: torch.optim.Optimizer, lr_lambda: Callable[[float], float]
                     ) -> torch.optim.lr_scheduler.LambdaLR:
        """An LR schedule on the share of the budget done: ``lr = base * lr_lambda(done)``, ``done`` in [0, 1].

        Return it from ``configure_optimizers`` with ``"interval": "step"`` (the default): it ends
        when the budget ends, whatever the batch sizes were. ``lambda d: 0.5 * (1 + math.cos(math.pi * d))``
        is a cosine.

        Example:
            >>> import torch
            >>> cb = DebaCallback()
            >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
            >>> cb.sample_clock(opt, lambda done: 1.0 - done).get_last_lr()
            [1.0]
        """
        if not callable(lr_lambda):
            raise DebaConfigError.single("lr_lambda", lr_lambda, "must be callable as lr_lambda(share_done)")
        callback = self
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: float(lr_lambda(callback.done_fraction())))

    # Checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """DEBA's state (JSON-able): the ``deba_state.json`` document and the RNG, inside Lightning's checkpoint."""
        if self.engine is None:
            return dict(self._pending_state or {})
        world = 1 if self.engine.dist is None else self.engine.dist.world
        rng = capture_rng() if self.engine.dist is None else self.engine.dist.gather_objects(capture_rng())
        return build_state(profile=self.scheduler.profile, scheduler=self.scheduler, engine=self.engine,
                           sampler=self.sampler, history_records=0 if self.history is None else self.history.count,
                           world_size=world, rng=rng)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = dict(state_dict) if state_dict else None
        # The loader's first iter() comes before on_train_start: the sampler state goes to it there.
        offer_restore(self, None if not state_dict else state_dict.get("sampler"))

    def _restore(self, state: dict[str, Any], trainer: pl.Trainer) -> None:
        loader = getattr(trainer.train_dataloader, "loaders", trainer.train_dataloader)
        wrapper = getattr(loader, "batch_sampler", None)
        applied = state.get("sampler") is not None and getattr(wrapper, "restored", None) is state.get("sampler")
        restore_state(state, profile=self.scheduler.profile, scheduler=self.scheduler, engine=self.engine,
                      sampler=None if applied else self.sampler, field="DebaCallback profile")
        if applied:  # the step engine set the fresh run's size when it was built; the checkpoint's counts
            self.sampler.batch_size = state["sampler"]["batch_size"]
        elif state.get("sampler") is not None:
            # The loader was iterated before its state came back (not deba_dataloader's sampler):
            # start its iterator again so no batch drawn from the fresh state is trained.
            fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
            if fetcher is not None and getattr(fetcher, "combined_loader", None) is not None:
                iter(fetcher)
        rng = state.get("rng")
        if isinstance(rng, list):
            rank = 0 if self.engine.dist is None else self.engine.dist.rank
            rng = rng[rank] if len(rng) > rank else rng[0]
        if rng:
            restore_rng(rng)
        self.engine.lr_factor = self.scheduler.last_decision.lr_factor if self.scheduler.last_decision else self.engine.lr_factor
        if self.engine.coupler is not None:
            self.engine.coupler.factor = self.engine.lr_factor
        if self.history is not None:
            self.history.start(resumed_records=int(state.get("history_records", 0)))


class _LightningScaler:
    """The engine's view of Lightning's GradScaler: gradients arrive unscaled; overflow means a skip."""

    enabled = False

    def __init__(self, scaler: Any) -> None:
        self.scaler = scaler

    def scale(self) -> float:
        return 1.0  # Lightning unscaled before on_before_optimizer_step

    def unscale(self, optimizer: Any) -> None:
        """Nothing: Lightning's precision plugin unscales."""

    def state_dict(self) -> dict[str, Any]:
        return {}  # the scaler's state is in Lightning's checkpoint

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore here (Lightning restores its scaler)."""


def _training_step_loss(module: pl.LightningModule) -> Callable[[Any], torch.Tensor]:
    """``forward_loss`` for the throughput probe from the module's ``training_step`` (its ``self.log`` muted)."""

    def forward_loss(batch: Any) -> torch.Tensor:
        log = module.log
        module.log = lambda *a, **k: None  # type: ignore[method-assign]
        try:
            out = module.training_step(batch, 0)
        finally:
            module.log = log  # type: ignore[method-assign]
        loss = out["loss"] if isinstance(out, dict) else out
        if not isinstance(loss, torch.Tensor):
            raise DebaConfigError.single("training_step", type(out).__name__, "must return the loss (or a dict with 'loss')")
        return loss

    return forward_loss


def _step_schedules(module: pl.LightningModule, interval: str) -> None:
    """Manual optimization steps no schedule by itself: step those of ``interval`` through the
    module's ``lr_scheduler_step`` (so an override keeps owning the LR)."""
    trainer = module.trainer
    for cfg in trainer.lr_scheduler_configs:
        if cfg.interval != interval:
            continue
        count = trainer.global_step if interval == "step" else trainer.current_epoch + 1
        if count % max(1, cfg.frequency) == 0:
            if cfg.monitor is not None:
                warnings.warn("DEBA: a monitored LR schedule is not stepped under the DebaModule mixin", RuntimeWarning)
                continue
            module.lr_scheduler_step(cfg.scheduler, None)
