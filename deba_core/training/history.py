"""The step record: one JSON line per step, plus TensorBoard scalars when available."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from collections import deque
from typing import Any

from deba.errors import DebaConfigError

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
    """The per-step record every adapter writes (one line of history.jsonl).

    ``result`` is the step's micro-batch run, or ``None`` in manual mode (the user ran backward).
    """
    local = obs.batch_size if result is None else result.samples
    micro = 1 if result is None else len(result.micro_sizes)
    rec = {
        "kind": "step",
        "step": step,
        "epoch": epoch,
        "samples": samples,
        "batch_size": obs.batch_size,
        "local_batch_size": local,
        "next_batch_size": decision.batch_size,
        "micro_batches": micro,
        "lr": lr,
        "lr_factor": lr_factor,
        "loss": obs.loss,
        "grad_norm": obs.grad_norm,
        "finite": obs.is_finite,
        "metrics": decision.metrics,
        "score": decision.score,
        "action": decision.action,
        "decided": decision.decided,
        "interval": decision.interval,
        "changed": decision.changed,
        "reason": decision.reason,
        "noise_scale": getattr(decision, "noise_scale", None),
        "noise_scale_low": getattr(decision, "noise_scale_low", None),
        **extra,
    }
    if result is not None and result.oom_events:
        rec["oom_events"] = result.oom_events
    return rec


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``history.jsonl`` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class HistoryWriter:
    """Writes step and epoch records to ``log_dir/<filename>`` and mirrors scalars to TensorBoard.

    Memory does not grow with the run: only the last ``keep`` records stay in :attr:`records`;
    :meth:`all_records` reads the full history back from the file. ``deba.fit`` and
    ``DebaTrainer`` behave alike: a new run starts the file afresh (:meth:`start`), a resumed run
    keeps the records its checkpoint counted and drops whatever the interrupted run wrote after it.

    Args:
        log_dir: the folder (``None``: nothing is written, only the tail is kept).
        tensorboard: also write TensorBoard scalars when ``torch.utils.tensorboard`` works.
        filename: the JSONL file's name.
        keep: records kept in memory.

    Example:
        >>> w = HistoryWriter(None, keep=2)
        >>> w.start()
        >>> for i in range(3):
        ...     w.write({"kind": "step", "step": i})
        >>> w.count, [r["step"] for r in w.records]
        (3, [1, 2])
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None, tensorboard: bool = True,
                 filename: str = "history.jsonl", keep: int = 10_000) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise DebaConfigError.single("keep", keep, "must be an int >= 1")
        self.records: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        self.path: Path | None = None
        self._fh = None
        self._tb = None
        if log_dir is None:
            return
        self.path = Path(log_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            self._tb = _tensorboard(Path(log_dir) / "tensorboard")

    def start(self, resumed_records: int | None = None) -> None:
        """A new run (``None``: the file starts empty) or a resumed one (keep that many records)."""
        self.truncate_to(0 if resumed_records is None else resumed_records)

    def truncate_to(self, n: int) -> None:
        """Keep the first ``n`` records on disk (and their tail in memory)."""
        self._close_file()
        if self.path is None:
            drop = max(0, self.count - n)
            for _ in range(min(drop, len(self.records))):
                self.records.pop()
            self.count = min(self.count, n)
            return
        kept = read_history(self.path)[:n] if self.path.exists() else []
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in kept:
                fh.write(json.dumps(_clean(r)) + "\n")
        os.replace(tmp, self.path)
        self.records.clear()
        self.records.extend(kept)
        self.count = len(kept)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self.records.append(record)
        self.count += 1
        if self.path is not None:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(json.dumps(_clean(record)) + "\n")
            self._fh.flush()
        if self._tb is not None and record.get("kind") == "step":
            _mirror(self._tb, record)

    def all_records(self) -> list[dict[str, Any]]:
        """Every record of the run: from the file when there is one, else the in-memory tail."""
        if self.path is not None and self.path.exists():
            if self._fh is not None:
                self._fh.flush()
            return read_history(self.path)
        return list(self.records)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        """Close the file and TensorBoard writer."""
        self._close_file()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(folder))
    except Exception:  # tensorboard not installed: JSONL only
        return None


def _mirror(tb: Any, record: dict[str, Any]) -> None:
    step = record["step"]
    for key in ("batch_size", "loss", "lr", "score", "samples_per_s"):
        v = record.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            tb.add_scalar(f"deba/{key}", v, step)
    for name, v in (record.get("metrics") or {}).items():
        tb.add_scalar(f"deba/metric/{name}", v, step)
