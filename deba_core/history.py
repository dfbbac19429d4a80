"""The step record: one JSON line per step, plus TensorBoard scalars when available."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["HistoryWriter", "read_history", "step_record"]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become strings (JSON has no literal for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def step_record(step: int, epoch: int | None, samples: int, obs: Any, decision: Any, result: Any,
                lr: float | None, lr_factor: float | None, **extra: Any) -> dict[str, Any]:
    """The per-step record ``deba.fit`` and ``DebaTrainer`` write (one line of history.jsonl)."""
    rec = {
        "kind": "step",
        "step": step,
        "epoch": epoch,
        "samples": samples,
        "batch_size": obs.batch_size,
        "local_batch_size": result.samples,
        "next_batch_size": decision.batch_size,
        "micro_batches": len(result.micro_sizes),
        "lr": lr,
        "lr_factor": lr_factor,
        "loss": obs.loss,
        "grad_norm": obs.grad_norm,
        "finite": obs.is_finite,
        "metrics": decision.metrics,
        "score": decision.score,
        "action": decision.action,
        "changed": decision.changed,
        "reason": decision.reason,
        **extra,
    }
    if result.oom_events:
        rec["oom_events"] = result.oom_events
    return rec


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl`` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class HistoryWriter:
    """Appends step records to ``log_dir/history.jsonl`` and mirrors scalars to TensorBoard.

    ``truncate_to(n)`` keeps only the first ``n`` records: a resumed run replaces whatever the
    interrupted run wrote after its last checkpoint.
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None, tensorboard: bool = True,
                 filename: str = "history.jsonl") -> None:
        self.records: list[dict[str, Any]] = []
        self.path: Path | None = None
        self._fh = None
        self._tb = None
        if log_dir is None:
            return
        self.path = Path(log_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(log_dir) / "tensorboard"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def truncate_to(self, n: int) -> None:
        """Keep the first ``n`` records in memory and on disk."""
        if self.path is not None and self.path.exists():
            self.records = read_history(self.path)[:n]
        else:
            self.records = self.records[:n]
        if self.path is not None:
            tmp = self.path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in self.records:
                    fh.write(json.dumps(_clean(r)) + "\n")
            os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(json.dumps(_clean(record)) + "\n")
            self._fh.flush()
        if self._tb is not None and record.get("kind") == "step":
            step = record["step"]
            for key in ("batch_size", "loss", "lr", "score", "samples_per_s"):
                v = record.get(key)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"deba/{key}", v, step)
            for name, v in (record.get("metrics") or {}).items():
                self._tb.add_scalar(f"deba/metric/{name}", v, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
