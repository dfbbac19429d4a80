"""Hooks into ``deba.fit`` (Lightning-style: every hook optional, a no-op by default)."""

from __future__ import annotations

from typing import Any

from .decision import Decision

__all__ = ["Callback"]


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
