"""``report.png``: batch size, score, loss and accuracy against wall time and samples."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["write_report"]


_TITLES = [("batch size vs wall time (s)", "batch"), ("stability score vs wall time (s)", "score"),
           ("test accuracy (%) vs wall time (s)", "accuracy %"), ("batch size vs samples", "batch"),
           ("training loss vs samples", "loss"), ("test accuracy (%) vs samples", "accuracy %")]


def _plot_run(axes, name: str, res) -> None:
    """Draw one run (a FitResult) into the 2x3 ``axes``."""
    steps = res.step_records()
    epochs = [r for r in res.history if r.get("kind") == "epoch"]
    wall = [r["wall_time"] for r in steps]
    samples = [r["samples"] for r in steps]
    axes[0, 0].step(wall, [r["batch_size"] for r in steps], where="post", label=name)
    axes[1, 0].step(samples, [r["batch_size"] for r in steps], where="post", label=name)
    scored = [r for r in steps if r.get("score") is not None]
    axes[0, 1].plot([r["wall_time"] for r in scored], [r["score"] for r in scored], ".", ms=3, label=name)
    axes[1, 1].plot(samples, [r["loss"] for r in steps], lw=0.6, label=name)
    acc = [r for r in epochs if "eval_accuracy" in r]
    axes[0, 2].plot([r["wall_time"] for r in acc], [100 * r["eval_accuracy"] for r in acc], "o-", ms=3, label=name)
    axes[1, 2].plot([r["samples"] for r in acc], [100 * r["eval_accuracy"] for r in acc], "o-", ms=3, label=name)


def write_report(out: Path, results: Mapping[str, object]) -> Path | None:
    """Plot every run in ``results`` (name -> FitResult) into ``out/report.png``.

    Uses matplotlib's object API (``Figure``, no pyplot), which needs no backend and leaves the
    caller's backend choice alone.

    Returns:
        The written path, or ``None`` when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("deba: matplotlib is not installed, so no report.png (pip install 'deba[examples]')")
        return None
    fig = Figure(figsize=(15, 8))
    axes = fig.subplots(2, 3)
    for name, res in results.items():
        _plot_run(axes, name, res)
    for ax, (title, ylabel) in zip([axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0], axes[1, 1], axes[1, 2]], _TITLES):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1, 1].set_yscale("log")
    fig.tight_layout()
    path = out / "report.png"
    fig.savefig(path, dpi=90)
    return path
