"""DEBA's sampler as the HF Trainer's DataLoader sees it."""

from __future__ import annotations

from typing import Iterator

from deba.training.sampler import AdaptiveBatchSampler

__all__ = ["TrainerBatchSampler"]


class TrainerBatchSampler:
    """DEBA's sampler as the Trainer's DataLoader sees it: iterable only.

    No ``__len__`` (Trainer runs by steps), no integer ``batch_size`` (accelerate would freeze it),
    no ``set_epoch`` (Trainer's epoch numbers restart on resume; the sampler keeps its own).

    Example:
        >>> import deba
        >>> from deba.adapters.huggingface.data import TrainerBatchSampler
        >>> next(iter(TrainerBatchSampler(deba.AdaptiveBatchSampler(4, batch_size=2, shuffle=False))))
        [0, 1]
    """

    def __init__(self, sampler: AdaptiveBatchSampler) -> None:
        self.deba_sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.deba_sampler)
