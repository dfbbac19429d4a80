"""Hooks into ``deba.fit`` (Lightning-style: every hook optional, a no-op by default)."""

from __future__ import annotations

from typing import Any, Sequence

from deba.control.decision import Decision

__all__ = ["Callback", "CallbackList"]


class Callback:
    """Subclass and override what you need; pass instances as ``deba.fit(..., callbacks=[...])``.

    ``record`` is the step's history entry (the same dict written to ``history.jsonl``).

    Example:
        >>> import deba
        >>> class PrintChanges(deba.Callback):
        ...     def on_decision(self, decision):
        ...         if decision.changed:
        ...             print(decision.previous_batch_size, "->", decision.batch_size)
    """

    def on_train_start(self, state: dict[str, Any]) -> None:
        """Before the first step (after a resume, before the first new step)."""

    def on_step_end(self, record: dict[str, Any]) -> None:
        """After every optimizer step (or skipped non-finite step)."""

    def on_decision(self, decision: Decision) -> None:
        """After every scheduler decision."""

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        """After every epoch, with the evaluation results when there is eval data."""

    def on_train_end(self, result: Any) -> None:
        """After the run, with the FitResult."""


class CallbackList:
    """Calls each hook on every callback, in order (what ``deba.fit`` holds).

    Example:
        >>> import deba
        >>> from deba.training.callbacks import CallbackList
        >>> CallbackList([deba.Callback()]).on_step_end({"step": 1})
    """

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_start(self, state: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_start(state)

    def on_step_end(self, record: dict[str, Any], decision: Decision | None = None) -> None:
        for cb in self.callbacks:
            if decision is not None:
                cb.on_decision(decision)
            cb.on_step_end(record)

    def on_epoch_end(self, record: dict[str, Any], decision: Decision | None = None) -> None:
        for cb in self.callbacks:
            if decision is not None:
                cb.on_decision(decision)
            cb.on_epoch_end(record)

    def on_train_end(self, result: Any) -> None:
        for cb in self.callbacks:
            cb.on_train_end(result)
