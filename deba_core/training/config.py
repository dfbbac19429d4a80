"""``deba.fit``'s arguments, validated once, before anything trains."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError
from deba.profiles.schema import ArchitectureProfile
from deba.training.callbacks import Callback
from deba.training.options import RunOptions, check_positive_int, merge_options

__all__ = ["FitConfig", "as_dataset"]


def as_dataset(data: Any, name: str) -> torch.utils.data.Dataset:
    """A map-style dataset from a dataset or a tuple of tensors; ``DebaConfigError`` otherwise."""
    if isinstance(data, torch.utils.data.IterableDataset):
        raise DebaConfigError.single(
            name, type(data).__name__, "must be a map-style dataset (with __len__ and __getitem__)",
            remedy="Wrap the stream in a map-style dataset, or use the manual mode (deba.DebaController).",
        )
    if isinstance(data, torch.utils.data.Dataset):
        try:
            len(data)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DebaConfigError.single(name, type(data).__name__, "must have a length") from exc
        return data
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        if len({t.shape[0] for t in data}) != 1:
            raise DebaConfigError.single(name, [tuple(t.shape) for t in data], "tensors must share their first dimension")
        return torch.utils.data.TensorDataset(*data)
    raise DebaConfigError.single(name, type(data).__name__, "must be a torch Dataset or a tuple of tensors (inputs, targets)")


def _positive_or_none(name: str, value: Any) -> None:
    check_positive_int(value, name)


@dataclass
class FitConfig:
    """Everything :func:`deba.fit` was asked to do, checked (see ``deba.fit`` for each field).

    Raises:
        DebaConfigError: naming the first field that is wrong, its value and what is allowed.

    Example:
        >>> import torch
        >>> from deba.training.config import FitConfig
        >>> m = torch.nn.Linear(2, 2)
        >>> cfg = FitConfig(model=m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1),
        ...                 loss_fn=torch.nn.functional.cross_entropy, epochs=1)
        >>> cfg.lr_scheduler_interval
        'step'
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[Any, Any], torch.Tensor]
    profile: ArchitectureProfile | str = "auto"
    strategy: ScoringStrategy | str = "equal-weight"
    batch_size: int | None = None
    epochs: int | None = None
    max_samples: int | None = None
    eval_data: Any = None
    device: str | torch.device | None = None
    log_dir: str | Path | None = None
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    callbacks: Sequence[Callback] = ()
    progress: bool = True
    seed: int = 0
    reseed: bool = True
    lr_scheduler: Any = None
    lr_scheduler_interval: str = "step"
    max_micro_batch: int | None = None
    num_workers: int = 0
    collate_fn: Callable | None = None
    nonfinite_abort: int | None = None
    fixed_batch: int | None = None
    strategy_options: dict[str, Any] | None = None
    tensorboard: bool = True
    history_in_memory: int = 10_000
    policy: Any = None
    throughput: Any = None
    budget: str = "auto"
    amp: bool | str = False
    max_grad_norm: float | None = None
    probe_throughput: bool | None = None
    options: RunOptions | None = None

    def run_options(self) -> RunOptions:
        """DEBA's settings: the ``options`` object, or the keywords of the same names."""
        given = {f.name: getattr(self, f.name) for f in fields(RunOptions)}
        return merge_options(self.options, given)

    def __post_init__(self) -> None:
        self._check_objects()
        for name in ("batch_size", "epochs", "max_samples", "checkpoint_every", "fixed_batch"):
            _positive_or_none(name, getattr(self, name))
        _positive_or_none("history_in_memory", self.history_in_memory)
        if self.epochs is None and self.max_samples is None:
            raise DebaConfigError.single("epochs", None, "or max_samples must be set (how long to train)")
        if self.lr_scheduler_interval not in ("step", "epoch", "samples"):
            raise DebaConfigError.single("lr_scheduler_interval", self.lr_scheduler_interval,
                                         "must be 'step', 'epoch' or 'samples'")
        g = self.max_grad_norm
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not g > 0 or g == float("inf")):
            raise DebaConfigError.single("max_grad_norm", g, "must be a finite number > 0 or None")
        self.run_options()  # DEBA's own settings (budget, memory cap, abort...), by the one validator of every front end
        if self.resume and self.checkpoint_dir is None:
            raise DebaConfigError.single("resume", self.resume, "needs checkpoint_dir")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise DebaConfigError.single("num_workers", self.num_workers, "must be an int >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise DebaConfigError.single("seed", self.seed, "must be an int >= 0")
        if any(not isinstance(cb, Callback) for cb in self.callbacks):
            bad = next(cb for cb in self.callbacks if not isinstance(cb, Callback))
            raise DebaConfigError.single("callbacks", type(bad).__name__, "entries must be deba.Callback instances")

    def _check_objects(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise DebaConfigError.single("model", type(self.model).__name__, "must be an nn.Module")
        if not isinstance(self.optimizer, torch.optim.Optimizer):
            raise DebaConfigError.single("optimizer", type(self.optimizer).__name__, "must be a torch.optim.Optimizer")
        if not callable(self.loss_fn):
            raise DebaConfigError.single("loss_fn", self.loss_fn, "must be callable as loss_fn(outputs, targets)")
        if isinstance(self.model, nn.parallel.DistributedDataParallel):
            # deba.fit reduces gradients itself (it must read each rank's local gradient first).
            warnings.warn("deba.fit: pass the plain model; using model.module (DEBA does the DDP reduction)",
                          UserWarning, stacklevel=4)
            self.model = self.model.module
