"""Trainer callbacks that keep HF's loop in step with DEBA's sample accounting (the shared run's calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deba.adapters.huggingface import _require  # noqa: F401 - the extra, or a clear ImportError

from transformers import TrainerCallback

if TYPE_CHECKING:  # pragma: no cover
    from deba.adapters.huggingface.trainer import DebaTrainer

__all__ = ["DebaControl", "DebaProgress"]


class DebaControl(TrainerCallback):
    """After each optimizer step: the record, DDP buffers, epoch and stop flags; epoch ends."""

    def __init__(self, trainer: "DebaTrainer") -> None:
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        t = self.trainer
        run = t.deba_run
        t._deba_flush_record()
        if run.engine is not None:
            run.engine.after_optimizer_step()  # under DDP: rank 0's BatchNorm statistics, as DDP does
        if t._deba_sampler is not None:
            state.epoch = run.samples / t._deba_sampler.num_samples
        if run.budget_spent():
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        t = self.trainer
        t.deba_run.end_epoch_if_used()
        return control


class DebaProgress(TrainerCallback):
    """A progress bar in samples (Trainer's own counts steps against DEBA's step ceiling)."""

    def __init__(self, trainer: "DebaTrainer") -> None:
        self.trainer = trainer
        self.bar = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            # In what the budget counts (equivalent samples by default for goodput), like deba.fit's bar.
            run = self.trainer.deba_run
            self.bar = tqdm(total=run.budget.total, unit="sample", dynamic_ncols=True, leave=False,
                            initial=int(run.progress))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.bar is not None:
            run = self.trainer.deba_run
            d = run.scheduler.last_decision
            score = "-" if d is None or d.score is None else f"{d.score:.2f}"
            self.bar.set_postfix(bs=run.scheduler.batch_size, score=score, refresh=False)
            self.bar.update(int(run.progress) - self.bar.n)  # rate-limited redraw, as in deba.fit

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
