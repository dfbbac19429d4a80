"""``deba.fit``: the training loop with DEBA wired in.

Per optimizer step: the adaptive sampler yields a global batch; the torch adapter runs it as
micro-batches (gradient accumulation, probe sketches per micro-batch); the probe reads the gradient;
the scheduler decides; a finite step is applied with the LR factor of the batch it was drawn at
(composed with the user's LR scheduler through optimizer hooks); the sampler takes the new size.
Every step is recorded, checkpoints are written atomically, and ``resume=True`` continues exactly.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .batching import batch_len, move_to
from .callbacks import Callback
from .checkpoint import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from .errors import DebaConfigError, DebaError
from .history import HistoryWriter, step_record
from .lr import LRCoupler
from .probe import GradientProbe
from .profile import ArchitectureProfile
from .sampler import AdaptiveBatchSampler
from .scheduler import BatchScheduler
from .scoring import ScoringStrategy

__all__ = ["FitResult", "NonFiniteTraining", "evaluate", "fit"]


class NonFiniteTraining(DebaError):
    """Training kept producing NaN/inf losses or gradients even after shrinking the batch."""


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict per step (``kind == "step"``) and per epoch (``kind == "epoch"``).
        final: final evaluation metrics (``eval_loss``, ``eval_accuracy``) when there is eval data.
        steps, samples, epochs: totals.
        wall_time: seconds of training (this process; a resumed run adds to the stored total).
        profile: the profile used.
        batch_sizes: distinct batch sizes used, in order of first use.
        log_dir: where the history was written, if anywhere.
    """

    history: list[dict[str, Any]]
    final: dict[str, float]
    steps: int
    samples: int
    epochs: int
    wall_time: float
    profile: ArchitectureProfile
    batch_sizes: list[int] = field(default_factory=list)
    log_dir: Path | None = None
    stopped_by: str = ""

    def step_records(self) -> list[dict[str, Any]]:
        """Only the per-step records."""
        return [r for r in self.history if r.get("kind") == "step"]


def _as_dataset(data: Any, name: str) -> torch.utils.data.Dataset:
    if isinstance(data, torch.utils.data.IterableDataset):
        raise DebaConfigError.single(
            name, type(data).__name__, "must be a map-style dataset (with __len__ and __getitem__)",
            remedy="Wrap the stream in a map-style dataset, or use the manual mode (deba.DebaController).",
        )
    if isinstance(data, torch.utils.data.Dataset):
        try:
            len(data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DebaConfigError.single(name, type(data).__name__, "must have a length") from exc
        return data
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        if len({t.shape[0] for t in data}) != 1:
            raise DebaConfigError.single(name, [tuple(t.shape) for t in data], "tensors must share their first dimension")
        return torch.utils.data.TensorDataset(*data)
    raise DebaConfigError.single(name, type(data).__name__, "must be a torch Dataset or a tuple of tensors (inputs, targets)")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> dict[str, float]:
    """Mean loss and (for class logits) accuracy of ``model`` on ``data``."""
    dataset = _as_dataset(data, "eval_data")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
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


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    profile: ArchitectureProfile | str = "auto",
    strategy: ScoringStrategy | str = "equal-weight",
    epochs: int | None = None,
    max_samples: int | None = None,
    eval_data: Any = None,
    device: str | torch.device | None = None,
    log_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int = 0,
    lr_scheduler: Any = None,
    lr_scheduler_interval: str = "step",
    max_micro_batch: int | None = None,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    nonfinite_abort: int | None = None,
    fixed_batch: int | None = None,
    strategy_options: dict[str, Any] | None = None,
    tensorboard: bool = True,
) -> FitResult:
    """Train ``model`` with DEBA adapting the batch size.

    Args:
        model: the model; moved to ``device``.
        train_data: a map-style dataset yielding ``(inputs, targets)``, or a tuple of tensors.
        optimizer: its optimizer (base LRs belong to ``profile.initial_batch``).
        loss_fn: ``loss_fn(outputs, targets)`` -> mean loss.
        profile: profile, name, file, or ``"auto"`` (architecture detection on ``model``).
        strategy: scoring strategy instance or name.
        epochs: epochs to train; with ``None``, ``max_samples`` sets the budget.
        max_samples: stop once this many samples were trained on.
        eval_data: evaluated at each epoch end (loss, accuracy).
        device: defaults to the model's device.
        log_dir: writes ``history.jsonl`` (and TensorBoard scalars if available).
        checkpoint_dir: where checkpoints go (every ``checkpoint_every`` steps and at epoch end).
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        callbacks: :class:`deba.Callback` instances.
        progress: show a tqdm progress bar.
        seed: seeds the sample order, the gradient sketch and torch's RNG.
        lr_scheduler: a torch LR scheduler stepped every step (or epoch, see
            ``lr_scheduler_interval``); DEBA's LR factor multiplies its schedule.
        max_micro_batch: memory cap per forward/backward (default: the profile's).
        num_workers: DataLoader workers (a batch-size change lands within
            ``num_workers * prefetch_factor`` batches; sizes are always recorded from ``len(batch)``).
        nonfinite_abort: consecutive non-finite steps after which training stops with an error
            (default ``3 * profile.nonfinite_patience``).
        fixed_batch: run a fixed-batch baseline instead (DEBA observes and logs, never changes).

    Returns:
        FitResult with the history and final metrics.
    """
    from deba.adapters import distributed
    from deba.adapters.torch import TorchAdapter, resolve_profile

    if not isinstance(model, nn.Module):
        raise DebaConfigError.single("model", type(model).__name__, "must be an nn.Module")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise DebaConfigError.single("optimizer", type(optimizer).__name__, "must be a torch.optim.Optimizer")
    if not callable(loss_fn):
        raise DebaConfigError.single("loss_fn", loss_fn, "must be callable as loss_fn(outputs, targets)")
    for name, value in (("epochs", epochs), ("max_samples", max_samples), ("checkpoint_every", checkpoint_every),
                        ("fixed_batch", fixed_batch), ("nonfinite_abort", nonfinite_abort)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DebaConfigError.single(name, value, "must be an int >= 1 or None")
    if epochs is None and max_samples is None:
        raise DebaConfigError.single("epochs", None, "or max_samples must be set (how long to train)")
    if lr_scheduler_interval not in ("step", "epoch"):
        raise DebaConfigError.single("lr_scheduler_interval", lr_scheduler_interval, "must be 'step' or 'epoch'")
    if resume and checkpoint_dir is None:
        raise DebaConfigError.single("resume", resume, "needs checkpoint_dir")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise DebaConfigError.single("num_workers", num_workers, "must be an int >= 0")

    dataset = _as_dataset(train_data, "train_data")
    if isinstance(model, nn.parallel.DistributedDataParallel):
        # deba.fit reduces gradients itself (it must read each rank's local gradient first).
        warnings.warn("deba.fit: pass the plain model; using model.module (DEBA does the DDP reduction)", UserWarning,
                      stacklevel=2)
        model = model.module
    prof = resolve_profile(profile, model)
    if fixed_batch is not None:
        prof = prof.replace(min_batch=fixed_batch, max_batch=fixed_batch, initial_batch=fixed_batch, granularity=1)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    torch.manual_seed(seed)
    ctx = distributed.context(dev)
    rank = 0 if ctx is None else ctx.rank
    if ctx is not None:
        ctx.check_granularity(prof.granularity)
        distributed.broadcast_module(model)

    sched = BatchScheduler(prof, strategy=strategy, strategy_options=strategy_options)
    probe = GradientProbe(model, sketch_size=prof.sketch_size, seed=seed)
    adapter = TorchAdapter(model, loss_fn, probe, max_micro_batch=max_micro_batch or prof.max_micro_batch, dist=ctx)
    # Epochs are always finite here; without `epochs` the run goes epoch after epoch until max_samples.
    sampler = AdaptiveBatchSampler(dataset, sched.batch_size, shuffle=True, seed=seed,
                                   num_replicas=1 if ctx is None else ctx.world, rank=rank,
                                   min_last_batch=prof.granularity)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_fn,
        pin_memory=dev.type == "cuda", persistent_workers=False,
        # Each iter(loader) draws a worker base seed; from its own generator it never moves the
        # global RNG, so a resumed run (which calls iter() mid-epoch) keeps the same dropout masks.
        generator=torch.Generator().manual_seed(seed),
    )
    coupler = LRCoupler(optimizer, sched.lr_factor)
    # Every rank records its own trajectory (rank 0 in history.jsonl), so agreement can be checked.
    history = HistoryWriter(log_dir, tensorboard=tensorboard and rank == 0,
                            filename="history.jsonl" if rank == 0 else f"history-rank{rank}.jsonl")
    abort_after = nonfinite_abort or 3 * prof.nonfinite_patience

    counters = {"step": 0, "samples": 0, "epoch": 0, "wall": 0.0, "records": 0, "eval_time": 0.0, "deba_time": 0.0}
    if resume:
        folder = latest_checkpoint(checkpoint_dir)  # type: ignore[arg-type]
        if folder is None:
            warnings.warn(f"deba.fit: no checkpoint in {checkpoint_dir}; starting from the beginning", UserWarning, stacklevel=2)
        else:
            weights, state = load_checkpoint(folder, map_location=dev)
            if state.get("profile") != prof.to_dict():
                raise DebaConfigError.single(
                    "checkpoint.profile", (state.get("profile") or {}).get("name"),
                    f"must equal this run's profile ({prof.name!r}) to resume",
                )
            try:
                model.load_state_dict(weights["model"])
                optimizer.load_state_dict(weights["optimizer"])
                if lr_scheduler is not None and weights.get("lr_scheduler") is not None:
                    lr_scheduler.load_state_dict(weights["lr_scheduler"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise DebaConfigError.single("checkpoint", str(folder), f"does not fit this model/optimizer ({exc})") from exc
            sched.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            rng = state["rng"]
            if isinstance(rng, list):  # one state per rank of the run that saved it
                rng = rng[rank] if ctx is not None and len(rng) == ctx.world else rng[0]
            restore_rng(rng)
            counters.update(state["counters"])
            history.truncate_to(counters["records"])

    def deba_state(rng: Any) -> dict[str, Any]:
        return {
            "profile": prof.to_dict(),
            "scheduler": sched.state_dict(),
            "sampler": sampler.state_dict(),
            "rng": rng,
            "counters": dict(counters),
            "world_size": 1 if ctx is None else ctx.world,
        }

    def checkpoint() -> None:
        if checkpoint_dir is None:
            return
        rng: Any = capture_rng() if ctx is None else ctx.gather_objects(capture_rng())
        if rank != 0:
            ctx.barrier()  # wait until rank 0 has written it
            return
        weights = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": None if lr_scheduler is None else lr_scheduler.state_dict(),
        }
        save_checkpoint(checkpoint_dir, counters["step"], weights, deba_state(rng))
        if ctx is not None:
            ctx.barrier()

    def record(rec: dict[str, Any]) -> None:
        history.write(rec)
        counters["records"] += 1

    epoch_size = len(dataset)
    total = epochs * epoch_size if epochs is not None else max_samples
    if max_samples is not None and total is not None:
        total = min(total, max_samples)
    bar = _progress(total, progress and rank == 0)
    if bar is not None:
        bar.update(min(counters["samples"], total or 0))
    for cb in callbacks:
        cb.on_train_start(dict(counters))

    stopped_by = ""
    bad_in_a_row = sched.nonfinite_consecutive
    last_eval: dict[str, float] = {}
    started = time.perf_counter() - counters["wall"]
    model.train()

    def budget_left() -> bool:
        return max_samples is None or counters["samples"] < max_samples

    def close_epoch() -> None:
        nonlocal last_eval
        done_epoch = sampler.epoch
        decision = sched.end_epoch()
        sampler.batch_size = decision.batch_size
        if lr_scheduler is not None and lr_scheduler_interval == "epoch":
            lr_scheduler.step()
        counters["epoch"] = done_epoch + 1
        t_eval = time.perf_counter()
        last_eval = evaluate(model, eval_data, loss_fn, device=dev) if eval_data is not None else {}
        counters["eval_time"] += time.perf_counter() - t_eval
        wall = time.perf_counter() - started
        erec = {"kind": "epoch", "epoch": done_epoch, "step": counters["step"], "samples": counters["samples"],
                "wall_time": wall, "train_time": wall - counters["eval_time"], "deba_time": counters["deba_time"],
                "batch_size": sched.batch_size,
                "decision": decision.reason, "changed": decision.changed, **last_eval}
        record(erec)
        for cb in callbacks:
            cb.on_decision(decision)
            cb.on_epoch_end(erec)
        sampler.set_epoch(done_epoch + 1)
        checkpoint()

    def train_step(batch: Any) -> None:
        nonlocal bad_in_a_row
        t0 = time.perf_counter()
        batch = move_to(batch, dev)
        intended = sched.batch_size
        optimizer.zero_grad(set_to_none=True)
        result, obs = adapter.forward_backward(batch, step=counters["step"] + 1, epoch=sampler.epoch)
        n = obs.batch_size  # the global batch (all ranks together)
        # This batch's optimizer step uses the LR factor of the size it was drawn at.
        coupler.factor = prof.lr_factor(intended)
        t_obs = time.perf_counter()
        decision = sched.observe(obs)
        if ctx is not None:
            # One decision, rank 0's, on every rank (the others computed the same from the same inputs).
            agreed = ctx.broadcast_decision(decision)
            if agreed != decision:
                warnings.warn(f"deba.fit: rank {rank} decided {decision.batch_size}, rank 0 {agreed.batch_size}; "
                              "following rank 0", RuntimeWarning, stacklevel=2)
                sched.batch_size = agreed.batch_size
            decision = agreed
        counters["deba_time"] += time.perf_counter() - t_obs + adapter.take_deba_seconds()
        if obs.is_finite:
            optimizer.step()
            bad_in_a_row = 0
            if ctx is not None:
                distributed.broadcast_module(model, buffers_only=True)  # as DDP: rank 0's BN statistics
        else:
            bad_in_a_row += 1
        sampler.batch_size = decision.batch_size
        sampler.mark_consumed(n)
        counters["step"] += 1
        counters["samples"] += n
        if lr_scheduler is not None and lr_scheduler_interval == "step":
            lr_scheduler.step()
        now = time.perf_counter()
        counters["wall"] = now - started
        rec = step_record(
            counters["step"], sampler.epoch, counters["samples"], obs, decision, result,
            lr=coupler.last_used[0] if obs.is_finite else None, lr_factor=coupler.factor,
            wall_time=counters["wall"], train_time=counters["wall"] - counters["eval_time"],
            samples_per_s=n / max(now - t0, 1e-9),
        )
        record(rec)
        for cb in callbacks:
            cb.on_decision(decision)
            cb.on_step_end(rec)
        if bar is not None:
            bar.update(n)
            bar.set_postfix(epoch=sampler.epoch, bs=n, score="-" if decision.score is None else f"{decision.score:.2f}",
                            loss=f"{obs.loss:.3f}", sps=f"{rec['samples_per_s']:.0f}", refresh=False)
        if bad_in_a_row >= abort_after:
            raise NonFiniteTraining(
                f"step {counters['step']}: {bad_in_a_row} consecutive non-finite losses or gradients "
                f"(batch now {sched.batch_size}). Check the learning rate (scaled by lr_factor="
                f"{coupler.factor:.3g}), the data for NaN/inf, the loss function, and mixed-precision scaling."
            )
        if checkpoint_every and counters["step"] % checkpoint_every == 0:
            checkpoint()

    try:
        while True:
            if sampler.position >= sampler.num_samples:
                close_epoch()  # every sample of this epoch was used: close it before anything else
                continue
            if epochs is not None and sampler.epoch >= epochs:
                stopped_by = "epochs"
                break
            if not budget_left():
                stopped_by = "max_samples"
                break
            for batch in loader:
                train_step(batch)
                if not budget_left():
                    break
    finally:
        if bar is not None:
            bar.close()
        history.close()
        coupler.remove()

    if eval_data is not None and not last_eval:
        last_eval = evaluate(model, eval_data, loss_fn, device=dev)
    sizes: list[int] = []
    for r in history.records:
        if r.get("kind") == "step" and r["batch_size"] not in sizes:
            sizes.append(r["batch_size"])
    result = FitResult(
        history=list(history.records),
        final=last_eval,
        steps=counters["step"],
        samples=counters["samples"],
        epochs=counters["epoch"],
        wall_time=time.perf_counter() - started,
        profile=prof,
        batch_sizes=sizes,
        log_dir=Path(log_dir) if log_dir is not None else None,
        stopped_by=stopped_by,
    )
    if log_dir is not None and rank == 0:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        prof.to_file(Path(log_dir) / "profile.yaml")
    for cb in callbacks:
        cb.on_train_end(result)
    return result
