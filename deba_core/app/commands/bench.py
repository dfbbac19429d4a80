"""``deba bench``: the architecture study (see ``deba.app.study``)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from deba.app.cli import command
from deba.errors import DebaConfigError
from deba.app.commands.common import check_device, check_int
from deba.app.study import METHODS, PRESETS, Preset, checked_plan, run_study, summary


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--out", default=None, help="results folder (default runs/study-<preset>); reruns resume")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (quick/cpu) or CIFAR root (paper)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--archs", nargs="+", default=None, metavar="PROFILE",
                   help="only these architectures of the preset (profile names, e.g. resnet18 mobilenetv3)")
    p.add_argument("--deba-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a profile field of the `deba` method only (repeatable; an experiment: use its own --out)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: the preset's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="print the plan and check the set-up; train nothing")
    p.add_argument("--analyse-only", action="store_true", help="only (re)build results.json/.md and the plots")


def _dry_run(preset, methods, data_dir, archs=None, overrides=None) -> int:
    """Print the plan and check timm, the models and the data; train nothing."""
    from deba.app.data import load_dataset

    cells, chosen = checked_plan(preset, tuple(methods), archs, overrides)
    print(f"preset {preset.name}: {len(chosen)} architectures x {len(methods)} methods x {preset.seeds} seeds "
          f"= {len(cells)} runs on {preset.dataset}" + (" (downloaded by torchvision)" if preset.download else ""))
    try:
        import timm
    except ImportError as exc:
        raise DebaConfigError.single("timm", None, "is needed for the study", remedy="pip install 'deba[timm]'") from exc
    known = set(timm.list_models())
    for a in chosen:
        if a.model not in known:
            raise DebaConfigError.single("model", a.model, "is not a timm model")
        print(f"  {a.profile:15s} timm {a.model:24s} {a.model_kwargs or ''} train {a.train_subset or 'all'} "
              f"test {a.test_subset or 'all'} epochs {a.epochs} {a.optimizer} lr {a.lr}")
    if preset.download:
        with tempfile.TemporaryDirectory() as empty:
            try:
                load_dataset(preset.dataset, data_dir=empty, download=False)
            except DebaConfigError as exc:
                print(f"  data: not on disk here; the real run passes download=True ({str(exc).splitlines()[0][:80]}...)")
    else:
        load_dataset(preset.dataset, data_dir=data_dir, train_subset=16, test_subset=16, channels=3)
        print(f"  data: {preset.dataset} found in {data_dir}")
    return 0


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


def bench(args: argparse.Namespace) -> int:
    """Run (or resume) the study, then analyse it; ``--dry-run`` only checks the set-up.

    The plan (methods, architectures, ``--deba-set`` values) is checked before the results folder
    is created, so a refused study leaves nothing behind.
    """
    preset = checked_preset(args)
    overrides = parse_deba_set(args.deba_set)
    archs = tuple(args.archs) if args.archs else None
    out = Path(args.out) if args.out else Path("runs") / f"study-{preset.name}"
    if args.dry_run:
        return _dry_run(preset, args.methods, args.data_dir, archs, overrides)
    cmd = "deba " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("deba") else \
        f"deba bench --preset {preset.name} --out {out}" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    if args.analyse_only:
        checked_plan(preset, tuple(args.methods), archs, overrides)
    else:
        run_study(preset, out, methods=tuple(args.methods), data_dir=args.data_dir, device=args.device,
                  log=lambda m: print(m, flush=True), archs=archs, deba_overrides=overrides)
    summary(out, preset, cmd)
    print((out / "results.md").read_text())
    return 0


command("bench", "run (or resume) the architecture study and write its results", _args)(bench)
