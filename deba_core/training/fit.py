"""``deba.fit``: the training loop with DEBA wired in.

``fit`` reads top-down as a list of steps: validate the configuration (:class:`FitConfig`), build
the run (profile, scheduler, probe, sampler, loader, step engine, history, checkpointer), resume
if asked, then loop over epochs; each optimizer step is one call of the shared step engine
(``deba.training.step``) followed by the optimizer step, the LR schedule and the record.
Checkpoints are written atomically, and ``resume=True`` continues exactly.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError, NonFiniteTraining
from deba.profiles.schema import ArchitectureProfile
from deba.training import distributed
from deba.training.batching import batch_len, move_to
from deba.training.budget import SAMPLE_CAP
from deba.training.callbacks import Callback, CallbackList
from deba.training.checkpoint import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from deba.training.config import FitConfig, as_dataset
from deba.training.history import read_history
from deba.training.options import RunOptions
from deba.training.precision import Precision
from deba.training.run import DebaRun, probe_batch_maker, run_profile
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.step import loss_of
from deba.training.tensor_batches import fetch_batch, loader_parts
from deba.training.throughput_probe import candidate_sizes

__all__ = ["FitResult", "NonFiniteTraining", "evaluate", "fit"]

@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: every record of the run, step (``kind == "step"``) and epoch (``kind == "epoch"``);
            read from ``log_dir/history.jsonl`` when there is one, else the last
            ``history_in_memory`` records kept in memory.
        final: final evaluation metrics (``eval_loss``, ``eval_accuracy``) when there is eval data.
        steps, samples, epochs: totals.
        wall_time: seconds of training (this process; a resumed run adds to the stored total).
        profile: the profile used.
        batch_sizes: distinct batch sizes used, in order of first use.
        log_dir: where the history was written, if anywhere.
        stopped_by: ``"epochs"``, ``"max_samples"`` or ``"equivalent_budget"``.
        tail: the records kept in memory (the newest ones).
        equivalent_samples: starting-batch-equivalent samples trained (``sum E(B_i) B_i``, credited
            with the LR factor actually applied); ``equivalent_epochs`` the same in epochs.
        budget: ``"equivalent"`` or ``"samples"``: which count ended the run.
        throughput: samples/s by batch size as the scheduler saw it at the end (what it decided
            from): measured where ``measured_sizes`` says, predicted by its step-time model elsewhere.
        noise_scale, noise_scale_low: the last noise-scale estimate and its lower bound (``None``
            when there was none).
        probe_seconds: seconds the start-up throughput probe took (0.0 when none ran). They are
            part of ``wall_time`` and of every record's ``wall_time`` and ``train_time``: the probe
            is a cost of adapting that a fixed batch does not pay.
        probe_sizes: the batch sizes the probe timed, each ``probe_passes`` times (the first pass
            of each a warm-up); empty when none ran.
        state: the run's ``deba_state.json`` document at the end (JSON-able; what a checkpoint
            written then would hold).
    """

    final: dict[str, float]
    steps: int
    samples: int
    epochs: int
    wall_time: float
    profile: ArchitectureProfile
    batch_sizes: list[int] = field(default_factory=list)
    log_dir: Path | None = None
    stopped_by: str = ""
    tail: list[dict[str, Any]] = field(default_factory=list)
    history_file: Path | None = None
    equivalent_samples: float = 0.0
    budget: str = "samples"
    dataset_size: int = 0
    throughput: dict[int, float] = field(default_factory=dict)
    measured_sizes: list[int] = field(default_factory=list)
    noise_scale: float | None = None
    noise_scale_low: float | None = None
    probe_seconds: float = 0.0
    probe_sizes: list[int] = field(default_factory=list)
    probe_passes: int = 0
    state: dict[str, Any] | None = None

    @property
    def epochs_of_samples(self) -> float:
        """Samples trained on, in epochs of the dataset."""
        return self.samples / self.dataset_size if self.dataset_size else 0.0

    @property
    def equivalent_epochs(self) -> float:
        """Starting-batch-equivalent samples, in epochs of the dataset."""
        return self.equivalent_samples / self.dataset_size if self.dataset_size else 0.0

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every record (from the history file when there is one; else the in-memory tail)."""
        if self.history_file is not None and self.history_file.exists():
            return read_history(self.history_file)
        return list(self.tail)

    def step_records(self) -> list[dict[str, Any]]:
        """Only the per-step records."""
        return [r for r in self.history if r.get("kind") == "step"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> dict[str, float]:
    """Mean loss and (for class logits) accuracy of ``model`` on ``data``.

    Example:
        >>> import torch, deba
        >>> m = torch.nn.Linear(2, 2)
        >>> sorted(deba.evaluate(m, (torch.randn(8, 2), torch.zeros(8, dtype=torch.long)),
        ...                      torch.nn.functional.cross_entropy))
        ['eval_accuracy', 'eval_loss']
    """
    dataset, collate = loader_parts(as_dataset(data, "eval_data"), None)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    was_training = model.training
    model.eval()
    total_loss, correct, count, classified = 0.0, 0, 0, True
    try:
        for batch in loader:
            inputs, targets = move_to(batch, torch.device(device))
            out = model(inputs)
            n = batch_len(targets)
            total_loss += float(loss_fn(out, targets)) * n
            count += n
            if isinstance(out, torch.Tensor) and out.dim() == 2 and targets.dim() == 1 and not targets.is_floating_point():
                correct += int((out.argmax(1) == targets).sum())
            else:
                classified = False
    finally:
        model.train(was_training)
    result = {"eval_loss": total_loss / max(count, 1)}
    if classified:
        result["eval_accuracy"] = correct / max(count, 1)
    return result


def _progress(total: int | None, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="sample", dynamic_ncols=True, leave=False)


class _FitRun:
    """One ``deba.fit`` run: ``fit``'s loop around the shared :class:`~deba.training.run.DebaRun`."""

    def __init__(self, cfg: FitConfig, dataset: torch.utils.data.Dataset) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.device = torch.device(cfg.device) if cfg.device is not None else next(cfg.model.parameters()).device
        cfg.model.to(self.device)
        self.ctx = distributed.context(self.device)
        self.rank = 0 if self.ctx is None else self.ctx.rank
        world = 1 if self.ctx is None else self.ctx.world
        opts = cfg.run_options()
        # After the context: a fixed batch's grid follows the world size.
        profile = run_profile(opts.profile, cfg.model, initial_batch=cfg.batch_size, fixed_batch=cfg.fixed_batch,
                              world=world)
        if cfg.reseed:  # after detection (its forward pass may draw random numbers)
            torch.manual_seed(cfg.seed)
        if self.ctx is not None:
            self.ctx.check_granularity(profile.granularity)
            distributed.broadcast_module(cfg.model)
        self.run = DebaRun(opts.replace(profile=profile), cfg.model, optimizer=cfg.optimizer,
                           fixed_batch=cfg.fixed_batch, world=world)
        self.profile, self.scheduler = self.run.profile, self.run.scheduler
        self.run.plan(self._budget())
        self.sampler = self._sampler()
        self.loader = self._loader()
        self.precision = Precision(cfg.amp, self.device)
        self.engine = self.run.attach(cfg.model, cfg.optimizer, sampler=self.sampler,
                                      forward_loss=loss_of(cfg.model, cfg.loss_fn), dist=self.ctx,
                                      precision=self.precision, seed=cfg.seed)
        self.history = self.run.open_history(cfg.log_dir, filename="history.jsonl", rank=self.rank,
                                             tensorboard=cfg.tensorboard, keep=cfg.history_in_memory)
        self.clock = self.run.clock
        self.callbacks = CallbackList(cfg.callbacks)
        self.last_eval: dict[str, float] = {}
        self.started = 0.0
        self.bar = None

    @property
    def equivalent(self) -> bool:
        return self.run.budget.equivalent

    # Building -----------------------------------------------------------------------------------

    def _sampler(self) -> AdaptiveBatchSampler:
        # Epochs are always finite here; without `epochs` the run goes epoch after epoch until max_samples.
        return AdaptiveBatchSampler(self.dataset, self.scheduler.batch_size, shuffle=True, seed=self.cfg.seed,
                                    num_replicas=1 if self.ctx is None else self.ctx.world, rank=self.rank,
                                    min_last_batch=self.profile.granularity)

    def _loader(self) -> torch.utils.data.DataLoader:
        dataset, collate = loader_parts(self.dataset, self.cfg.collate_fn)  # tensors: one index per batch
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=self.cfg.num_workers, collate_fn=collate,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            # Each iter(loader) draws a worker base seed; from its own generator it never moves the
            # global RNG, so a resumed run (which calls iter() mid-epoch) keeps the same dropout masks.
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    # Checkpoints --------------------------------------------------------------------------------

    def resume_or_start(self) -> None:
        """Continue from the latest checkpoint when ``resume=True`` (and there is one); else start afresh."""
        cfg = self.cfg
        folder = latest_checkpoint(cfg.checkpoint_dir) if cfg.resume else None
        if cfg.resume and folder is None:
            warnings.warn(f"deba.fit: no checkpoint in {cfg.checkpoint_dir}; starting from the beginning", UserWarning,
                          stacklevel=3)
        if folder is None:
            self.history.start()
            return
        weights, state = load_checkpoint(folder, map_location=self.device)
        self.run.restore(state, field="checkpoint.profile")
        self._load_weights(weights, folder)
        rng = state["rng"]
        if isinstance(rng, list):  # one state per rank of the run that saved it
            rng = rng[self.rank] if self.ctx is not None and len(rng) == self.ctx.world else rng[0]
        restore_rng(rng)

    def _load_weights(self, weights: dict[str, Any], folder: Path) -> None:
        try:
            self.cfg.model.load_state_dict(weights["model"])
            self.cfg.optimizer.load_state_dict(weights["optimizer"])
            if self.cfg.lr_scheduler is not None and weights.get("lr_scheduler") is not None:
                self.cfg.lr_scheduler.load_state_dict(weights["lr_scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise DebaConfigError.single("checkpoint", str(folder), f"does not fit this model/optimizer ({exc})") from exc

    def checkpoint(self) -> None:
        """Write a checkpoint (rank 0 writes; every rank contributes its RNG state)."""
        cfg = self.cfg
        if cfg.checkpoint_dir is None:
            return
        rng: Any = capture_rng() if self.ctx is None else self.ctx.gather_objects(capture_rng())
        if self.rank != 0:
            self.ctx.barrier()  # wait until rank 0 has written it
            return
        weights = {"model": cfg.model.state_dict(), "optimizer": cfg.optimizer.state_dict(),
                   "lr_scheduler": None if cfg.lr_scheduler is None else cfg.lr_scheduler.state_dict()}
        state = self.run.state_document(world=1 if self.ctx is None else self.ctx.world, rng=rng)
        save_checkpoint(cfg.checkpoint_dir, self.engine.steps, weights, state)
        if self.ctx is not None:
            self.ctx.barrier()

    # The loop -----------------------------------------------------------------------------------

    def probe_throughput(self) -> None:
        """Time a few candidate sizes before training (goodput needs ``T(B)`` beyond the start)."""
        if not self.run.wants_probe():
            return
        cfg = self.cfg
        world = 1 if self.ctx is None else self.ctx.world

        def assemble(idx: list[int]) -> Any:  # as the loader assembles it
            return move_to(fetch_batch(self.dataset, idx, cfg.collate_fn), self.device)

        self.run.probe_throughput(probe_batch_maker(len(self.dataset), assemble, cfg.seed, world), world=world)

    def train(self) -> FitResult:
        """Epochs until the budget is spent; returns the result."""
        total = self._budget()
        self.bar = _progress(total, self.cfg.progress and self.rank == 0)
        if self.bar is not None:
            self.bar.update(min(self.engine.samples, total or 0))
        self.callbacks.on_train_start({"step": self.engine.steps, "samples": self.engine.samples, **self.clock})
        self.started = time.perf_counter() - self.clock["wall"]
        self.cfg.model.train()
        try:
            stopped_by = self._epochs()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.run.detach()
        return self._result(stopped_by)

    def _budget(self) -> int | None:
        cfg = self.cfg
        total = cfg.epochs * len(self.dataset) if cfg.epochs is not None else cfg.max_samples
        return min(total, cfg.max_samples) if cfg.max_samples is not None and total is not None else total

    def progress(self) -> float:
        """What the budget counts: equivalent samples, or samples (``budget="samples"``)."""
        return self.run.progress

    def _epochs(self) -> str:
        while True:
            if self.sampler.position >= self.sampler.num_samples:
                self._close_epoch()  # every sample of this epoch was used: close it before anything else
                continue
            if not self.equivalent and self.cfg.epochs is not None and self.sampler.epoch >= self.cfg.epochs:
                return "epochs"
            if self.run.budget_spent():
                return self._why_stopped()
            for batch in self.loader:
                self._train_step(batch)
                if self.run.budget_spent():
                    break

    def _why_stopped(self) -> str:
        reason = self.run.budget.stop_reason(self.engine.samples, self.engine.equivalent_samples)
        if reason == "sample_cap":
            warnings.warn(f"deba.fit: stopped at {SAMPLE_CAP}x the samples of the budget with "
                          f"{self.progress():.0f} of {self._budget()} equivalent samples done (the LR factor "
                          "applied makes little progress per sample: check lr_scaling)", RuntimeWarning, stacklevel=4)
        return reason

    def _train_step(self, batch: Any) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        out = self.engine.run(move_to(batch, self.device), epoch=self.sampler.epoch)
        if cfg.max_grad_norm is not None and out.finite:
            # After DEBA read the gradient (unscaled, unclipped): clipping shapes the update only.
            nn.utils.clip_grad_norm_(cfg.model.parameters(), cfg.max_grad_norm)
        if self.precision.scaler is not None:
            self.precision.step(cfg.optimizer)  # the GradScaler skips overflowed steps itself
        elif out.finite:
            cfg.optimizer.step()
        self.engine.after_optimizer_step()
        self._step_lr_schedule()
        now = time.perf_counter()
        self.clock["wall"] = now - self.started
        rec = self.run.record(out, self.sampler.epoch, wall_time=self.clock["wall"],
                              train_time=self.clock["wall"] - self.clock["eval_time"],
                              samples_per_s=out.samples / max(now - t0, 1e-9))
        self.callbacks.on_step_end(rec, out.decision)
        if self.bar is not None:
            score = "-" if out.decision.score is None else f"{out.decision.score:.2f}"
            self.bar.update(min(self.progress(), self.bar.total or self.progress()) - self.bar.n)
            self.bar.set_postfix(epoch=self.sampler.epoch, bs=out.samples, score=score, loss=f"{out.obs.loss:.3f}",
                                 sps=f"{rec['samples_per_s']:.0f}", refresh=False)
        self.run.check_nonfinite()
        if cfg.checkpoint_every and self.engine.steps % cfg.checkpoint_every == 0:
            self.checkpoint()

    def _step_lr_schedule(self) -> None:
        """Step the user's LR schedule: per optimizer step, or once per ``B0`` samples of the budget clock."""
        sched = self.cfg.lr_scheduler
        if sched is None:
            return
        if self.cfg.lr_scheduler_interval == "step":
            sched.step()
        elif self.cfg.lr_scheduler_interval == "samples":
            # The schedule was sized in steps of the starting batch: it ends when the budget ends.
            due = int(self.progress() // self.scheduler.initial_batch)
            while self.clock["lr_steps"] < due:
                sched.step()
                self.clock["lr_steps"] += 1

    def _close_epoch(self) -> None:
        cfg = self.cfg
        done_epoch = self.sampler.epoch
        decision = self.engine.end_epoch()
        if cfg.lr_scheduler is not None and cfg.lr_scheduler_interval == "epoch":
            cfg.lr_scheduler.step()
        self.clock["epoch"] = done_epoch + 1
        t_eval = time.perf_counter()
        self.last_eval = evaluate(cfg.model, cfg.eval_data, cfg.loss_fn, device=self.device) if cfg.eval_data is not None else {}
        self.clock["eval_time"] += time.perf_counter() - t_eval
        wall = time.perf_counter() - self.started
        rec = {"kind": "epoch", "epoch": done_epoch, "step": self.engine.steps, "samples": self.engine.samples,
               "equivalent_samples": self.engine.equivalent_samples,
               "equivalent_epochs": self.engine.equivalent_samples / len(self.dataset),
               "wall_time": wall, "train_time": wall - self.clock["eval_time"], "deba_time": self.engine.deba_seconds,
               "batch_size": self.scheduler.batch_size, "decision": decision.reason, "changed": decision.changed,
               **self.last_eval}
        self.history.write(rec)
        self.callbacks.on_epoch_end(rec, decision)
        self.sampler.set_epoch(done_epoch + 1)
        self.checkpoint()

    def _throughput_seen(self, visited: list[int]) -> dict[str, Any]:
        """The scheduler's throughput at the sizes it visited and the doublings it could grow to."""
        p, tm = self.profile, self.scheduler.throughput
        sizes = sorted(set(visited) | set(candidate_sizes(self.scheduler.initial_batch, p.max_batch, p.granularity, 6)))
        table = {b: round(t, 1) for b in sizes if (t := tm.samples_per_second(b)) is not None}
        return {"throughput": table, "measured_sizes": [b for b in table if tm.is_measured(b)]}

    def _result(self, stopped_by: str) -> FitResult:
        cfg = self.cfg
        if cfg.eval_data is not None and not self.last_eval:
            self.last_eval = evaluate(cfg.model, cfg.eval_data, cfg.loss_fn, device=self.device)
        records = self.history.all_records()
        sizes: list[int] = []
        for r in records:
            if r.get("kind") == "step" and r["batch_size"] not in sizes:
                sizes.append(r["batch_size"])
        result = FitResult(
            final=self.last_eval, steps=self.engine.steps, samples=self.engine.samples, epochs=self.clock["epoch"],
            wall_time=time.perf_counter() - self.started, profile=self.profile, batch_sizes=sizes,
            log_dir=Path(cfg.log_dir) if cfg.log_dir is not None else None, stopped_by=stopped_by,
            tail=list(self.history.records), history_file=self.history.path,
            equivalent_samples=self.engine.equivalent_samples, budget="equivalent" if self.equivalent else "samples",
            dataset_size=len(self.dataset), noise_scale=self.scheduler.noise_scale,
            noise_scale_low=self.scheduler.noise.noise_scale_low, **self._throughput_seen(sizes),
            probe_seconds=float(self.clock["probe_seconds"]), probe_sizes=list(self.clock["probe_sizes"]),
            probe_passes=int(self.clock["probe_passes"]),
            state=self.run.state_document(world=1 if self.ctx is None else self.ctx.world),
        )
        if cfg.log_dir is not None and self.rank == 0:
            Path(cfg.log_dir).mkdir(parents=True, exist_ok=True)
            self.profile.to_file(Path(cfg.log_dir) / "profile.yaml")
        self.callbacks.on_train_end(result)
        return result


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    profile: ArchitectureProfile | str = "auto",
    strategy: ScoringStrategy | str = "equal-weight",
    batch_size: int | None = None,
    epochs: int | None = None,
    max_samples: int | None = None,
    eval_data: Any = None,
    device: str | torch.device | None = None,
    log_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None, resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int = 0, reseed: bool = True,
    lr_scheduler: Any = None, lr_scheduler_interval: str = "step",
    max_micro_batch: int | None = None,
    num_workers: int = 0, collate_fn: Callable | None = None,
    nonfinite_abort: int | None = None,
    fixed_batch: int | None = None,
    strategy_options: dict[str, Any] | None = None,
    tensorboard: bool = True,
    history_in_memory: int = 10_000,
    policy: Any = None, throughput: Any = None, budget: str = "auto",
    amp: bool | str = False, max_grad_norm: float | None = None, probe_throughput: bool | None = None,
    options: RunOptions | None = None,
) -> FitResult:
    """Train ``model`` with DEBA adapting the batch size.

    Args:
        model: the model; moved to ``device``.
        train_data: a map-style dataset yielding ``(inputs, targets)``, or a tuple of tensors.
        optimizer: its optimizer (its LRs belong to the starting batch).
        loss_fn: ``loss_fn(outputs, targets)`` -> mean loss.
        profile: profile, name, file, or ``"auto"`` (architecture detection); ``strategy``: instance or name.
        batch_size: your batch, the starting batch ``B0`` (default ``profile.initial_batch``).
        epochs: epochs to train; with ``None``, ``max_samples`` sets the budget.
        max_samples: stop once this many samples were trained on.
        eval_data: evaluated at each epoch end (loss, accuracy).
        device: defaults to the model's device.
        log_dir: writes ``history.jsonl`` (new run: afresh; resumed: continued) and TensorBoard scalars.
        checkpoint_dir: checkpoints every ``checkpoint_every`` steps and epoch end; ``resume`` from the latest.
        callbacks: :class:`deba.Callback` instances; ``progress``: show a tqdm bar (in budget samples).
        seed: seeds the sample order, the gradient sketch and the DataLoader's worker seeds.
        reseed: also ``torch.manual_seed(seed)``: resets the *global* RNG (``False`` leaves it alone).
        lr_scheduler: stepped every step, epoch, or (``"samples"``) starting batch of budget progress
            (a schedule sized in ``B0`` steps ends with the budget); DEBA's LR factor multiplies it.
        max_micro_batch: memory cap per forward/backward (default: the profile's).
        num_workers: DataLoader workers (a change lands within ``num_workers * prefetch_factor`` batches).
        nonfinite_abort: non-finite steps in a row that stop training (default ``3 * nonfinite_patience``).
        fixed_batch: run a fixed-batch baseline instead (DEBA observes and logs, never changes).
        strategy_options: keyword options for a strategy given by name; ``tensorboard``: mirror scalars.
        history_in_memory: records kept in memory (the full history is in ``log_dir``).
        policy, throughput: the scheduler's (default ``profile.policy``; throughput measured).
        budget: ``"equivalent"`` counts ``epochs``/``max_samples`` in starting-batch-equivalent
            samples (``sum E(B_i) B_i``: same accuracy, less time); ``"samples"`` strictly;
            ``"auto"`` = equivalent for policies that measure the noise scale, else samples.
        amp: mixed precision (``True``, ``"bf16"``, ``"fp16"``: autocast, GradScaler for fp16);
            ``max_grad_norm``: gradient clipping (after DEBA reads the unscaled gradient);
            ``probe_throughput``: time a few sizes first (default: throughput policies, unfixed batch).
        options: DEBA's settings as one :class:`deba.RunOptions` (the same object works in every
            front end) instead of ``profile``, ``strategy``, ``strategy_options``, ``policy``,
            ``throughput``, ``budget``, ``max_micro_batch``, ``probe_throughput`` and
            ``nonfinite_abort``; giving both is an error.

    Returns:
        FitResult with the history and final metrics.

    Example:
        >>> import torch, deba
        >>> m = torch.nn.Linear(4, 2)
        >>> deba.fit(m, (torch.randn(64, 4), torch.randint(0, 2, (64,))), optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
        ...          loss_fn=torch.nn.functional.cross_entropy, profile="mlp", epochs=1, progress=False).samples
        64
    """
    options = dict(locals())  # every keyword above, by name
    cfg = FitConfig(**{k: v for k, v in options.items() if k != "train_data"})
    dataset = as_dataset(train_data, "train_data")
    run = _FitRun(cfg, dataset)
    run.resume_or_start()
    run.probe_throughput()
    return run.train()
