"""``deba bench``: the study (see ``deba.app.study`` and docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from deba.app.command_table import command
from deba.app.commands.common import check_device, check_int
from deba.app.models import SMALL_MODELS
from deba.app.study import METHODS, PRESETS, Preset, load_task_data, noise_truth, plan, run_study, summary
from deba.app.study.runner import check_overrides
from deba.errors import DebaConfigError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--out", default=None, help="results folder (default runs/study-<preset>); reruns resume")
    p.add_argument("--data-dir", default=None,
                   help="a folder of the four IDX .gz files (Fashion-MNIST, MNIST) or the CIFAR root (paper)")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS, help="default: the preset's")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="only these tasks of the preset")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the preset's)")
    p.add_argument("--deba-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a profile field of the `deba` method only (repeatable; an experiment: use its own --out)")
    p.add_argument("--no-truth", action="store_true", help="skip the branched critical-batch runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="print the plan and check the set-up; train nothing")
    p.add_argument("--analyse-only", action="store_true", help="only (re)build results.json/.md and the plots")


def parse_deba_set(items: list[str]) -> dict[str, Any]:
    """``["lr_scaling=sqrt", "warmup=8"]`` -> ``{"lr_scaling": "sqrt", "warmup": 8}`` (values read as YAML scalars).

    Raises:
        DebaConfigError: naming ``--deba-set`` and echoing the bad item.
    """
    out: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or not field.strip():
            raise DebaConfigError.single("--deba-set", item, "must be FIELD=VALUE, e.g. lr_scaling=sqrt")
        try:
            out[field.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise DebaConfigError.single("--deba-set", item, f"has a value that is not a YAML scalar ({exc})") from exc
    return out


def checked_preset(args: argparse.Namespace) -> Preset:
    """Check every ``deba bench`` option up front; the preset, with ``--seeds`` applied.

    Raises:
        DebaConfigError: for the first bad value, naming its option.
    """
    check_int("--seeds", args.seeds, 1)
    check_device("--device", args.device)
    preset = PRESETS[args.preset]
    return preset if args.seeds is None else dataclasses.replace(preset, seeds=args.seeds)


def _dry_run(preset: Preset, cells: list, data_dir: str | None) -> int:
    """Print the plan and check the models and the data; train nothing."""
    tasks = list({t.name: t for t, _, _ in cells}.values())
    print(f"preset {preset.name}: {len(tasks)} tasks, {len(cells)} runs, {preset.seeds} seeds, methods "
          f"{', '.join(dict.fromkeys(m for _, m, _ in cells))}" + (" (data downloaded by torchvision)" if preset.download else ""))
    for t in tasks:
        if t.model not in SMALL_MODELS:
            try:
                import timm
            except ImportError as exc:
                raise DebaConfigError.single("timm", None, "is needed for this preset", remedy="pip install 'deba[timm]'") from exc
            if t.model not in set(timm.list_models()):
                raise DebaConfigError.single("model", t.model, "is not a timm model")
        model = t.model + "".join(f" {k}={v}" for k, v in t.model_kwargs.items())
        print(f"  {t.name:16s} {t.dataset} {model:24s} train {t.train_subset or 'all'} test {t.test_subset or 'all'} "
              f"{t.epochs} epochs B0 {t.batch} {t.optimizer} lr {t.lr} {t.evals} evaluations")
    if preset.download:
        from deba.app.data import load_dataset

        with tempfile.TemporaryDirectory() as empty:
            try:
                load_dataset(tasks[0].dataset, data_dir=empty, download=False)
            except DebaConfigError as exc:
                print(f"  data: not on disk here; the real run downloads it ({str(exc).splitlines()[0][:80]}...)")
    else:
        load_task_data(dataclasses.replace(tasks[0], train_subset=16, test_subset=16), data_dir)
        print(f"  data: {tasks[0].dataset} found in {data_dir}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """Run (or resume) the study, then analyse it; ``--dry-run`` only checks the set-up.

    The plan (methods, tasks, ``--deba-set`` values) is checked before the results folder is
    created, so a refused study leaves nothing behind.
    """
    preset = checked_preset(args)
    overrides = parse_deba_set(args.deba_set)
    check_overrides(preset, overrides)
    tasks = tuple(args.tasks) if args.tasks else None
    methods = tuple(args.methods) if args.methods else None
    cells = plan(preset, methods, tasks)
    out = Path(args.out) if args.out else Path("runs") / f"study-{preset.name}"
    if args.dry_run:
        return _dry_run(preset, cells, args.data_dir)
    cmd = "deba " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("deba") else \
        f"deba bench --preset {preset.name} --out {out}" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    if not args.analyse_only:
        run_study(preset, out, methods=methods, tasks=tasks, data_dir=args.data_dir, device=args.device,
                  log=lambda m: print(m, flush=True), deba_overrides=overrides)
        truth = next((t for t in preset.tasks if t.name == preset.truth and (tasks is None or t.name in tasks)), None)
        if truth is not None and not args.no_truth:
            noise_truth(truth, load_task_data(truth, args.data_dir), out, args.device, log=lambda m: print(m, flush=True))
    summary(out, preset, cmd)
    print((out / "results.md").read_text())
    return 0


command("bench", "run (or resume) the study: DEBA v2 against tuned fixed batches and published schedules", _args)(bench)
