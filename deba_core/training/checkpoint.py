"""Checkpoints that survive being killed at any moment.

One state schema for every adapter: ``deba_state.json`` (:func:`build_state`: profile, scheduler,
step engine, sampler, history length, world size, and whatever the adapter adds, such as RNG
states). ``deba.fit`` writes it beside ``weights.pt`` in its own checkpoint folders;
``DebaTrainer`` writes it into each HF checkpoint folder. :func:`restore_state` reads it back for
both, with one compatibility check (:func:`check_profile`).

``deba.fit``'s checkpoint is a folder ``step-XXXXXXXX/`` holding ``weights.pt`` (model, optimizer
and LR scheduler state dicts, via ``torch.save``; read back with ``weights_only=True``) and
``deba_state.json``. The folder
is written under a temporary name and renamed into place, then ``latest.json`` is replaced
atomically to point at it, so a reader sees either the previous complete checkpoint or the new
one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deba.errors import DebaConfigError

__all__ = [
    "CHECKPOINT_FORMAT", "STATE_FILE", "STATE_FORMAT", "build_state", "capture_rng", "check_profile", "latest_checkpoint",
    "load_checkpoint", "read_state", "restore_rng", "restore_state", "save_checkpoint", "write_json_atomic",
]

CHECKPOINT_FORMAT = "deba-checkpoint"  # latest.json, the pointer to deba.fit's newest folder
CHECKPOINT_VERSION = 1
STATE_FILE = "deba_state.json"
STATE_FORMAT = "deba-state"
STATE_VERSION = 2
_KEEP = 2


def build_state(*, profile: Any, scheduler: Any, engine: Any, sampler: Any, history_records: int,
                world_size: int = 1, **extra: Any) -> dict[str, Any]:
    """The ``deba_state.json`` document (plain JSON-able data), the same for every adapter."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "profile": profile.to_dict(),
        "scheduler": scheduler.state_dict(),
        "engine": engine.state_dict(),
        "sampler": None if sampler is None else sampler.state_dict(),
        "history_records": int(history_records),
        "world_size": int(world_size),
        **extra,
    }


def read_state(path: str | os.PathLike[str], field: str = "checkpoint") -> dict[str, Any]:
    """A ``deba_state.json`` document, checked to be one (``field`` names the argument in errors)."""
    path = Path(path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DebaConfigError.single(field, str(path), f"cannot be read ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise DebaConfigError.single(field, str(path), "is not a DEBA state file (foreign file?)")
    if state.get("version") != STATE_VERSION:
        raise DebaConfigError.single(f"{field}.version", state.get("version"), f"must be {STATE_VERSION}")
    return state


def check_profile(state: dict[str, Any], profile: Any, field: str = "profile") -> None:
    """Refuse to resume a state saved with another profile (the one resume check of every adapter)."""
    saved = state.get("profile")
    if saved != profile.to_dict():
        name = saved.get("name") if isinstance(saved, dict) else saved
        raise DebaConfigError.single(
            field, profile.name, f"must be the profile the checkpoint was saved with ({name!r}) to resume",
            remedy="Resume with the same profile (and overrides) as the interrupted run, or start a new run.",
        )


def restore_state(state: dict[str, Any], *, profile: Any, scheduler: Any, engine: Any, sampler: Any,
                  field: str = "profile") -> None:
    """Put scheduler, engine and sampler back where :func:`build_state` found them."""
    check_profile(state, profile, field)
    try:
        scheduler.load_state_dict(state["scheduler"])
        engine.load_state_dict(state["engine"])
        if sampler is not None and state.get("sampler") is not None:
            sampler.load_state_dict(state["sampler"])
    except KeyError as exc:
        raise DebaConfigError.single("checkpoint", sorted(state), f"lacks {exc}") from exc


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as JSON-able data."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a synced temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(directory: str | os.PathLike[str], step: int, weights: dict[str, Any], deba_state: dict[str, Any]) -> Path:
    """Write one checkpoint and point ``latest.json`` at it; keeps the newest two."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(weights, tmp / "weights.pt")
    write_json_atomic(tmp / STATE_FILE, {**deba_state, "step": step})
    final = root / name
    again = 0
    while final.exists():
        # A second save at the same step (an epoch's end right after a periodic save): never delete
        # the folder latest.json may point at before the new one is in place (a kill in between
        # would leave a pointer to nothing); write beside it and prune afterwards.
        again += 1
        name = f"step-{step:08d}-{again}"
        final = root / name
    os.replace(tmp, final)
    write_json_atomic(root / "latest.json", {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "dir": name})
    for old in sorted(p for p in root.glob("step-*") if p.is_dir() and p != final)[: -(_KEEP - 1) or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The folder ``latest.json`` points at, ``None`` when the directory holds no checkpoint.

    Raises:
        DebaConfigError: ``latest.json`` exists but is not a DEBA checkpoint pointer.
    """
    root = Path(directory)
    pointer = root / "latest.json"
    if not pointer.exists():
        if root.exists() and any(root.glob("step-*")):
            raise DebaConfigError.single(
                "checkpoint_dir", str(root), "holds step-* folders but no latest.json: not a complete DEBA checkpoint"
            )
        return None
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DebaConfigError.single("checkpoint_dir", str(pointer), f"is corrupt ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT or not isinstance(data.get("dir"), str):
        raise DebaConfigError.single("checkpoint_dir", str(pointer), "is not a DEBA checkpoint pointer (foreign file?)")
    folder = root / data["dir"]
    if not folder.is_dir() or os.sep in data["dir"] or data["dir"].startswith("."):
        raise DebaConfigError.single("checkpoint_dir", str(folder), "is missing: the checkpoint is incomplete")
    return folder


def load_checkpoint(folder: str | os.PathLike[str], map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(weights, deba_state)`` of one checkpoint folder, validated.

    Raises:
        DebaConfigError: a corrupt or foreign checkpoint, with what is wrong.
    """
    folder = Path(folder)
    state = read_state(folder / STATE_FILE)
    try:
        weights = torch.load(folder / "weights.pt", map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds on a truncated or foreign file
        raise DebaConfigError.single("checkpoint", str(folder / "weights.pt"), f"cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if not isinstance(weights, dict) or "model" not in weights:
        raise DebaConfigError.single("checkpoint", str(folder / "weights.pt"), "holds no model state")
    return weights, state
