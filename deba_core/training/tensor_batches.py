"""Fetching a batch of tensors in one indexing operation instead of one sample at a time.

A ``DataLoader`` over a ``TensorDataset`` reads ``B`` samples one by one and stacks them: on one
CPU thread that assembles 123,000-198,000 3x32x32 images/s here, *slower per sample at batch 2,048
than at 512* (``benchmarks/tensor_batches.py``), which a GPU can outrun, so there the loader
would decide how fast a batch size trains. Indexing each tensor once with the batch's indices
gives the same values in the same order and the same (contiguous) layout, so training is
unchanged, bit for bit, at a quarter to a third of the cost (3.5-4.2x faster here). ``deba.fit``,
``deba.evaluate`` and the start-up throughput probe use it whenever the data is a plain
``TensorDataset`` (or a tuple of tensors) and no ``collate_fn`` was given; anything else is loaded
exactly as before.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

__all__ = ["TensorBatches", "fetch_batch", "loader_parts"]


class TensorBatches(torch.utils.data.Dataset):
    """A ``TensorDataset`` whose batches are fetched by one index per tensor (``__getitems__``).

    Example:
        >>> import torch
        >>> ds = TensorBatches(torch.utils.data.TensorDataset(torch.arange(6.0), torch.arange(6)))
        >>> ds.__getitems__([4, 1])
        [tensor([4., 1.]), tensor([4, 1])]
        >>> len(ds), ds[2]
        (6, (tensor(2.), tensor(2)))
    """

    def __init__(self, dataset: torch.utils.data.TensorDataset) -> None:
        self.dataset = dataset
        self.tensors = dataset.tensors

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        # A list, as default_collate makes of a batch of tuples; index_select (unlike t[idx]) gives a
        # contiguous batch whatever the source's layout (a permuted HWC image tensor stays
        # channels-last under t[idx]), as stacking samples does: the same layout, so the same kernels.
        idx = torch.as_tensor(indices, dtype=torch.long)
        return [torch.index_select(t, 0, idx.to(t.device)) for t in self.tensors]


def _as_batch(batch: Any) -> Any:
    """The collate function of a :class:`TensorBatches` loader: its batches come collated."""
    return batch


def loader_parts(dataset: torch.utils.data.Dataset, collate_fn: Callable | None
                 ) -> tuple[torch.utils.data.Dataset, Callable | None]:
    """``(dataset, collate_fn)`` for a ``DataLoader``: the batched fetch where it gives the same batches.

    Only an exact ``TensorDataset`` (a subclass may change ``__getitem__``) with no ``collate_fn``.
    """
    if collate_fn is None and type(dataset) is torch.utils.data.TensorDataset:
        return TensorBatches(dataset), _as_batch
    return dataset, collate_fn


def fetch_batch(dataset: torch.utils.data.Dataset, indices: Sequence[int], collate_fn: Callable | None) -> Any:
    """The batch of ``indices`` as a loader would assemble it (batched where :func:`loader_parts` is)."""
    data, collate = loader_parts(dataset, collate_fn)
    if isinstance(data, TensorBatches):
        return data.__getitems__(indices)
    return (collate or torch.utils.data.default_collate)([dataset[i] for i in indices])
