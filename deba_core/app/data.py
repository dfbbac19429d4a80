"""Real datasets for ``deba run``, ``deba calibrate`` and the study, with no download at run time.

* ``digits``: scikit-learn's handwritten digits (1,797 8x8 images, shipped inside the wheel),
  upsampled to 32x32 (bilinear) so CIFAR-style networks accept it.
* ``fashion-mnist`` / ``mnist``: the standard IDX ``.gz`` files from ``--data-dir`` (the same
  files torchvision downloads); ``download=True`` fetches them with torchvision's downloader.
* ``cifar10`` / ``cifar100``: torchvision's datasets (``download=True`` for users with internet).

Every loader returns ``(train, test)`` tensor datasets of float images ``(N, C, H, W)``, normalised
to mean 0 / std 1 per channel, and int64 labels. ``channels=3`` repeats grey images over three
channels; ``size`` pads (28 -> 32) or resizes.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deba.errors import DebaConfigError

__all__ = ["DATASETS", "ImageData", "load_dataset", "read_idx"]

DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10", "cifar100")
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass
class ImageData:
    """A train/test split ready for training."""

    name: str
    train: torch.utils.data.TensorDataset
    test: torch.utils.data.TensorDataset
    num_classes: int
    channels: int
    size: int


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise DebaConfigError.single("data file", str(path), f"cannot be read ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DebaConfigError.single("data file", str(path), "is not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise DebaConfigError.single("data file", str(path), f"has an unknown IDX type code {data[2]:#x}")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DebaConfigError.single("data file", str(path), f"is truncated ({body.size} values for shape {dims})")
    return body.reshape(dims)


def _shape(images: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    if images.shape[1] != channels:
        if images.shape[1] == 1:
            images = images.repeat(1, channels, 1, 1)
        else:
            raise DebaConfigError.single("channels", channels, f"cannot be made from {images.shape[1]}-channel images")
    h = images.shape[-1]
    if h != size:
        pad = size - h
        if pad > 0 and pad % 2 == 0 and size <= 2 * h:
            images = F.pad(images, (pad // 2,) * 4)  # 28 -> 32 by padding, as in the paper's setups
        else:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images


def _normalise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DebaConfigError.single(
            "dataset", "digits", "needs scikit-learn", remedy="pip install 'deba[examples]' (or scikit-learn)"
        ) from exc
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


def _idx(name: str, data_dir: str | Path | None, download: bool):
    if download:
        return _torchvision(name, data_dir, download=True)
    if data_dir is None:
        raise DebaConfigError.single(
            "data_dir", None, f"is needed for {name}: a folder holding {', '.join(_IDX_FILES.values())}",
            remedy="Pass --data-dir with the standard IDX files, or --download to fetch them (needs internet).",
        )
    root = Path(data_dir)
    found = {}
    for key, fname in _IDX_FILES.items():
        for candidate in (root / fname, root / fname[:-3], root / name / fname, root / "raw" / fname):
            if candidate.exists():
                found[key] = candidate
                break
    missing = [f for k, f in _IDX_FILES.items() if k not in found]
    if missing:
        raise DebaConfigError.single(
            "data_dir", str(root), f"lacks {', '.join(missing)} (the standard {name} IDX files)",
            remedy="Point --data-dir at the folder with the four IDX files, or use --download.",
        )
    xs = [torch.tensor(read_idx(found[k]).copy(), dtype=torch.float32).unsqueeze(1) / 255.0 for k in ("train_images", "test_images")]
    ys = [torch.tensor(read_idx(found[k]).astype(np.int64)) for k in ("train_labels", "test_labels")]
    return xs[0], ys[0], xs[1], ys[1]


def _torchvision(name: str, data_dir: str | Path | None, download: bool):
    try:
        import torchvision
    except ImportError as exc:
        raise DebaConfigError.single("dataset", name, "needs torchvision", remedy="pip install torchvision") from exc
    cls = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
    root = Path(data_dir) if data_dir is not None else Path.home() / ".cache" / "deba" / "data"
    try:
        train = getattr(torchvision.datasets, cls)(str(root), train=True, download=download)
        test = getattr(torchvision.datasets, cls)(str(root), train=False, download=download)
    except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True"
        raise DebaConfigError.single(
            "data_dir", str(root), f"holds no {name} ({exc})",
            remedy="Use --download (needs internet) or --data-dir pointing at the extracted dataset.",
        ) from exc
    except OSError as exc:
        raise DebaConfigError.single("download", name, f"failed ({exc})", remedy="Check the network, or use --data-dir.") from exc

    def tensors(ds):
        x = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32) / 255.0
        x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)
        return x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    (xtr, ytr), (xte, yte) = tensors(train), tensors(test)
    return xtr, ytr, xte, yte


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    channels: int | None = None,
    size: int | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load ``name`` (see module docstring) as normalised tensors; subsets are class-stratified-random."""
    if name not in DATASETS:
        raise DebaConfigError.single("dataset", name, f"must be one of {', '.join(DATASETS)}")
    if name == "digits":
        xtr, ytr, xte, yte = _digits(seed)
    elif name in ("fashion-mnist", "mnist"):
        xtr, ytr, xte, yte = _idx(name, data_dir, download)
    else:
        xtr, ytr, xte, yte = _torchvision(name, data_dir, download)

    def subset(x, y, n):
        if n is None or n >= len(y):
            return x, y
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1))[:n]
        return x[idx], y[idx]

    xtr, ytr = subset(xtr, ytr, train_subset)
    xte, yte = subset(xte, yte, test_subset)
    c = channels or xtr.shape[1]
    s = size or max(32, xtr.shape[-1])
    xtr, xte = _shape(xtr, c, s), _shape(xte, c, s)
    xtr, xte = _normalise(xtr, xte)
    classes = int(max(ytr.max(), yte.max())) + 1
    return ImageData(name, torch.utils.data.TensorDataset(xtr, ytr), torch.utils.data.TensorDataset(xte, yte), classes, c, s)
