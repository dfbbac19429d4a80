"""The ``paper`` preset cut to fit one short GPU lease: what a GPU changes, measured.

Usage:
    python benchmarks/gpu_paper_check.py --data-dir DIR --out DIR [--device cuda] [--epochs auto|N]
        [--seeds N] [--seconds-per-run S] [--no-tables] [--analyse-only]

The ``paper`` preset (CIFAR-10, six full-size models, 100 epochs, 5 seeds) needs days of GPU time
and a download; the lease machine this project gets has neither (15 minutes, no network). This
script runs the part that fits, from the preset's own definitions:

1. **Throughput tables** of the preset's six models (timm, ``pretrained=False``) at 32x32x3 on the
   device, at ``B0/2 .. 16 B0`` with ``B0 = 128`` and the preset's 512-sample memory cap, 3 rounds
   per size: the physical input of the goodput rule (how much faster a larger batch runs there).
   Written to ``<out>/gpu-tables.json`` model by model.
2. **The preset's ResNet-18 task** (timm ``resnet18``, B0 128, SGD lr 0.1, the held schedule, 20
   evaluations on the full test set) on full **Fashion-MNIST** at 32x32x3 instead of CIFAR-10,
   every method but the sweep (``fixed-best`` needs 6 more runs), as a resumable study folder
   (``<out>/study``) that ``summary`` turns into ``results.md``. ``--epochs auto`` sizes the run
   from the measured ``T(B0)`` so a fixed-small run takes about ``--seconds-per-run``.

Stop it at any point (``timeout``): finished cells are on disk and ``--analyse-only`` writes the
tables from them. It has not run on a GPU yet (docs/benchmarks.md, "On a GPU": the one lease
this task was drawn was refused before a machine started); it was smoke-tested on the CPU with
``--device cpu --epochs 1 --seeds 1 --train-subset 384 --test-subset 128 --table-models resnet18``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from deba.app.study.cells import build_model, build_optimizer
from deba.app.study.report import summary
from deba.app.study.runner import load_task_data, run_study, write_json
from deba.app.study.spec import PRESETS, Preset
from deba.app.study.throughput import measure_table, table_sizes
from deba.errors import DebaConfigError

METHODS = ("fixed-small", "seesaw", "goodput-ungated", "deba-paper", "deba", "deba-uniform")
TRAIN_SAMPLES = 60_000  # full Fashion-MNIST


def paper_tasks(epochs: float, train: int | None = None, test: int | None = None) -> list:
    """The ``paper`` preset's tasks on Fashion-MNIST (the lease machine cannot download CIFAR-10)."""
    return [dataclasses.replace(t, name=f"{t.name}-fashion", dataset="fashion-mnist", epochs=epochs, evals=20,
                                train_subset=train, test_subset=test)
            for t in PRESETS["paper"].tasks]


def tables(out: Path, data_dir: str, device: str, models: list[str] | None = None, train: int | None = None) -> dict:
    """Throughput tables of the six paper models on ``device`` (resumable, one model at a time)."""
    path = out / "gpu-tables.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    tasks = paper_tasks(1, train)
    data = load_task_data(tasks[0], data_dir)
    for task in tasks:
        if task.name in done or (models and task.name.removesuffix("-fashion") not in models):
            continue
        t0 = time.perf_counter()

        def build(task=task):
            model = build_model(task, data, 0)
            return model, build_optimizer(task, model)

        sizes = table_sizes(task.batch, 16 * task.batch)
        table = measure_table(build, data, sizes, cap=task.max_micro_batch, rounds=3, seconds_per_size=0.3,
                              device=device)
        rates = table["samples_per_s"]
        done[task.name] = {**table, "model": task.model, "cap": task.max_micro_batch,
                           "bound": max(rates.values()) / rates[str(task.batch)], "seconds": time.perf_counter() - t0}
        write_json(path, done)
        print(f"[table] {task.model:24s} " + " ".join(f"{b}:{v:.0f}" for b, v in rates.items())
              + f"  bound {done[task.name]['bound']:.2f}x ({done[task.name]['seconds']:.0f} s)", flush=True)
    return done


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="a folder with the four Fashion-MNIST IDX .gz files")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", default="auto", help="'auto' (from the measured T(B0)) or a number")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seconds-per-run", type=float, default=40.0, help="what --epochs auto aims a fixed-small run at")
    p.add_argument("--no-tables", action="store_true")
    p.add_argument("--table-models", nargs="+", default=None, help="only these paper tasks' tables (default: all six)")
    p.add_argument("--train-subset", type=int, default=None, help="a smoke test's subset (default: all 60,000)")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--analyse-only", action="store_true")
    args = p.parse_args()
    if args.seeds < 1:
        raise DebaConfigError.single("--seeds", args.seeds, "must be >= 1")
    if args.seconds_per_run <= 0:
        raise DebaConfigError.single("--seconds-per-run", args.seconds_per_run, "must be > 0")
    out = Path(args.out)
    study = out / "study"
    settings = out / "settings.json"
    wanted = {"seeds": args.seeds, "device": args.device, "train_subset": args.train_subset,
              "test_subset": args.test_subset}
    if settings.exists():  # a resume keeps the epochs it started with (cells of two lengths never mix)
        saved = json.loads(settings.read_text())
        epochs = saved["epochs"]
        changed = {k: v for k, v in wanted.items() if k != "seeds" and saved.get(k) != v}
        if changed and not args.analyse_only:
            raise DebaConfigError.single("settings", changed, f"differ from the run in {out} ({saved})",
                                         remedy="Give another setting its own --out folder.")
        if args.analyse_only:  # analyse what was run, as it was run
            wanted = {k: saved.get(k, v) for k, v in wanted.items()}
        else:
            wanted["seeds"] = max(args.seeds, saved.get("seeds", 0))
    elif args.analyse_only:
        raise DebaConfigError.single("--out", str(out), "has no settings.json: nothing was run there to analyse")
    elif args.epochs == "auto":
        table = None if args.no_tables else \
            tables(out, args.data_dir, args.device, args.table_models, args.train_subset).get("resnet18-fashion")
        if table is None:
            raise DebaConfigError.single("--epochs", "auto", "needs the throughput tables (drop --no-tables)")
        rate = table["samples_per_s"]["128"]
        epochs = float(max(3, min(30, round(args.seconds_per_run * rate / (args.train_subset or TRAIN_SAMPLES)))))
    else:
        try:
            epochs = float(args.epochs)
        except ValueError:
            raise DebaConfigError.single("--epochs", args.epochs, "must be 'auto' or a number") from None
        if epochs <= 0:
            raise DebaConfigError.single("--epochs", args.epochs, "must be > 0")
    if not args.analyse_only:
        write_json(settings, {"epochs": epochs, **wanted})
    seeds = wanted["seeds"] if args.analyse_only else args.seeds
    task = next(t for t in paper_tasks(epochs, wanted["train_subset"], wanted["test_subset"])
                if t.name == "resnet18-fashion")
    preset = Preset("paper-gpu-check", (task,), seeds=seeds, methods=METHODS, sweep=False,
                    note=f"The paper preset's ResNet-18 task on Fashion-MNIST (32x32x3, train subset "
                         f"{task.train_subset or 'all'}), {epochs:g} epochs, {seeds} seeds, on {wanted['device']} "
                         "(benchmarks/gpu_paper_check.py).")
    print(f"[plan] {task.name}: {epochs:g} epochs, {seeds} seeds, methods {', '.join(METHODS)}", flush=True)
    if not args.analyse_only:
        if not args.no_tables:
            tables(out, args.data_dir, args.device, args.table_models, args.train_subset)
        run_study(preset, study, data_dir=args.data_dir, device=args.device, log=lambda m: print(m, flush=True))
    cmd = f"python benchmarks/gpu_paper_check.py --data-dir DIR --out {out} --device {args.device} --epochs {epochs:g}"
    summary(study, preset, cmd)
    print((study / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
