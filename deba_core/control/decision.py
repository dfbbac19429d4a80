"""What the scheduler decides after each observation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Decision"]


@dataclass(frozen=True)
class Decision:
    """The scheduler's answer to one observation.

    Attributes:
        batch_size: the global batch size to use from the next step on.
        previous_batch_size: the batch size before this decision.
        changed: whether ``batch_size`` differs from ``previous_batch_size``.
        action: ``"grow"``, ``"shrink"``, ``"hold"``, or ``"rollback"`` (a safety return to the batch
            before the last growth, after a loss spike or a non-finite step within its cooldown).
        score: the stability score, or ``None`` while no score is available.
        reason: why, in words (``"warmup 2/4"``, ``"cooldown"``, ``"score 0.81 >= 0.65"``...).
        lr_factor: multiplier of the base learning rate for ``batch_size`` (rule 7).
        step: optimizer steps observed so far.
        interval: decision intervals completed so far.
        decided: whether this step closed an interval (or was a non-finite emergency).
        metrics: the metric values the score was computed from.
        noise_scale: the measured gradient noise scale ``B_simple`` (``None`` while there is no
            clear estimate).
        noise_scale_low: the lower confidence bound on it that growth and the LR gain use
            (``None`` before enough measurements).

    Example:
        >>> import deba
        >>> d = deba.BatchScheduler("mlp").observe(deba.Observation(loss=1.0, batch_size=32, grad_norm=1.0))
        >>> d.batch_size, d.changed, d.action
        (32, False, 'hold')
    """

    batch_size: int
    previous_batch_size: int
    changed: bool
    action: Literal["grow", "shrink", "hold", "rollback"]
    score: float | None
    reason: str
    lr_factor: float
    step: int
    interval: int
    decided: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    noise_scale: float | None = None
    noise_scale_low: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)
