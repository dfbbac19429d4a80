"""``deba bench``: the architecture study (see ``deba.study``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from ..cli import command
from ..errors import DebaConfigError
from ..study import METHODS, PRESETS, plan, run_study, summary


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    p.add_argument("--out", default=None, help="results folder (default runs/study-<preset>); reruns resume")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (quick/cpu) or CIFAR root (paper)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="print the plan and check the set-up; train nothing")
    p.add_argument("--analyse-only", action="store_true", help="only (re)build results.json/.md and the plots")


def _dry_run(preset, methods, data_dir) -> int:
    from ..data import load_dataset

    cells = plan(preset, tuple(methods))
    print(f"preset {preset.name}: {len(preset.archs)} architectures x {len(methods)} methods x {preset.seeds} seeds "
          f"= {len(cells)} runs on {preset.dataset}" + (" (downloaded by torchvision)" if preset.download else ""))
    try:
        import timm
    except ImportError as exc:
        raise DebaConfigError.single("timm", None, "is needed for the study", remedy="pip install 'deba[timm]'") from exc
    known = set(timm.list_models())
    for a in preset.archs:
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


def bench(args: argparse.Namespace) -> int:
    preset = PRESETS[args.preset]
    out = Path(args.out) if args.out else Path("runs") / f"study-{preset.name}"
    if args.dry_run:
        return _dry_run(preset, args.methods, args.data_dir)
    cmd = "deba " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("deba") else \
        f"deba bench --preset {preset.name} --out {out}" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    if not args.analyse_only:
        run_study(preset, out, methods=tuple(args.methods), data_dir=args.data_dir, device=args.device,
                  log=lambda m: print(m, flush=True))
    summary(out, preset, cmd)
    print((out / "results.md").read_text())
    return 0


command("bench", "run (or resume) the architecture study and write its results", _args)(bench)
