"""``report.png`` of ``deba run``: accuracy against modelled and measured time, batch size and
loss against samples (the first seed of each method)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["write_report"]


def _modelled_clock(steps: list[dict], table: Mapping[str, float] | None) -> list[float]:
    if not table:
        return [r["wall_time"] for r in steps]
    from deba.app.study.analysis import to_model

    tm, t, out = to_model(table), 0.0, []
    for r in steps:
        t += r["batch_size"] / tm.samples_per_second(r["batch_size"])
        out.append(t)
    return out


def _plot_run(axes, name: str, res, table: Mapping[str, float] | None) -> None:
    """Draw one run (a FitResult) into the 2x2 ``axes``."""
    steps = res.step_records()
    epochs = [r for r in res.history if r.get("kind") == "epoch" and "eval_accuracy" in r]
    clock = dict(zip((r["step"] for r in steps), _modelled_clock(steps, table)))
    acc = [100 * r["eval_accuracy"] for r in epochs]
    axes[0, 0].plot([clock.get(r["step"], 0.0) for r in epochs], acc, "o-", ms=3, label=name)
    axes[0, 1].plot([r["train_time"] for r in epochs], acc, "o-", ms=3, label=name)
    samples = [r["samples"] for r in steps]
    axes[1, 0].step(samples, [r["batch_size"] for r in steps], where="post", label=name)
    axes[1, 1].plot(samples, [r["loss"] for r in steps], lw=0.6, label=name)


_TITLES = (("test accuracy (%) vs modelled time (s): sum of B / T(B)", "accuracy %"),
           ("test accuracy (%) vs measured training time (s)", "accuracy %"),
           ("batch size vs samples", "batch"), ("training loss vs samples", "loss"))


def write_report(out: Path, results: Mapping[str, object], table: Mapping[str, float] | None = None) -> Path | None:
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
    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 2)
    for name, res in results.items():
        _plot_run(axes, name, res, table)
    for ax, (title, ylabel) in zip(axes.flat, _TITLES):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1, 0].set_yscale("log", base=2)
    axes[1, 1].set_yscale("log")
    fig.tight_layout()
    path = out / "report.png"
    fig.savefig(path, dpi=90)
    return path
