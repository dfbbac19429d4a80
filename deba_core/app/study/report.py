"""``results.json`` and ``results.md``: per task the target, the physical limit, and each method's
costs to the target and paired speedups (modelled and measured) with bootstrap 90 % intervals."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from deba.app.study.analysis import (bootstrap_mean, cost_to_target, plateau_gain, plateau_target, probe_modelled_time,
                                     run_modelled_time)
from deba.app.study.cells import ran_as
from deba.app.study.ceiling import goodput_ceiling, throughput_bound
from deba.app.study.spec import METHODS, Preset
from deba.errors import DebaConfigError

__all__ = ["analyse", "machine", "markdown", "summary", "truth_markdown"]


def machine() -> dict[str, Any]:
    """What the study ran on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _load(out: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/*.json"))]
    if not cells:
        raise DebaConfigError.single("out", str(out), "holds no study results (cells/*/*.json)")
    tables = {p.stem: json.loads(p.read_text()) for p in sorted((out / "throughput").glob("*.json"))}
    return cells, tables


def _full_run(record: Mapping[str, Any], table: Mapping[str, float], key: str) -> float:
    return record["train_time_s"] if key == "train_time_s" else run_modelled_time(record, table)


def _speedups(runs: Sequence[Mapping[str, Any]], base: Sequence[Mapping[str, Any]], target: float,
              table: Mapping[str, float], key: str) -> tuple[float | None, float | None, float | None, int]:
    """``(mean, low, high, censored)`` of the paired speedups over seeds.

    A seed on which the method never reached the target counts with the baseline's time to the
    target over the method's whole-run time, an upper bound on what it achieved (0 for a run that
    diverged; ``censored`` says how many such seeds there are): dropping those seeds would flatter a method that reached the
    target rarely. A seed whose baseline missed the target is left out.
    """
    by_seed = {r["seed"]: cost_to_target(r, target, table) for r in base}
    ratios, censored = [], 0
    for r in runs:
        mine, theirs = cost_to_target(r, target, table), by_seed.get(r["seed"])
        if theirs is None:
            continue
        if mine is None:
            censored += 1
            spent = _full_run(r, table, key)
            # a run that diverged never gets there: 0, not the ratio to the time it lasted
            ratios.append(0.0 if r.get("diverged") or spent <= 0 else theirs[key] / spent)
        elif mine[key] > 0:
            ratios.append(theirs[key] / mine[key])
    return (*bootstrap_mean(ratios), censored)


def _scheduled(record: Mapping[str, Any]) -> tuple[int, int]:
    """The smallest and largest batch the method chose: its start and every change.

    ``batch_range`` also counts the short last batch of an epoch (a fixed batch of 32 on 1,000
    samples trains one batch of 8 each epoch), which says nothing about the method.
    """
    start = record.get("fixed_batch") or record.get("initial_batch")
    if start is None:
        return tuple(record["batch_range"])  # type: ignore[return-value]
    sizes = [int(start), *(int(b) for _, b in record.get("changes") or ())]
    return min(sizes), max(sizes)


def _span(row: Mapping[str, Any]) -> str:
    lo, hi = row.get("scheduled_batch_range") or row["batch_range"]  # results.json files written before it existed
    return f"{lo}-{hi}"


def _row(runs: list[dict[str, Any]], cells: dict[str, list[dict[str, Any]]], target: float,
         table: Mapping[str, float], ceiling: float | None) -> dict[str, Any]:
    costs = [c for r in runs if (c := cost_to_target(r, target, table)) is not None]
    accs = [100 * r["final_accuracy"] for r in runs if r["final_accuracy"] is not None] or [float("nan")]
    mean = lambda key: statistics.fmean(c[key] for c in costs) if costs else None  # noqa: E731
    chosen = [_scheduled(r) for r in runs]
    row = {
        "label": runs[0].get("label"), "seeds": len(runs), "reached_target": len(costs),
        "diverged": sum(1 for r in runs if r.get("diverged")),
        "final_accuracy_pct": [statistics.fmean(accs), statistics.pstdev(accs) if len(accs) > 1 else 0.0],
        "to_target": {k: mean(k) for k in ("samples", "steps", "train_time_s", "modelled_time_s")},
        "samples": statistics.fmean(r["samples"] for r in runs), "steps": statistics.fmean(r["steps"] for r in runs),
        "batch_range": [min(r["batch_range"][0] for r in runs), max(r["batch_range"][1] for r in runs)],
        "scheduled_batch_range": [min(lo for lo, _ in chosen), max(hi for _, hi in chosen)],
        # The start-up probe's part of the modelled time (in every run, so in every time to target).
        "probe_modelled_s": statistics.fmean(probe_modelled_time(r, table) for r in runs),
    }
    for name in ("fixed-small", "fixed-best"):
        if cells.get(name):
            row[f"modelled_speedup_vs_{name}"] = _speedups(runs, cells[name], target, table, "modelled_time_s")
            row[f"measured_speedup_vs_{name}"] = _speedups(runs, cells[name], target, table, "train_time_s")
    s = (row.get("modelled_speedup_vs_fixed-small") or (None,))[0]
    row["share_of_ceiling"] = None if s is None or not ceiling else s / ceiling
    return row


def _task(name: str, cells: list[dict[str, Any]], table: dict[str, Any]) -> dict[str, Any]:
    by_method: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by_method.setdefault(c["method"], []).append(c)
    base = by_method.get("fixed-small", [])
    if not base:
        return {}
    sps = table["samples_per_s"]
    target = plateau_target(base)
    b0, budget = base[0]["initial_batch"], base[0]["budget_samples"]
    reach = [c["progress"] for r in base if (c := cost_to_target(r, target, sps)) is not None]
    upto = statistics.median(reach) if reach else 1.0
    ceiling = goodput_ceiling(base, sps, b0, budget, upto=upto)
    rows = {m: _row(runs, by_method, target, sps, ceiling) for m, runs in by_method.items() if m in METHODS}
    return {"target_accuracy_pct": 100 * target, "plateau_gain_pct": statistics.fmean(100 * plateau_gain(r) for r in base),
            "initial_batch": b0, "budget_samples": budget, "throughput": table,
            "throughput_bound": throughput_bound(sps, b0), "goodput_ceiling": ceiling,
            "goodput_ceiling_full_run": goodput_ceiling(base, sps, b0, budget), "ceiling_upto": upto,
            "methods": {m: rows[m] for m in METHODS if m in rows}}


def analyse(out: Path) -> dict[str, Any]:
    """Every figure of the study in ``out``, and every cell with its cost to the target."""
    cells, tables = _load(out)
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    result: dict[str, Any] = {"tasks": {}, "targets": {}, "throughput": tables, "cells": []}
    for name in tasks:
        mine = [c for c in cells if c["task"] == name]
        ran = sorted({ran_as(c) for c in mine}, key=repr)
        if len(ran) > 1:  # a target or a speedup across schedules or lengths would mean nothing
            raise DebaConfigError.single(f"cells of {name}", ran, "must all have run one schedule and length",
                                         remedy="Give each version of a task its own --out folder.")
        if name not in tables:
            continue
        t = _task(name, mine, tables[name])
        if not t:
            continue
        t["schedule"], t["epochs"] = ran[0]
        result["tasks"][name] = t
        result["targets"][name] = t["target_accuracy_pct"]
        sps = tables[name]["samples_per_s"]
        for c in mine:
            cost = cost_to_target(c, t["target_accuracy_pct"] / 100, sps)
            result["cells"].append({**c, "reached_target": cost is not None, "to_target": cost,
                                    "modelled_time_s": run_modelled_time(c, sps)})
    return result


def _ci(x: Sequence[float | None] | None) -> str:
    if not x or x[0] is None:
        return "-"
    m, lo, hi = x[:3]
    bound = "<= " if len(x) > 3 and x[3] else ""
    return f"{bound}{m:.2f}x [{lo:.2f}, {hi:.2f}]" + (f" ({x[3]} seed(s) missed)" if len(x) > 3 and x[3] else "")


def _probe(row: Mapping[str, Any]) -> str:
    probe = row.get("probe_modelled_s")  # absent from results.json files written before it existed
    return f" ({probe:.2f})" if probe else ""


def markdown(analysis: Mapping[str, Any]) -> str:
    """The headline table, one block per task."""
    lines = []
    if not analysis["tasks"]:
        return ("No task has fixed-small cells, so there is no target and no table: run `fixed-small` "
                "(or copy its cells into this folder) and `--analyse-only`.\n")
    for name, t in analysis["tasks"].items():
        tp = t["throughput"]
        spread = ", ".join(f"{b}: {v:.0f} ({tp['low'][b]:.0f}-{tp['high'][b]:.0f})" for b, v in tp["samples_per_s"].items())
        epochs = "" if t.get("epochs") is None else f", {t['epochs']:g} epochs"
        lines += [f"### {name}", "", f"LR schedule: {t.get('schedule', 'cosine')}{epochs}.",
                  f"Target {t['target_accuracy_pct']:.2f} % (fixed-small plateau - 0.3; its last 20 % gained "
                  f"{t['plateau_gain_pct']:.2f} points). Throughput bound {t['throughput_bound']:.2f}x, goodput ceiling "
                  f"{(t['goodput_ceiling'] or float('nan')):.2f}x to the target ({(t['goodput_ceiling_full_run'] or float('nan')):.2f}x "
                  f"over the whole run). Samples/s (median, range over {tp['rounds']} rounds): {spread}. Modelled s: "
                  "B / T(B) summed over the steps to the target, plus the start-up throughput probe's passes "
                  "(its part in brackets) for the methods that probe.", "",
                  "| method | reached | final acc % | samples to target | steps to target | measured s | modelled s (probe) | "
                  "modelled speedup vs fixed-small [90 % CI] | measured speedup | vs fixed-best (modelled) | share of ceiling | batch chosen |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for m, r in t["methods"].items():
            tt = r["to_target"]
            f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
            share = "-" if r["share_of_ceiling"] is None else f"{100 * r['share_of_ceiling']:.0f} %"
            reached = f"{r['reached_target']}/{r['seeds']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
            lines.append(
                f"| {m} | {reached} | {r['final_accuracy_pct'][0]:.2f} ± {r['final_accuracy_pct'][1]:.2f} | "
                f"{f(tt['samples'])} | {f(tt['steps'])} | {f(tt['train_time_s'], 1)} | {f(tt['modelled_time_s'], 2)}"
                f"{_probe(r)} | "
                f"{_ci(r.get('modelled_speedup_vs_fixed-small'))} | {_ci(r.get('measured_speedup_vs_fixed-small'))} | "
                f"{_ci(r.get('modelled_speedup_vs_fixed-best'))} | {share} | {_span(r)} |")
        lines.append("")
    return "\n".join(lines)


def truth_markdown(truth: Mapping[str, Any]) -> str:
    """The noise-scale ground truth: per task and point, ``B_simple`` against the branched critical batch.

    A file of the older steps-to-target method (no ``branch_loss``) gets a line saying so; its
    figures stay in its JSON.

    Example:
        >>> point = {"progress": 0.1, "b_simple": 150.0, "b_simple_low": 90.0, "b_crit": 64, "b_crit_upper": 128,
        ...          "ratio": 2.34, "ratio_is_upper_bound": False, "reference_spread": 0.004,
        ...          "branch_loss": {"32": 0.41, "64": 0.415, "128": 0.44}, "lr_rule": {"32": "linear", "64": "sqrt", "128": "sqrt"}}
        >>> t = {"method": "equal-samples branches", "branch_samples": 4096, "branch_seeds": [1, 2, 3], "tolerance": 0.02,
        ...      "points": [point]}
        >>> print(truth_markdown({"mlp": t}).splitlines()[-1])
        | 10% | 150 (90) | 64 | 128 | 2.34 | 0.40 % | 32: 0.4100 (linear), 64: 0.4150 (sqrt), 128: 0.4400 (sqrt) |
    """
    lines = []
    for name, t in truth.items():
        if not t.get("points") or "branch_loss" not in t["points"][0]:
            lines += [f"### Noise-scale truth: {name}", "", "Measured by the older steps-to-target method; see its JSON.", ""]
            continue
        lines += [f"### Noise-scale truth: {name}", "",
                  f"{t['method']}: {t['branch_samples']} samples per branch, data orders {t['branch_seeds']}, "
                  f"tolerance {100 * t['tolerance']:.0f} % of the B0 branch's loss.", "",
                  "| progress | B_simple (lower bound) | critical batch | first size that loses | B_simple / critical | "
                  "B0 loss spread over orders | branch loss by batch (LR rule) |", "|---|---|---|---|---|---|---|"]
        for p in t["points"]:
            f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
            loss = ", ".join(f"{b}: {f(v, 4)}" + (f" ({p['lr_rule'][b]})" if p["lr_rule"].get(b) else "")
                             for b, v in p["branch_loss"].items())
            spread = "-" if p["reference_spread"] is None else f"{100 * p['reference_spread']:.2f} %"
            ratio = "-" if p["ratio"] is None else ("<= " if p.get("ratio_is_upper_bound") else "") + f(p["ratio"], 2)
            # No branch lost: the critical batch is only known to be at least the largest branch.
            top = p["b_crit_upper"] is None and p["b_crit"] is not None and p["branch_loss"] \
                and p["b_crit"] == max(int(b) for b in p["branch_loss"])
            crit = f">= {p['b_crit']}" if top else f(p["b_crit"])
            loses = f"none up to {p['b_crit']}" if top else f(p["b_crit_upper"])
            lines.append(f"| {p['progress']:.0%} | {f(p['b_simple'])} ({f(p['b_simple_low'])}) | {crit} | "
                         f"{loses} | {ratio} | {spread} | {loss} |")
        lines.append("")
    return "\n".join(lines)


def summary(out: Path, preset: Preset, command: str) -> dict[str, Any]:
    """Analyse, plot and write ``results.json`` and ``results.md`` into ``out``."""
    from deba.app.study.plots import plot_all

    analysis = analyse(out)
    analysis.update({"preset": asdict(preset), "command": command, "machine": machine(),
                     "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    truth = out / "truth"
    if truth.exists():
        analysis["noise_truth"] = {p.stem: json.loads(p.read_text()) for p in sorted(truth.glob("*.json"))}
    plots = plot_all(out, analysis)
    (out / "results.json").write_text(json.dumps(analysis, indent=1, default=str))
    md = [f"# Study results: preset `{preset.name}`", "", preset.note, "", f"Command: `{command}`", "",
          f"Machine: {analysis['machine']}", "", markdown(analysis), truth_markdown(analysis.get("noise_truth", {}))]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    (out / "results.md").write_text("\n".join(md) + "\n")
    return analysis
