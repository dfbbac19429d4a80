"""The study's figures (matplotlib's object API: no pyplot, no backend choice made for the caller).

* ``speedups.png``: modelled speedup to the target vs fixed-small per method, 90 % intervals, the
  goodput ceiling (dashed) and the throughput bound (dotted) marked;
* ``trajectories.png``: batch size against samples, and the noise scale against progress (seed 0);
* ``accuracy_vs_time.png``: accuracy against modelled time (seed 0);
* ``noise_truth.png``: DEBA's ``B_simple`` against the branched-run critical batch (when measured).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from deba.app.study.analysis import run_modelled_time
from deba.app.study.spec import METHODS

__all__ = ["plot_all"]

_STYLE = {"deba": {"lw": 2.6, "zorder": 5}, "fixed-small": {"color": "k", "lw": 1.4}}


def _seed0(analysis: Mapping[str, Any], task: str) -> dict[str, dict[str, Any]]:
    return {c["method"]: c for c in analysis["cells"] if c["task"] == task and c["seed"] == 0}


def _speedups(path: Path, analysis: Mapping[str, Any], figure: type) -> Path:
    tasks = list(analysis["tasks"])
    fig = figure(figsize=(4.6 * len(tasks), 4.2))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, name in zip(axes, tasks):
        t = analysis["tasks"][name]
        methods = [m for m in METHODS if m in t["methods"]]
        ys, lo, hi = [], [], []
        for m in methods:
            s = t["methods"][m].get("modelled_speedup_vs_fixed-small") or (None, None, None)
            ys.append(s[0] or 0.0)
            lo.append((s[0] or 0.0) - (s[1] if s[1] is not None else s[0] or 0.0))
            hi.append((s[2] if s[2] is not None else s[0] or 0.0) - (s[0] or 0.0))
        ax.bar(range(len(methods)), ys, yerr=[lo, hi], capsize=3, color=["C0" if m != "deba" else "C3" for m in methods])
        if t.get("goodput_ceiling"):
            ax.axhline(t["goodput_ceiling"], ls="--", color="k", lw=1, label="goodput ceiling")
        if t.get("throughput_bound"):
            ax.axhline(t["throughput_bound"], ls=":", color="grey", lw=1, label="throughput bound")
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{name}: modelled speedup to target", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _trajectories(path: Path, analysis: Mapping[str, Any], figure: type) -> Path:
    tasks = list(analysis["tasks"])
    fig = figure(figsize=(4.8 * len(tasks), 6.4))
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, name in enumerate(tasks):
        cells = _seed0(analysis, name)
        for m in METHODS:
            c = cells.get(m)
            if c is None:
                continue
            xs, ys, n = [], [], 0
            for b, count in c["trajectory"]:
                xs += [n, n + b * count]
                ys += [b, b]
                n += b * count
            axes[0][j].plot(xs, ys, label=m, **_STYLE.get(m, {"lw": 1}))
            noise = [(row[0], row[1] if row[1] is not None else row[2]) for row in c.get("noise", [])]
            if noise and m in ("deba", "fixed-small", "goodput-ungated"):
                axes[1][j].plot([p for p, _ in noise], [v for _, v in noise], label=m, **_STYLE.get(m, {"lw": 1}))
        axes[0][j].set_yscale("log", base=2)
        axes[0][j].set_title(f"{name}: batch size vs samples (seed 0)", fontsize=9)
        axes[1][j].set_yscale("log")
        axes[1][j].set_title(f"{name}: noise scale B_simple vs progress", fontsize=9)
        for ax in axes[:, j]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _accuracy(path: Path, analysis: Mapping[str, Any], figure: type) -> Path:
    tasks = list(analysis["tasks"])
    fig = figure(figsize=(4.8 * len(tasks), 3.8))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, name in zip(axes, tasks):
        table = analysis["tasks"][name]["throughput"]["samples_per_s"]
        for m, c in _seed0(analysis, name).items():
            if m not in METHODS:
                continue
            xs = [run_modelled_time(c, table, p["steps"]) for p in c["curve"]]
            ax.plot(xs, [100 * p["accuracy"] for p in c["curve"]], label=m, **_STYLE.get(m, {"lw": 1}))
        ax.axhline(analysis["tasks"][name]["target_accuracy_pct"], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("modelled time (s)")
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{name} (seed 0; dashed: target)", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _truth(path: Path, truth: Mapping[str, Any], figure: type) -> Path:
    fig = figure(figsize=(5, 4))
    ax = fig.subplots()
    for name, t in truth.items():
        pts = [p for p in t["points"] if p.get("b_crit") and p.get("b_simple")]
        dots = ax.scatter([p["b_crit"] for p in pts], [p["b_simple"] for p in pts], label=name)
        for p in pts:
            ax.annotate(f"{p['progress']:.0%}", (p["b_crit"], p["b_simple"]), fontsize=7)
            if "branch_loss" not in p:
                continue  # the older steps-to-target method: a fitted point, no range
            # the critical batch lies between the last size that did not lose and the first that did;
            # with none that lost it is a lower bound (a dotted bar to the right)
            hi = p.get("b_crit_upper")
            ax.plot([p["b_crit"], hi or 2 * p["b_crit"]], [p["b_simple"]] * 2, color=dots.get_facecolor()[0],
                    lw=1, ls="-" if hi else ":")
    lim = [1, max([1] + [max(p.get("b_crit_upper") or 2 * (p.get("b_crit") or 1), p.get("b_simple") or 1)
                         for t in truth.values() for p in t["points"]]) * 2]
    ax.plot(lim, lim, ls="--", color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("critical batch (equal-sample branches; bar: to the first size that loses)")
    ax.set_ylabel("DEBA's B_simple")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot_all(out: Path, analysis: Mapping[str, Any]) -> list[Path]:
    """Every figure; ``[]`` when matplotlib is not installed or no task could be analysed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    # No analysed task (e.g. --methods without fixed-small: no target): only the truth plot, if any.
    paths = [] if not analysis.get("tasks") else [
        _speedups(out / "speedups.png", analysis, Figure), _trajectories(out / "trajectories.png", analysis, Figure),
        _accuracy(out / "accuracy_vs_time.png", analysis, Figure)]
    if analysis.get("noise_truth"):
        paths.append(_truth(out / "noise_truth.png", analysis["noise_truth"], Figure))
    return paths
