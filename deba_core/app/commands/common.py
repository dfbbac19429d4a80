"""What the training sub-commands share: data/model options, output folders, optimizers."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from deba.app.data import DATASETS, load_dataset
from deba.errors import DebaConfigError
from deba.app.models import make_model

__all__ = ["add_data_model_args", "build_optimizer", "load_data", "make_out_dir", "model_for"]


def add_data_model_args(p: argparse.ArgumentParser, *, epochs: int) -> None:
    p.add_argument("--model", default="small-cnn", help="small-cnn, small-mlp, or any timm/torchvision name (random weights)")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="folder with the dataset's standard files (IDX for (fashion-)mnist)")
    p.add_argument("--download", action="store_true", help="download the dataset with torchvision (needs internet)")
    p.add_argument("--train-subset", type=int, default=None, help="train on a random subset of this many samples")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--channels", type=int, default=None, help="repeat grey images over this many channels")
    p.add_argument("--size", type=int, default=32, help="image side after padding/resizing")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, default=None, help="base LR at the profile's initial batch (sgd 0.05, adamw 1e-3)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="auto", help="'auto' (detect), a profile name, or a profile file")
    p.add_argument("--out", default=None, help="run folder (default runs/<command>-<time>)")
    p.add_argument("--no-progress", action="store_true")


def load_data(args: argparse.Namespace):
    channels = args.channels
    if channels is None and args.model not in ("small-cnn", "small-mlp"):
        channels = 3  # library models expect RGB
    return load_dataset(args.dataset, data_dir=args.data_dir, download=args.download, channels=channels,
                        size=args.size, train_subset=args.train_subset, test_subset=args.test_subset, seed=args.seed)


def model_for(args: argparse.Namespace, data) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    return make_model(args.model, in_channels=data.channels, num_classes=data.num_classes, size=data.size)


def build_optimizer(name: str, params: Any, lr: float | None) -> torch.optim.Optimizer:
    if lr is not None and not lr > 0:
        raise DebaConfigError.single("lr", lr, "must be > 0")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr or 0.05, momentum=0.9, weight_decay=5e-4)
    return torch.optim.AdamW(params, lr=lr or 1e-3, weight_decay=0.05)


def make_out_dir(out: str | None, command: str) -> Path:
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
