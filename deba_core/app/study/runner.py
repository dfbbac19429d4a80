"""Running the study: throughput tables, the fixed-batch sweep and its choice, the cells, resumable.

One JSON file per cell under ``<out>/cells/<task>/<method>-seed<k>.json``, one throughput table per
task under ``<out>/throughput/``, the sweep's choice under ``<out>/choices/``: a rerun skips what
exists, so a study runs in pieces. Within a seed the methods run one after another (interleaved
across seeds), so a drift in machine load hits every method alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from deba.app.study.analysis import choose_best, plateau_target
from deba.app.study.cells import build_model, build_optimizer, check_ran_as, run_cell
from deba.app.study.methods import method_config
from deba.app.study.spec import SWEEP, Preset, Task, sweep_name
from deba.app.study.throughput import measure_table, table_sizes
from deba.errors import DebaConfigError

__all__ = ["cell_path", "check_overrides", "load_task_data", "plan", "run_study", "write_json"]


def write_json(path: Path, data: Any) -> None:
    """Atomically: a study killed mid-write never leaves half a file to resume from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def cell_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / "cells" / task / f"{method}-seed{seed}.json"


def plan(preset: Preset, methods: tuple[str, ...] | None = None, tasks: tuple[str, ...] | None = None
         ) -> list[tuple[Task, str, int]]:
    """Every cell of the study in run order (``fixed-best`` waits for the sweep on seed 0).

    Raises:
        DebaConfigError: an unknown method or task.
    """
    methods = tuple(methods or preset.methods)
    from deba.app.study.spec import METHODS

    for m in methods:
        if m not in METHODS:
            raise DebaConfigError.single("methods", m, f"must be among {', '.join(METHODS)}")
    if "fixed-best" in methods and not preset.sweep:
        raise DebaConfigError.single("methods", "fixed-best", f"needs the fixed-batch sweep, which preset {preset.name} skips")
    known = [t.name for t in preset.tasks]
    for name in tasks or ():
        if name not in known:
            raise DebaConfigError.single("tasks", name, f"must be among the {preset.name} preset's {', '.join(known)}")
    cells: list[tuple[Task, str, int]] = []
    for task in (t for t in preset.tasks if tasks is None or t.name in tasks):
        if "fixed-best" in methods:
            cells.append((task, "fixed-small", 0))
            cells += [(task, sweep_name(k, rule), 0) for k, rule in SWEEP]
        for seed in range(preset.seeds):
            cells += [(task, m, seed) for m in methods if (task, m, seed) not in cells]
    return cells


def load_task_data(task: Task, data_dir: str | None, download: bool = False) -> Any:
    """The task's data: the same subset for every seed (seeds vary the weights and the order)."""
    from deba.app.data import load_dataset

    return load_dataset(task.dataset, data_dir=data_dir, download=download, channels=task.channels, size=task.size,
                        train_subset=task.train_subset, test_subset=task.test_subset, seed=0)


def _table(task: Task, data: Any, out: Path, device: str, log: Callable[[str], None]) -> dict[str, Any]:
    path = out / "throughput" / f"{task.name}.json"
    if path.exists():
        return json.loads(path.read_text())
    import deba

    t0 = time.perf_counter()
    probe = build_model(task, data, 0)
    top = deba.profile_for(probe).starting_at(task.batch).max_batch
    sizes = table_sizes(task.batch, min(top, 16 * task.batch))

    def build():
        model = build_model(task, data, 0)
        return model, build_optimizer(task, model)

    table = {"task": task.name, **measure_table(build, data, sizes, cap=task.max_micro_batch, device=device)}
    write_json(path, table)
    log(f"[throughput] {task.name}: " + ", ".join(f"{b}: {v:.0f}/s" for b, v in table["samples_per_s"].items())
        + f" ({time.perf_counter() - t0:.0f} s)")
    return table


def _choice(task: Task, out: Path, table: dict[str, Any]) -> tuple[int, str] | None:
    """The sweep's winner for ``fixed-best`` once every seed-0 sweep cell exists (saved once)."""
    path = out / "choices" / f"{task.name}.json"
    if path.exists():
        c = json.loads(path.read_text())
        check_ran_as(c, task, f"the sweep's choice {path}")
        return int(c["k"]), str(c["rule"])
    names = ["fixed-small"] + [sweep_name(k, rule) for k, rule in SWEEP]
    cells = [cell_path(out, task.name, n, 0) for n in names]
    if not all(p.exists() for p in cells):
        return None
    records = [json.loads(p.read_text()) for p in cells]
    for p, rec in zip(cells, records):
        check_ran_as(rec, task, f"the sweep cell {p}")
    target = plateau_target([records[0]])
    k, rule, why = choose_best(records, target, table["samples_per_s"])
    write_json(path, {"k": k, "rule": rule, "target": target, "why": why, "schedule": task.schedule, "epochs": task.epochs})
    return k, rule


def fixed_best_source(out: Path, task: str, best: tuple[int, str], seed: int) -> Path | None:
    """The finished cell that already is ``fixed-best`` for ``seed``, or ``None`` (it must be trained).

    Seed 0's sweep cell is the winner's run. A winner of 1x (either LR rule: the factor is 1) is the
    fixed starting batch itself, so every seed's ``fixed-small`` cell is its run; training it again
    would repeat the same deterministic run at the cost of a cell.

    Example:
        >>> fixed_best_source(Path("out"), "t", (1, "sqrt"), 0).name
        'fixed-small-seed0.json'
        >>> fixed_best_source(Path("out"), "t", (1, "sqrt"), 3) is None  # its fixed-small not run yet
        True
        >>> fixed_best_source(Path("out"), "t", (4, "linear"), 0).name
        'sweep-4x-linear-seed0.json'
        >>> fixed_best_source(Path("out"), "t", (4, "linear"), 1) is None
        True
    """
    k, rule = best
    if k == 1:
        path = cell_path(out, task, "fixed-small", seed)
        return path if seed == 0 or path.exists() else None
    return cell_path(out, task, sweep_name(k, rule), 0) if seed == 0 else None


def _finished(path: Path, method: str, overrides: dict[str, Any], task: Task) -> dict[str, Any] | None:
    """A finished cell's record; refuses one run with other ``deba`` overrides, another LR schedule
    or another length than ``task`` has now (never mixed in)."""
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    check_ran_as(rec, task, f"the finished cell {path}")
    wanted = overrides if method == "deba" else {}
    if rec.get("overrides", {}) != wanted:
        raise DebaConfigError.single("deba_overrides", wanted, f"differ from those of the finished cell {path} "
                                     f"({rec.get('overrides', {})})", remedy="Give an experiment its own --out folder.")
    return rec


def check_overrides(preset: Preset, overrides: dict[str, Any]) -> None:
    """Profile fields for the ``deba`` method, checked against every task's profile before anything trains."""
    import deba

    for field, value in overrides.items():
        if field not in deba.ArchitectureProfile.model_fields:
            raise DebaConfigError.single("--deba-set", f"{field}={value}", "names no profile field")
    if overrides:
        deba.load_profile("generic").replace(**overrides)


def run_study(preset: Preset, out: Path, *, methods: tuple[str, ...] | None = None, tasks: tuple[str, ...] | None = None,
              data_dir: str | None = None, device: str = "cpu", log: Callable[[str], None] = print,
              deba_overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run (or resume) every cell of ``preset``; returns the records of every planned cell.

    ``deba_overrides`` changes profile fields of the ``deba`` method only (an experiment: a folder
    holding cells run with other overrides is refused, never mixed).
    """
    import deba

    overrides = dict(deba_overrides or {})
    check_overrides(preset, overrides)
    cells = plan(preset, methods, tasks)
    records, cache = [], {}
    for i, (task, method, seed) in enumerate(cells, 1):
        path = cell_path(out, task.name, method, seed)
        rec = _finished(path, method, overrides, task)
        if rec is not None:
            records.append(rec)
            continue
        if task.name not in cache:
            cache.clear()
            data = load_task_data(task, data_dir, preset.download)
            cache[task.name] = (data, _table(task, data, out, device, log))
        data, table = cache[task.name]
        best = _choice(task, out, table) if method == "fixed-best" else None
        src = fixed_best_source(out, task.name, best, seed) if method == "fixed-best" else None
        found = _finished(src, "fixed-best", overrides, task) if src is not None else None
        if found is not None:
            rec = {**found, "method": "fixed-best", "reused_from": src.stem}
        else:
            detected = deba.profile_for(build_model(task, data, seed)).starting_at(task.batch)
            config = method_config(method, detected, task.batch, best, schedule=task.schedule)
            if method == "deba" and overrides:
                config = dataclasses.replace(config, profile=config.profile.replace(**overrides))
            rec = {**run_cell(task, method, config, seed, data, device), "overrides": overrides if method == "deba" else {}}
        write_json(path, rec)
        records.append(rec)
        acc = "diverged" if rec["final_accuracy"] is None else f"{100 * rec['final_accuracy']:.2f}%"
        log(f"[{i}/{len(cells)}] {task.name:15s} {method:16s} seed {seed}: acc {acc} "
            f"steps {rec['steps']:6d} samples {rec['samples']:8d} train {rec['train_time_s']:.1f}s "
            f"batch {rec['batch_range'][0]}-{rec['batch_range'][1]}")
    return records
