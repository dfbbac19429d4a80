"""DEBA's sampler in a Lightning training DataLoader: :func:`deba_dataloader`."""

from __future__ import annotations

from typing import Any, Iterator

import torch

from deba.errors import DebaConfigError
from deba.training.sampler import AdaptiveBatchSampler

__all__ = ["DebaDataLoader", "LightningBatchSampler", "deba_dataloader", "find_sampler"]


class LightningBatchSampler:
    """DEBA's sampler as Lightning's loop sees it: iterable only.

    No ``__len__`` (the batch size changes, so Lightning runs the epoch until the sampler ends it),
    no ``set_epoch`` (Lightning would reset a resumed mid-epoch position; the sampler keeps its own
    epoch), no integer ``batch_size`` (nothing may freeze it).

    Example:
        >>> import deba
        >>> from deba.adapters.lightning.data import LightningBatchSampler
        >>> next(iter(LightningBatchSampler(deba.AdaptiveBatchSampler(4, batch_size=2, shuffle=False))))
        [0, 1]
    """

    def __init__(self, sampler: AdaptiveBatchSampler) -> None:
        self.deba_sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.deba_sampler)


class DebaDataLoader(torch.utils.data.DataLoader):
    """A DataLoader whose position Lightning saves and restores with the checkpoint.

    Lightning keeps the state of a *stateful* training loader (one with ``state_dict`` and
    ``load_state_dict``) in its fit-loop checkpoint and gives it back right before the loader's
    first ``iter()`` of a resumed fit, which is when the first batch is drawn; DEBA's sampler
    continues from there. Each loader carries its own state: two trainers in one process never
    see each other's. :attr:`restored` holds the state it was given (``None`` on a fresh fit).
    """

    restored: dict[str, Any] | None = None

    @property
    def deba_sampler(self) -> AdaptiveBatchSampler:
        """The adaptive sampler behind the loader."""
        return self.batch_sampler.deba_sampler

    def state_dict(self) -> dict[str, Any]:
        """The sampler's position (JSON-able)."""
        return {"deba_sampler": self.deba_sampler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        if not isinstance(state_dict, dict) or "deba_sampler" not in state_dict:
            raise DebaConfigError.single("train_dataloader state", type(state_dict).__name__,
                                         "must be a DebaDataLoader.state_dict()")
        self.deba_sampler.load_state_dict(state_dict["deba_sampler"])
        self.restored = state_dict["deba_sampler"]


def deba_dataloader(dataset: Any, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                    **loader_kwargs: Any) -> DebaDataLoader:
    """A training DataLoader whose batches DEBA sizes: use it in ``train_dataloader()``.

    ``batch_size`` is the *global* starting batch (all ranks together), the batch your LR belongs
    to. Under DDP each rank yields its shard of every global batch, so call it where the process
    group exists (inside ``train_dataloader()``), with ``Trainer(use_distributed_sampler=False)``.
    Other keyword arguments go to ``torch.utils.data.DataLoader`` (``num_workers``, ``collate_fn``,
    ``pin_memory``...; not ``batch_size``, ``shuffle``, ``sampler`` or ``batch_sampler``).

    Raises:
        DebaConfigError: an IterableDataset or a dataset without a length, or a loader argument
            that would fight DEBA's sampler.

    Example:
        >>> import torch
        >>> data = torch.utils.data.TensorDataset(torch.randn(10, 2), torch.arange(10))
        >>> [len(b[1]) for b in deba_dataloader(data, 4, shuffle=False)]
        [4, 4, 2]
    """
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
        raise DebaConfigError.single(
            "dataset", type(dataset).__name__, "must be a map-style dataset with a length: DEBA's sampler needs "
            "indices to give every sample once per epoch while the batch size changes",
            remedy="Use a map-style dataset (a torch Dataset with __len__ and __getitem__).")
    for key in ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"):
        if key in loader_kwargs:
            raise DebaConfigError.single(key, loader_kwargs[key], "is set by deba_dataloader itself",
                                         remedy="Pass the starting batch as batch_size=, shuffle/drop_last by name; "
                                                "DEBA's sampler is the loader's batch sampler.")
    world, rank = 1, 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    if batch_size % world:
        raise DebaConfigError.single("batch_size", batch_size, f"must be a multiple of the world size ({world})")
    sampler = AdaptiveBatchSampler(dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                   num_replicas=world, rank=rank, min_last_batch=world)
    loader_kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
    return DebaDataLoader(dataset, batch_sampler=LightningBatchSampler(sampler), **loader_kwargs)


def find_sampler(loader: Any) -> AdaptiveBatchSampler | None:
    """DEBA's sampler inside a training DataLoader (``None`` when it has none)."""
    bs = getattr(loader, "batch_sampler", None)
    for obj in (bs, getattr(bs, "deba_sampler", None), getattr(loader, "sampler", None)):
        if isinstance(obj, AdaptiveBatchSampler):
            return obj
    return None
