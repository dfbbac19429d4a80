"""The architecture study: DEBA against fixed batches and peer methods, per architecture.

For each architecture (timm, random weights) and each method, a few seeds are trained on
Fashion-MNIST (padded to 32x32, repeated over 3 channels) or, in the ``paper`` preset, CIFAR. One
JSON file per cell (architecture, method, seed) under ``<out>/cells/``: an interrupted study
resumes where it stopped. ``analyse`` turns the cells into figures per (architecture, method):
wall time, optimizer steps and samples to a target accuracy, final accuracy, DEBA's overhead
share, and speedups against the ``fixed-small`` baseline, next to the throughput bound measured on
the same machine in the same study run.

Methods:

* ``fixed-small`` - the profile's initial batch (the paper's baseline);
* ``fixed-large`` - a fixed large batch (``large_factor`` x initial) with linear LR scaling;
* ``deba`` - the architecture's built-in profile with ``equal-weight``;
* ``deba-uniform`` - the same strategy with the ``generic`` profile for every architecture;
* ``noise-scale`` - the gradient-noise-scale rule (McCandlish et al.; AdaptDL), the built-in profile's bounds;
* ``norm-test`` - the adaptive-sampling norm test (Byrd et al.; Bollapragada et al.), same bounds.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.profiles.loading import load_profile

__all__ = ["ArchSpec", "METHODS", "PRESETS", "Preset", "analyse", "checked_plan", "measure_throughput", "plan", "run_cell",
           "run_study"]

METHODS = ("fixed-small", "fixed-large", "deba", "deba-uniform", "noise-scale", "norm-test")


@dataclass(frozen=True)
class ArchSpec:
    """One architecture of the study and how much training it gets."""

    profile: str
    model: str
    train_subset: int | None
    test_subset: int | None
    epochs: int
    optimizer: str = "sgd"
    lr: float = 0.05
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    max_micro_batch: int = 256


@dataclass(frozen=True)
class Preset:
    """A study size: which architectures, seeds and data."""

    name: str
    archs: tuple[ArchSpec, ...]
    seeds: int
    dataset: str = "fashion-mnist"
    download: bool = False
    large_factor: int = 4
    # Decision interval: "quarter-epoch" = a quarter of an epoch's steps at the initial batch (so
    # short CPU runs decide on the same time scale as the paper's epoch-level runs, just finer);
    # an int = that many steps; None = each profile's own.
    interval: int | str | None = "quarter-epoch"
    note: str = ""


_VIT_SMALL = {"img_size": 32, "patch_size": 4}

# Sized for 2 CPU cores from throughput measured here (training samples/s on 32x32 at batch 32-128,
# in a cpu-preset run: ResNet-18 160-215, ResNet-50 ~110, DenseNet-121 125-175, EfficientNet-B0
# ~150, MobileNet-V3 ~210, the 4-pixel-patch tiny ViT ~50), so that a run trains for 25-100 s.
PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick",
        (
            ArchSpec("resnet18", "resnet18", 1600, 500, 3),
            ArchSpec("mobilenetv3", "mobilenetv3_large_100", 1200, 500, 3, optimizer="adamw", lr=2e-3),
        ),
        seeds=1,
        note="1 seed, 2 architectures, every method: a smoke-scale study for this machine (< 10 minutes).",
    ),
    "cpu": Preset(
        "cpu",
        (
            ArchSpec("resnet18", "resnet18", 2400, 1000, 4),
            ArchSpec("resnet50", "resnet50", 900, 500, 4),
            ArchSpec("densenet121", "densenet121", 800, 500, 4),
            # Depthwise nets barely move in a few hundred SGD steps from scratch; AdamW trains them.
            ArchSpec("efficientnet_b0", "efficientnet_b0", 1000, 500, 4, optimizer="adamw", lr=2e-3),
            ArchSpec("mobilenetv3", "mobilenetv3_large_100", 1200, 500, 4, optimizer="adamw", lr=2e-3),
            # The 4-pixel-patch tiny ViT trains at only ~50 samples/s here (64 tokens, attention on CPU).
            ArchSpec("vit_b16", "vit_tiny_patch16_224", 1200, 500, 4, optimizer="adamw", lr=1e-3,
                     model_kwargs=_VIT_SMALL),
        ),
        seeds=3,
        note="3 seeds, all six architectures on Fashion-MNIST subsets, about 2 hours on 2 CPU cores.",
    ),
    "paper": Preset(
        "paper",
        (
            ArchSpec("resnet18", "resnet18", None, None, 100),
            ArchSpec("resnet50", "resnet50", None, None, 100),
            ArchSpec("densenet121", "densenet121", None, None, 100),
            ArchSpec("efficientnet_b0", "efficientnet_b0", None, None, 100),
            ArchSpec("mobilenetv3", "mobilenetv3_large_100", None, None, 100),
            ArchSpec("vit_b16", "vit_base_patch16_224", None, None, 100, optimizer="adamw", lr=5e-4,
                     model_kwargs=_VIT_SMALL),
        ),
        seeds=5,
        dataset="cifar10",
        download=True,
        interval="quarter-epoch",
        note="The paper's setting: full CIFAR-10 (torchvision download), full-size models, 5 seeds; for GPUs.",
    ),
}


def plan(preset: Preset, methods: tuple[str, ...] = METHODS,
         archs: tuple[str, ...] | None = None) -> list[tuple[ArchSpec, str, int]]:
    """Every cell of the study, in run order (baseline first, so targets exist early).

    ``archs`` keeps only those architectures (profile names) of the preset, in the preset's order.
    """
    for m in methods:
        if m not in METHODS:
            raise DebaConfigError.single("methods", m, f"must be among {', '.join(METHODS)}")
    known = [a.profile for a in preset.archs]
    for name in archs or ():
        if name not in known:
            raise DebaConfigError.single("archs", name, f"must be among the {preset.name} preset's {', '.join(known)}")
    chosen = [a for a in preset.archs if archs is None or a.profile in archs]
    return [(a, m, s) for a in chosen for s in range(preset.seeds) for m in methods]


def checked_plan(preset: Preset, methods: tuple[str, ...] = METHODS, archs: tuple[str, ...] | None = None,
                 deba_overrides: dict[str, Any] | None = None) -> tuple[list[tuple[ArchSpec, str, int]], list[ArchSpec]]:
    """``plan`` plus the architectures it covers, with ``deba_overrides`` checked against each one's
    profile, so bad values fail before anything trains."""
    cells = plan(preset, methods, archs)
    chosen = list({a.profile: a for a, _, _ in cells}.values())
    for arch in chosen:
        _profile_for(preset, arch, "deba", deba_overrides)
    return cells, chosen


def _cell_path(out: Path, arch: ArchSpec, method: str, seed: int) -> Path:
    return out / "cells" / arch.profile / f"{method}-seed{seed}.json"


def _interval(preset: Preset, arch: ArchSpec, profile: ArchitectureProfile) -> int | str:
    if preset.interval == "quarter-epoch":
        if arch.train_subset is None:
            return "epoch"
        return max(1, round(arch.train_subset / profile.initial_batch / 4))
    return preset.interval if preset.interval is not None else profile.interval


def _profile_for(preset: Preset, arch: ArchSpec, method: str,
                 deba_overrides: dict[str, Any] | None = None) -> tuple[ArchitectureProfile, str, int | None, float]:
    """(profile, strategy, fixed batch, LR multiplier) of a method.

    ``deba_overrides`` (profile fields) apply to the ``deba`` method only: the experiments that test
    what would close a gap (``deba bench --deba-set lr_scaling=sqrt``) change DEBA, not its baselines.
    """
    base = load_profile(arch.profile)
    base = base.replace(interval=_interval(preset, arch, base))
    base = base.replace(max_micro_batch=arch.max_micro_batch)
    if method == "fixed-small":
        return base, "equal-weight", base.initial_batch, 1.0
    if method == "fixed-large":
        large = base.initial_batch * preset.large_factor
        return base, "equal-weight", large, float(preset.large_factor)  # linear LR scaling
    if method == "deba":
        return (base.replace(**deba_overrides) if deba_overrides else base), "equal-weight", None, 1.0
    if method == "deba-uniform":
        generic = load_profile("generic").replace(max_micro_batch=arch.max_micro_batch)
        generic = generic.replace(interval=_interval(preset, arch, generic))
        return generic, "equal-weight", None, 1.0
    return base, method, None, 1.0


def _build(preset: Preset, arch: ArchSpec, data, seed: int) -> torch.nn.Module:
    from deba.app.models import make_model

    torch.manual_seed(seed)
    if arch.model_kwargs:
        import timm

        return timm.create_model(arch.model, pretrained=False, num_classes=data.num_classes, in_chans=data.channels,
                                 **arch.model_kwargs)
    return make_model(arch.model, in_channels=data.channels, num_classes=data.num_classes, size=data.size)


def _optimizer(arch: ArchSpec, model: torch.nn.Module, lr_mult: float) -> torch.optim.Optimizer:
    if arch.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=arch.lr * lr_mult, weight_decay=0.05)
    return torch.optim.SGD(model.parameters(), lr=arch.lr * lr_mult, momentum=0.9, weight_decay=5e-4)


def _overrides_for(method: str, deba_overrides: dict[str, Any] | None) -> dict[str, Any]:
    return dict(deba_overrides or {}) if method == "deba" else {}


def run_cell(preset: Preset, arch: ArchSpec, method: str, seed: int, data, device: str = "cpu",
             deba_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one cell and return its record."""
    from deba.training.fit import fit

    profile, strategy, fixed, lr_mult = _profile_for(preset, arch, method, deba_overrides)
    model = _build(preset, arch, data, seed)
    opt = _optimizer(arch, model, lr_mult)
    t0 = time.perf_counter()
    result = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile=profile,
                 strategy=strategy, epochs=arch.epochs, eval_data=data.test, device=device, progress=False, seed=seed,
                 fixed_batch=fixed, tensorboard=False)
    steps = result.step_records()
    epochs = [r for r in result.history if r.get("kind") == "epoch"]
    return {
        "preset": preset.name, "arch": arch.profile, "model": arch.model, "method": method, "seed": seed,
        "profile": profile.name, "strategy": strategy, "fixed_batch": fixed, "lr": arch.lr * lr_mult,
        "overrides": _overrides_for(method, deba_overrides),
        "epochs": arch.epochs, "train_samples": len(data.train), "test_samples": len(data.test),
        "final_accuracy": result.final.get("eval_accuracy"), "steps": result.steps, "samples": result.samples,
        "train_time": epochs[-1]["train_time"] if epochs else None, "wall_time": time.perf_counter() - t0,
        "deba_time": epochs[-1]["deba_time"] if epochs else None,
        "curve": [{"epoch": e["epoch"] + 1, "train_time": e["train_time"], "samples": e["samples"], "steps": e["step"],
                   "accuracy": e.get("eval_accuracy")} for e in epochs],
        "trajectory": [[r["samples"], r["batch_size"]] for r in steps],
        "batch_sizes": sorted({r["batch_size"] for r in steps}),
        # Each decision interval's metrics, score and verdict (for fixed batches: what DEBA would have
        # said), so a reading can tell a discriminating signal from a schedule.
        "decisions": [{"step": r["step"], "score": r["score"], "action": r["action"], "reason": r["reason"],
                       "metrics": r["metrics"]} for r in steps if r.get("metrics")],
    }


def measure_throughput(arch: ArchSpec, data, batches: list[int], device: str = "cpu", steps: int = 2) -> dict[int, float]:
    """Training samples/s at each batch size (forward, backward, optimizer step; micro-batched at the cap)."""
    model = _build(PRESETS["quick"], arch, data, 0).to(device)
    opt = _optimizer(arch, model, 1.0)
    x, y = data.train.tensors
    out = {}
    for b in batches:
        reps = -(-b // len(y))
        xb, yb = x.repeat(reps, 1, 1, 1)[:b].to(device), y.repeat(reps)[:b].to(device)
        out[b] = timed_train_steps(model, opt, (xb, yb), cap=arch.max_micro_batch, steps=steps)
    return out


def timed_train_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple, *, cap: int | None,
                      steps: int = 3) -> float:
    """Samples/s of full training steps on ``batch`` (one warm-up step first)."""
    from deba.training.batching import run_micro_batches

    model.train()

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        run_micro_batches(model, batch, torch.nn.functional.cross_entropy, cap=cap)
        opt.step()

    one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    return len(batch[1]) * steps / (time.perf_counter() - t0)


def _allowed_batches(profile: ArchitectureProfile) -> list[int]:
    out, b = [], profile.min_batch
    while b < profile.max_batch:
        out.append(b)
        b *= 2
    out.append(profile.max_batch)
    return sorted(set(out + [profile.initial_batch]))


def _measure_missing_throughput(preset: Preset, chosen: list[ArchSpec], out: Path, data_dir: str | None, device: str,
                                log: Callable[[str], None]) -> None:
    """Measure and save each architecture's throughput bound unless a file for it exists."""
    from deba.app.data import load_dataset

    for arch in chosen:
        tp_path = out / "throughput" / f"{arch.profile}.json"
        if tp_path.exists():
            continue
        data = load_dataset(preset.dataset, data_dir=data_dir, download=preset.download, channels=3, size=32,
                            train_subset=arch.train_subset, test_subset=arch.test_subset, seed=0)
        profile = load_profile(arch.profile)
        t0 = time.perf_counter()
        tp = measure_throughput(arch, data, _allowed_batches(profile), device=device)
        tp_path.parent.mkdir(parents=True, exist_ok=True)
        tp_path.write_text(json.dumps({"arch": arch.profile, "samples_per_s": {str(k): v for k, v in tp.items()}}))
        log(f"[throughput] {arch.profile}: " + ", ".join(f"{k}:{v:.0f}/s" for k, v in tp.items())
            + f" ({time.perf_counter() - t0:.0f}s)")


def _finished_cell(path: Path, method: str, deba_overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """The record of a finished cell, or ``None`` when it has not run.

    Raises:
        DebaConfigError: when the finished cell ran with other ``deba`` overrides (never mixed in).
    """
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    wanted = _overrides_for(method, deba_overrides)
    if rec.get("overrides", {}) != wanted:
        raise DebaConfigError.single(
            "deba_overrides", wanted, f"differ from those of the finished cell {path} ({rec.get('overrides', {})})",
            remedy="Give an experiment with other profile values its own --out folder.")
    return rec


def _save_cell(path: Path, rec: dict[str, Any]) -> None:
    """Write a cell record atomically, so an interrupted study never leaves half a cell to resume from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, path)


def run_study(preset: Preset, out: Path, *, methods: tuple[str, ...] = METHODS, data_dir: str | None = None,
              device: str = "cpu", log: Callable[[str], None] = print, archs: tuple[str, ...] | None = None,
              deba_overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run (or resume) every cell of ``preset``; returns all cell records.

    ``archs`` restricts the run to some architectures; ``deba_overrides`` changes profile fields of
    the ``deba`` method (an experiment: give it its own ``out`` folder, since a finished cell run
    with other overrides is refused rather than mixed in). ``out`` is created only once there is
    something to write, so a plan or data error leaves no folder behind.
    """
    from deba.app.data import load_dataset

    cells, chosen = checked_plan(preset, methods, archs, deba_overrides)
    _measure_missing_throughput(preset, chosen, out, data_dir, device, log)
    records = []
    data_cache: dict[tuple[str, int], Any] = {}
    for i, (arch, method, seed) in enumerate(cells, 1):
        path = _cell_path(out, arch, method, seed)
        rec = _finished_cell(path, method, deba_overrides)
        if rec is not None:
            records.append(rec)
            continue
        key = (arch.profile, seed)
        if key not in data_cache:
            data_cache.clear()
            data_cache[key] = load_dataset(preset.dataset, data_dir=data_dir, download=preset.download, channels=3,
                                           size=32, train_subset=arch.train_subset, test_subset=arch.test_subset,
                                           seed=seed)
        rec = run_cell(preset, arch, method, seed, data_cache[key], device=device, deba_overrides=deba_overrides)
        _save_cell(path, rec)
        records.append(rec)
        acc = rec["final_accuracy"]
        log(f"[{i}/{len(cells)}] {arch.profile:15s} {method:13s} seed {seed}: acc {100 * (acc or 0):.2f}% "
            f"steps {rec['steps']:5d} train {rec['train_time']:.1f}s batches {rec['batch_sizes'][0]}-{rec['batch_sizes'][-1]}")
    return records


# Analysis ------------------------------------------------------------------------------------------


def _to_target(curve: list[dict[str, Any]], target: float) -> dict[str, float] | None:
    for point in curve:
        if point["accuracy"] is not None and point["accuracy"] >= target:
            return point
    return None


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _method_row(runs: list[dict[str, Any]], base: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """One (architecture, method) row: seeds reaching ``target``, costs to it, speedups, accuracy."""
    base_by_seed = {c["seed"]: c for c in base}
    wall_speed, step_speed, t_to, s_to, n_to, reached = [], [], [], [], [], 0
    for c in runs:
        hit = _to_target(c["curve"], target)
        # Speedups pair each seed with the baseline of the same seed (seed 0's when it is missing).
        b_hit = _to_target(base_by_seed.get(c["seed"], base[0])["curve"], target)
        if hit is None:
            continue
        reached += 1
        t_to.append(hit["train_time"])
        s_to.append(hit["steps"])
        n_to.append(hit["samples"])
        if b_hit is not None:
            wall_speed.append(b_hit["train_time"] / hit["train_time"])
            step_speed.append(b_hit["steps"] / hit["steps"])
    acc_m, acc_sd = _mean_sd([100 * c["final_accuracy"] for c in runs])
    share = [c["deba_time"] / c["train_time"] for c in runs if c.get("deba_time") is not None and c["train_time"]]
    return {
        "seeds": len(runs),
        "reached_target": reached,
        "time_to_target_s": _mean_sd(t_to),
        "steps_to_target": _mean_sd(s_to),
        "samples_to_target": _mean_sd(n_to),
        "final_accuracy_pct": (acc_m, acc_sd),
        "wall_speedup": _mean_sd(wall_speed),
        "step_speedup": _mean_sd(step_speed),
        "deba_overhead_pct": _mean_sd([100 * s for s in share]),
        "batch_range": [min(min(c["batch_sizes"]) for c in runs), max(max(c["batch_sizes"]) for c in runs)],
        "overrides": runs[0].get("overrides", {}),
    }


def _throughput(out: Path, arch: str) -> tuple[dict[str, float], float | None]:
    """(samples/s per batch size, best throughput over the initial batch's) from the study's file."""
    tp_file = out / "throughput" / f"{arch}.json"
    throughput = json.loads(tp_file.read_text())["samples_per_s"] if tp_file.exists() else {}
    tp_base = throughput.get(str(load_profile(arch).initial_batch))
    bound = (max(throughput.values()) / tp_base) if throughput and tp_base else None
    return throughput, bound


def analyse(out: Path, target_fraction: float = 0.98) -> dict[str, Any]:
    """Figures per (architecture, method) from the cell files (and throughput files) under ``out``.

    Raises:
        DebaConfigError: when ``out`` holds no cell files.
    """
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/*.json"))]
    if not cells:
        raise DebaConfigError.single("out", str(out), "holds no study results (cells/*/*.json)")
    archs = sorted({c["arch"] for c in cells}, key=lambda a: [c["arch"] for c in cells].index(a))
    result: dict[str, Any] = {"target_fraction": target_fraction, "architectures": {}}
    for arch in archs:
        mine = [c for c in cells if c["arch"] == arch]
        base = [c for c in mine if c["method"] == "fixed-small"]
        if not base:
            continue
        target = target_fraction * min(c["final_accuracy"] for c in base)
        throughput, bound = _throughput(out, arch)
        rows = {}
        for method in METHODS:
            runs = [c for c in mine if c["method"] == method]
            if runs:
                rows[method] = _method_row(runs, base, target)
        result["architectures"][arch] = {"target_accuracy_pct": 100 * target, "throughput": throughput,
                                         "throughput_bound": bound, "methods": rows}
    return result


def _fmt(pair: tuple[float | None, float | None], digits: int = 2, suffix: str = "") -> str:
    m, sd = pair
    if m is None:
        return "-"
    return f"{m:.{digits}f}{suffix} ± {sd:.{digits}f}" if sd else f"{m:.{digits}f}{suffix}"


def markdown_table(analysis: dict[str, Any]) -> str:
    """The study's main table."""
    lines = ["| architecture | method | final acc % | reached | time to target s | steps to target | wall speedup | "
             "step speedup | throughput bound | DEBA overhead % | batch range |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arch, a in analysis["architectures"].items():
        bound = a["throughput_bound"]
        for method, r in a["methods"].items():
            label = method + (" (" + ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) + ")"
                              if r.get("overrides") else "")
            lines.append(
                f"| {arch} (target {a['target_accuracy_pct']:.1f}%) | {label} | {_fmt(r['final_accuracy_pct'])} | "
                f"{r['reached_target']}/{r['seeds']} | {_fmt(r['time_to_target_s'], 1)} | {_fmt(r['steps_to_target'], 0)} | "
                f"{_fmt(r['wall_speedup'], 2, 'x')} | {_fmt(r['step_speedup'], 2, 'x')} | "
                f"{'-' if bound is None else f'{bound:.2f}x'} | {_fmt(r['deba_overhead_pct'], 2)} | "
                f"{r['batch_range'][0]}-{r['batch_range'][1]} |"
            )
    return "\n".join(lines)


def _plot_speedups(path: Path, analysis: dict[str, Any], figure_cls: type) -> Path:
    """speedups.png: wall-clock and step speedup per architecture and method, with error bars."""
    archs = list(analysis["architectures"])
    fig = figure_cls(figsize=(14, 4.5))
    axes = fig.subplots(1, 2)
    width = 0.13
    for k, (key, ax) in enumerate(zip(("wall_speedup", "step_speedup"), axes)):
        for j, method in enumerate(METHODS):
            xs, ys, es = [], [], []
            for i, arch in enumerate(archs):
                r = analysis["architectures"][arch]["methods"].get(method)
                if r and r[key][0] is not None:
                    xs.append(i + (j - 2.5) * width)
                    ys.append(r[key][0])
                    es.append(r[key][1] or 0)
            ax.bar(xs, ys, width, yerr=es, capsize=2, label=method)
        if key == "wall_speedup":
            for i, arch in enumerate(archs):
                b = analysis["architectures"][arch]["throughput_bound"]
                if b:
                    ax.hlines(b, i - 0.45, i + 0.45, colors="k", linestyles="dashed", lw=1)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(archs)), archs, rotation=20)
        ax.set_title("wall-clock speedup to target (dashed: throughput bound)" if k == 0 else "optimizer-step speedup to target")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _plot_trajectories(path: Path, out: Path, archs: list[str], figure_cls: type) -> Path:
    """trajectories.png: batch size against samples trained, seed 0, one panel per architecture."""
    cols = min(3, len(archs))
    rows = -(-len(archs) // cols)
    fig = figure_cls(figsize=(5 * cols, 3.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(archs):]:
        ax.set_visible(False)
    for ax, arch in zip(axes.flat, archs):
        for method in METHODS:
            f = out / "cells" / arch / f"{method}-seed0.json"
            if f.exists():
                traj = json.loads(f.read_text())["trajectory"]
                # DEBA thick and on top, the peers dotted/dashed: identical trajectories stay visible
                style = {"deba": {"lw": 2.6, "zorder": 5}, "noise-scale": {"ls": ":", "lw": 1.4, "zorder": 6},
                         "norm-test": {"ls": "--", "lw": 1.0, "zorder": 7}}.get(method, {"lw": 1})
                ax.step([t[0] for t in traj], [t[1] for t in traj], where="post", label=method, **style)
        ax.set_title(f"{arch}: batch size vs samples trained (seed 0)", fontsize=9)
        ax.set_yscale("log", base=2)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def plot(out: Path, analysis: dict[str, Any]) -> list[Path]:
    """speedups.png (per architecture and method, with error bars) and trajectories.png (seed 0).

    Uses matplotlib's object API (``Figure``, no pyplot), which needs no backend and leaves the
    caller's backend choice alone. Returns ``[]`` when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return []
    return [_plot_speedups(out / "speedups.png", analysis, Figure),
            _plot_trajectories(out / "trajectories.png", out, list(analysis["architectures"]), Figure)]


def machine() -> dict[str, Any]:
    """What the study ran on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def summary(out: Path, preset: Preset, command: str) -> dict[str, Any]:
    """Analyse, plot and write ``results.json`` and ``results.md`` into ``out``."""
    analysis = analyse(out)
    analysis.update({"preset": asdict(preset), "command": command, "machine": machine(),
                     "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    plots = plot(out, analysis)
    (out / "results.json").write_text(json.dumps(analysis, indent=2, default=str))
    md = [f"# Study results: preset `{preset.name}`", "", preset.note, "", f"Command: `{command}`", "",
          f"Machine: {analysis['machine']}", "", markdown_table(analysis), ""]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    (out / "results.md").write_text("\n".join(md) + "\n")
    return analysis
