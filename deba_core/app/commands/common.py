"""What the training sub-commands share: data/model options, their checks, output folders, optimizers.

Every command checks its options with the ``check_*`` helpers before it loads data or creates a
folder, so a bad value ends in one :class:`~deba.errors.DebaConfigError` (exit 2) and leaves
nothing behind. Each error names the option as typed on the command line (``--lr``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from deba.app.data import DATASETS, load_dataset
from deba.errors import DebaConfigError
from deba.app.models import make_model

__all__ = [
    "add_data_model_args",
    "build_optimizer",
    "check_data_model_args",
    "check_device",
    "check_int",
    "check_positive_float",
    "check_strategy",
    "load_data",
    "make_out_dir",
    "model_for",
]

# The built-in small CNN flattens a fixed 4x4 map after three 2x poolings, so it takes 32x32 only.
_SMALL_CNN_SIZE = 32
# Three 2x poolings (small-cnn) or a stem with stride 8 and more (timm) need at least 8 pixels.
_MIN_SIZE = 8


def add_data_model_args(p: argparse.ArgumentParser, *, epochs: int, model: str = "small-cnn", size: int = 32) -> None:
    p.add_argument("--model", default=model,
                   help=f"small-cnn, small-mlp, small-resnet, or any timm/torchvision name (random weights); default {model}")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="folder with the dataset's standard files (IDX for (fashion-)mnist)")
    p.add_argument("--download", action="store_true", help="download the dataset with torchvision (needs internet)")
    p.add_argument("--train-subset", type=int, default=None, help="train on a random subset of this many samples")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--channels", type=int, default=None, help="repeat grey images over this many channels")
    p.add_argument("--size", type=int, default=size, help=f"image side after padding/resizing (default {size})")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=None, help="base LR at the profile's initial batch (sgd 0.05, adamw 1e-3)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="auto", help="'auto' (detect), a profile name, or a profile file")
    p.add_argument("--out", default=None, help="run folder (default runs/<command>-<time>)")
    p.add_argument("--no-progress", action="store_true")


def check_int(option: str, value: int | None, minimum: int) -> None:
    """Refuse an integer option below ``minimum`` (``None`` means "not given" and passes).

    Args:
        option: the option as typed on the command line, e.g. ``"--epochs"``.
        value: the parsed value.
        minimum: the smallest allowed value.

    Raises:
        DebaConfigError: naming ``option`` and echoing ``value``.
    """
    if value is not None and value < minimum:
        raise DebaConfigError.single(option, value, f"must be an integer >= {minimum}")


def check_positive_float(option: str, value: float | None) -> None:
    """Refuse a float option that is not a finite number > 0 (``None`` passes).

    Raises:
        DebaConfigError: naming ``option`` and echoing ``value`` (``nan`` and ``inf`` included).
    """
    if value is not None and not (math.isfinite(value) and value > 0):
        raise DebaConfigError.single(option, value, "must be a finite number > 0")


def check_device(option: str, device: str) -> None:
    """Refuse a device string torch cannot parse, or an accelerator this machine lacks.

    Checked up front because a missing GPU would otherwise surface as a torch error mid-run,
    after the run folder exists.

    Raises:
        DebaConfigError: naming ``option`` and echoing ``device``.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise DebaConfigError.single(option, device, "must be a torch device such as cpu, cuda or cuda:1") from exc
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DebaConfigError.single(option, device, "needs a CUDA GPU, and torch sees none here (use cpu)")
        if parsed.index is not None and parsed.index >= count:
            raise DebaConfigError.single(option, device, f"must name one of the {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise DebaConfigError.single(option, device, "needs Apple's MPS backend, which is not available here (use cpu)")


def check_strategy(option: str, name: str) -> None:
    """Refuse a strategy name the registry does not know (the message lists the known ones).

    Raises:
        DebaConfigError: naming ``option`` and echoing ``name``.
    """
    from deba.control.scoring import ScoringStrategy
    from deba.registry import registry

    if name not in registry.available("strategies"):
        known = ", ".join(registry.available("strategies"))
        raise DebaConfigError.single(option, name, f"must be a registered strategy ({known})")
    registry.load("strategies", name, ScoringStrategy)


def check_data_model_args(args: argparse.Namespace) -> None:
    """Check every option :func:`add_data_model_args` adds, before any data is loaded.

    Raises:
        DebaConfigError: for the first bad value, naming its option.
    """
    for option, value, minimum in (("--train-subset", args.train_subset, 1), ("--test-subset", args.test_subset, 1),
                                   ("--channels", args.channels, 1), ("--size", args.size, _MIN_SIZE),
                                   ("--epochs", args.epochs, 1), ("--seed", args.seed, 0)):
        check_int(option, value, minimum)
    if args.model == "small-cnn" and args.size != _SMALL_CNN_SIZE:
        raise DebaConfigError.single("--size", args.size, f"must be {_SMALL_CNN_SIZE} for --model small-cnn")
    check_positive_float("--lr", args.lr)
    check_device("--device", args.device)


def load_data(args: argparse.Namespace):
    """The dataset the options name, shaped for the chosen model."""
    channels = args.channels
    if channels is None and args.model not in ("small-cnn", "small-mlp", "small-resnet"):
        channels = 3  # library models expect RGB
    return load_dataset(args.dataset, data_dir=args.data_dir, download=args.download, channels=channels,
                        size=args.size, train_subset=args.train_subset, test_subset=args.test_subset, seed=args.seed)


def model_for(args: argparse.Namespace, data) -> torch.nn.Module:
    """The model the options name, seeded by ``--seed`` and sized for ``data``."""
    torch.manual_seed(args.seed)
    return make_model(args.model, in_channels=data.channels, num_classes=data.num_classes, size=data.size)


def load_run_inputs(args: argparse.Namespace):
    """``(data, model, profile)`` the options name, all checked before anything is written."""
    from deba.profiles.loading import resolve_profile

    data = load_data(args)
    model = model_for(args, data)
    return data, model, resolve_profile(args.profile, model)


def build_optimizer(name: str, params: Any, lr: float | None) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW with the commands' defaults; ``lr=None`` takes the default LR.

    Raises:
        DebaConfigError: when ``lr`` is not a finite number > 0.
    """
    check_positive_float("lr", lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.05, momentum=0.9, weight_decay=5e-4)
    return torch.optim.AdamW(params, lr=lr or 1e-3, weight_decay=0.05)


def make_out_dir(out: str | None, command: str) -> Path:
    """Create (or reuse) the run folder and check it is writable.

    Call it last, after every check and load that can fail, so a refused run leaves no folder.

    Raises:
        DebaConfigError: when the folder cannot be created or written to.
    """
    path = Path(out) if out else Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DebaConfigError.single("out", str(path), f"is not writable ({exc.strerror or exc})",
                                     remedy="Choose a folder you can write to with --out.") from exc
    if not os.access(path, os.W_OK):
        raise DebaConfigError.single("out", str(path), "is not writable")
    return path
