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
from deba.adapters.lightning.data import find_sampler  # noqa: E402
from deba.control.scheduler import BatchScheduler  # noqa: E402
from deba.errors import DebaConfigError  # noqa: E402
from deba.training import distributed  # noqa: E402
from deba.training.batching import batch_len, move_to  # noqa: E402
from deba.training.budget import SAMPLE_CAP  # noqa: E402
from deba.training.checkpoint import capture_rng, restore_rng  # noqa: E402
from deba.training.options import RunOptions, merge_options  # noqa: E402
from deba.training.run import DebaRun, probe_batch_maker  # noqa: E402
from deba.training.sampler import AdaptiveBatchSampler  # noqa: E402
from deba.training.step import StepEngine, StepOutcome  # noqa: E402

__all__ = ["DebaCallback", "SAMPLE_CAP"]

class DebaCallback(pl.Callback):
    """DEBA for ``lightning.Trainer``: adaptive global batch, LR factor, logs, checkpoints, DDP.

    Each hook translates Lightning's call into one of the shared run's
    (:class:`deba.training.run.DebaRun`), in the order Lightning calls them.

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
        seed: seed of the gradient sketch and the start-up probe's batches.
        nonfinite_abort: non-finite steps in a row that stop training (``deba.NonFiniteTraining``).
        options: DEBA's settings as one :class:`deba.RunOptions` instead of ``profile``,
            ``strategy``, ``strategy_options``, ``policy``, ``throughput``, ``max_micro_batch``,
            ``budget``, ``probe_throughput`` and ``nonfinite_abort``.

    Example (not run here: it trains a model)::

        trainer = lightning.Trainer(max_epochs=5, callbacks=[DebaCallback(profile="auto")])
        trainer.fit(module)   # module.train_dataloader() returns deba_dataloader(dataset, 32)
    """

    def __init__(self, profile: Any = "auto", *, strategy: Any = "equal-weight", strategy_options: dict | None = None,
                 policy: Any = None, throughput: Any = None, max_micro_batch: int | None = None,
                 epochs: int | None = None, max_samples: int | None = None, budget: str = "auto",
                 probe_throughput: bool | None = None, history_dir: str | None = None,
                 max_grad_norm: float | None = None, seed: int = 0, nonfinite_abort: int | None = None,
                 options: RunOptions | None = None) -> None:
        check_options(epochs, max_samples, max_grad_norm, seed=seed)
        self.options = merge_options(options, {
            "profile": profile, "strategy": strategy, "strategy_options": strategy_options, "policy": policy,
            "throughput": throughput, "max_micro_batch": max_micro_batch, "budget": budget,
            "probe_throughput": probe_throughput, "nonfinite_abort": nonfinite_abort})
        self.epochs, self.max_samples = epochs, max_samples
        self.history_dir, self.max_grad_norm, self.seed = history_dir, max_grad_norm, seed
        self.run: DebaRun | None = None
        self.sampler: AdaptiveBatchSampler | None = None
        self._loaded: dict[str, Any] | None = None  # a checkpoint's DEBA state, until training starts
        self._step: dict[str, Any] = {}  # the step in flight (automatic optimization)
        self._out: StepOutcome | None = None

    @property
    def engine(self) -> StepEngine | None:
        """The run's step engine (``None`` before training starts)."""
        return None if self.run is None else self.run.engine

    @property
    def scheduler(self) -> BatchScheduler | None:
        """The run's batch scheduler (``None`` before training starts)."""
        return None if self.run is None else self.run.scheduler

    # Hooks, in the order Lightning calls them --------------------------------------------------

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        check_trainer(trainer, pl_module)
        guard_stepping_batches(trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Before the loader exists: the sampler's position comes back through the loader's own
        # state (DebaDataLoader), the rest when training starts.
        self._loaded = dict(state_dict) if state_dict else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = _training_loader(trainer)
        self.sampler = _find_sampler(trainer, loader)
        self.run = self._build(trainer, pl_module)
        if self._loaded is not None:
            self._resume(trainer, self._loaded, loader)
            self._loaded = None
        elif self.run.history is not None:
            self.run.history.start()
        if self.run.wants_probe():
            self._probe(trainer, pl_module)

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
        # Inside optimizer.step(closure): the LR factor set here applies to this step (LRCoupler).
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
        self.run.record(out, self.sampler.epoch)
        self._log(pl_module, out)
        self.run.check_nonfinite()
        if self.run.budget_spent():
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is not None:
            self.run.end_epoch_if_used()
        if getattr(pl_module, "_deba_runs_steps", False):
            _step_schedules(pl_module, "epoch")

    def state_dict(self) -> dict[str, Any]:
        """DEBA's state (JSON-able): the ``deba_state.json`` document and the RNG, inside Lightning's checkpoint."""
        if self.engine is None:
            return dict(self._loaded or {})
        dist = self.engine.dist
        rng = capture_rng() if dist is None else dist.gather_objects(capture_rng())
        return self.run.state_document(world=1 if dist is None else dist.world, rng=rng)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        unguard_stepping_batches(trainer)
        if self.run is not None:
            self.run.detach()

    # Building ----------------------------------------------------------------------------------

    def _build(self, trainer: pl.Trainer, module: pl.LightningModule) -> DebaRun:
        """The run: profile at the loader's batch, budget, history, step engine."""
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is None or len(trainer.optimizers) > 1:
            raise DebaConfigError.single("configure_optimizers", len(trainer.optimizers), "must return one optimizer")
        ctx = distributed.context(module.device) if trainer.world_size > 1 else None
        run = DebaRun(self.options, module, initial_batch=self.sampler.initial_batch_size, optimizer=opt,
                      initial_field="the training DataLoader's batch_size", world=trainer.world_size)
        if ctx is not None:
            ctx.check_granularity(run.profile.granularity)
        n = self.sampler.num_samples
        owned = self.epochs is not None or self.max_samples is not None
        lightning_epochs = trainer.max_epochs * n if trainer.max_epochs and trainer.max_epochs > 0 else None
        run.plan(self.max_samples if self.max_samples is not None else
                 (self.epochs * n if self.epochs is not None else lightning_epochs), owned=owned)
        if self.history_dir is not None:
            run.open_history(self.history_dir, filename="deba_history.jsonl", rank=trainer.global_rank)
        run.attach(module, opt, sampler=self.sampler, dist=ctx, seed=self.seed, **_step_parts(trainer, module, ctx))
        return run

    def _resume(self, trainer: pl.Trainer, state: dict[str, Any], loader: Any) -> None:
        """Continue the run of a checkpoint. A ``DebaDataLoader`` saved mid-epoch has its position
        back already (Lightning restores a stateful loader when it restarts an epoch); after a
        checkpoint at an epoch's end Lightning restores no loader state, so the sampler takes DEBA's
        copy and the training iterator starts again (no batch drawn from the fresh state trains)."""
        restored = getattr(loader, "restored", None) is not None
        if restored:
            loader.restored = None  # a cached loader must not look restored at the next fit
        self.run.restore(state, field="DebaCallback profile", sampler=not restored)
        if not restored and state.get("sampler") is not None:
            restart_training_iterator(trainer)
        rng = state.get("rng")
        if isinstance(rng, list):
            rank = 0 if self.engine.dist is None else self.engine.dist.rank
            rng = rng[rank] if len(rng) > rank else rng[0]
        if rng:
            restore_rng(rng)

    def _probe(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """The start-up throughput probe (goodput compares sizes training has not visited yet)."""
        loader = _training_loader(trainer)
        dataset, world = loader.dataset, trainer.world_size
        collate = getattr(loader, "collate_fn", None) or torch.utils.data.default_collate
        make_batch = probe_batch_maker(len(dataset), lambda idx: move_to(collate([dataset[i] for i in idx]), module.device),
                                       self.seed, world)
        self.run.probe_throughput(make_batch, world=world, forward_loss=self.engine.forward_loss or _training_step_loss(module))

    # Per step ----------------------------------------------------------------------------------

    def _skipped(self, n_local: int) -> None:
        """A batch Lightning trained on without a step: its samples are used, nothing is observed."""
        world = 1 if self.engine.dist is None else self.engine.dist.world
        self.sampler.mark_consumed(n_local * world)
        self.scheduler.hold("training_step returned None: Lightning skipped the step")

    def _log(self, module: pl.LightningModule, out: StepOutcome) -> None:
        n = out.samples
        for name, value in self.run.log_values(out.decision).items():
            module.log(f"deba/{name}", value, on_step=True, on_epoch=False, prog_bar=name == "batch_size", batch_size=n)

    # Budget ------------------------------------------------------------------------------------

    @property
    def budget(self) -> int | None:
        """DEBA's budget in samples (``None`` before training starts or with no known length)."""
        return None if self.run is None else self.run.budget.total

    @property
    def equivalent(self) -> bool:
        """Whether the budget counts starting-batch-equivalent samples."""
        return self.run is not None and self.run.budget.equivalent

    @property
    def progress(self) -> float:
        """What the budget counts: equivalent samples or samples, so far."""
        return 0.0 if self.run is None else self.run.progress

    def budget_done(self) -> bool:
        """Whether DEBA's budget is spent (with no budget of its own: never; Lightning's max_epochs stops the run)."""
        return self.run is not None and self.run.budget_spent()

    def done_fraction(self) -> float:
        """Share of the budget done, in [0, 1] (0 before training starts or with no budget)."""
        return 0.0 if self.run is None else self.run.share_done()

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



def restart_training_iterator(trainer: pl.Trainer) -> None:
    """Start the training loader's iterator again (Lightning's fit loop drew its first batch in
    ``setup_data``, before any callback hook of a resumed fit could restore the sampler).

    The one place DEBA touches a private member of Lightning (``fit_loop._data_fetcher``);
    ``tests/adapters/test_lightning.py`` resumes from an epoch-end checkpoint through it, so a
    change in Lightning fails that test.
    """
    fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
    if fetcher is None or getattr(fetcher, "combined_loader", None) is None:
        raise DebaConfigError.single(
            "lightning", pl.__version__, "has no training data fetcher where DEBA expects one (fit_loop._data_fetcher)",
            remedy="Resume from a mid-epoch checkpoint (ModelCheckpoint(every_n_train_steps=...)), or use a lightning "
                   "version DEBA supports (deba.adapters.lightning.SUPPORTED_LIGHTNING).")
    iter(fetcher)


def _training_loader(trainer: pl.Trainer) -> Any:
    loader = trainer.train_dataloader
    return getattr(loader, "loaders", loader)  # a CombinedLoader around one loader


def _find_sampler(trainer: pl.Trainer, loader: Any) -> AdaptiveBatchSampler:
    """DEBA's sampler in the training loader, checked to suit the run."""
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


def _step_parts(trainer: pl.Trainer, module: pl.LightningModule, ctx: Any) -> dict[str, Any]:
    """How the engine sees the step. With the DebaModule mixin it runs the step: the module's loss,
    Lightning's backward, DDP's ``no_sync`` (DEBA reduces the gradient once itself). With the
    callback alone Lightning runs it; under an fp16 GradScaler Lightning scales and unscales, and
    DEBA only needs to know that an overflow is the scaler's skip (per-sample hooks would see
    scaled output gradients, so they are off)."""
    if getattr(module, "_deba_runs_steps", False):
        wrapped = trainer.strategy.model
        no_sync = wrapped.no_sync if ctx is not None and hasattr(wrapped, "no_sync") else None
        return {"forward_loss": module.deba_loss, "backward": module.manual_backward, "no_sync": no_sync}
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    if scaler is None:
        return {}
    return {"precision": _LightningScaler(scaler), "per_sample_norms": False}


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
