"""A batch sampler whose batch size may change between batches.

Hand it to ``DataLoader(dataset, batch_sampler=sampler)`` and change ``sampler.batch_size`` while
the loader runs; the loader is never rebuilt. With ``num_workers=0`` the next batch has the new
size. With ``num_workers > 0`` the loader has already drawn up to ``num_workers * prefetch_factor``
index batches from the sampler, so the change lands that many batches later: always take the real
size from ``len(batch)``.
"""

from __future__ import annotations

from typing import Any, Iterator, Sized

import torch

from deba.errors import DebaConfigError

__all__ = ["AdaptiveBatchSampler"]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DebaConfigError.single(name, value, f"must be an int >= {minimum}")
    return value


class AdaptiveBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields lists of indices; every index exactly once per epoch, whatever the batch-size changes.

    The order is a permutation drawn from ``(seed, epoch)`` alone, so it is the same on every run,
    rank and resume. The sampler remembers its position in the epoch: ``state_dict()`` mid-epoch and
    ``load_state_dict()`` continue with the next unseen index (it satisfies torchdata's
    ``Stateful`` protocol). When a loader prefetches, tell the sampler what the loop actually
    consumed with :meth:`mark_consumed` so saved positions count consumed samples, not drawn ones.

    Args:
        data: the dataset (anything with ``len``) or its length.
        batch_size: the initial batch size.
        shuffle: draw a fresh permutation each epoch (else 0..n-1 in order).
        seed: seed of the permutations.
        drop_last: drop a final batch smaller than the current batch size.
        endless: never end: epochs follow each other (``len()`` is undefined), for step- or
            sample-budgeted runs.
        num_replicas, rank: distributed sharding. Every rank walks the same *global* batches
            (``batch_size`` is global) and yields its strided shard ``global[rank::num_replicas]``,
            so all ranks take the same number of steps and every index is used once per epoch
            across ranks. Positions and states count global samples, so a state saved with one
            world size resumes with another.
        min_last_batch: an epoch's last batch smaller than this is merged into the one before
            (keeps the tail on the batch grid and never leaves a rank an empty shard).

    Example:
        >>> s = AdaptiveBatchSampler(10, batch_size=4, shuffle=False)
        >>> it = iter(s)
        >>> next(it)
        [0, 1, 2, 3]
        >>> s.batch_size = 2
        >>> list(it)
        [[4, 5], [6, 7], [8, 9]]
    """

    def __init__(
        self,
        data: Sized | int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        endless: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        min_last_batch: int = 1,
    ) -> None:
        n = data if isinstance(data, int) and not isinstance(data, bool) else None
        if n is None:
            try:
                n = len(data)  # type: ignore[arg-type]
            except TypeError as exc:
                raise DebaConfigError.single(
                    "data", type(data).__name__, "must have a length (a map-style dataset) or be an int",
                    remedy="For an IterableDataset without a length, set max_samples and use a length-less loop.",
                ) from exc
        self.num_samples = _check_int("len(data)", n, 1)
        self._batch_size = _check_int("batch_size", batch_size, 1)
        # The batch the run started at (the LR belongs to it); a resumed state does not change it.
        self.initial_batch_size = self._batch_size
        self.shuffle = bool(shuffle)
        self.seed = _check_int("seed", seed, 0)
        self.drop_last = bool(drop_last)
        self.endless = bool(endless)
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise DebaConfigError.single("rank", rank, f"must be an int in [0, num_replicas={num_replicas})")
        self.rank = rank
        self.min_last_batch = _check_int("min_last_batch", min_last_batch, 1)
        self.epoch = 0
        self._position = 0  # indices of this epoch already drawn
        self._consumed = 0  # indices of this epoch the loop really used (see mark_consumed)
        self._tracking = False  # whether anybody reports consumption
        self._pending: list[int] = []  # sizes of batches drawn but not yet consumed (tracking only)
        self._replay: list[int] = []  # sizes to draw first after a resume
        self._exhausted = False

    # Batch size ---------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """The size of the next batch drawn (may change at any time)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = _check_int("batch_size", value, 1)

    # Epochs and order ---------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (unless the sampler is already mid-way through it)."""
        _check_int("epoch", epoch, 0)
        if epoch != self.epoch or self._exhausted:
            self.epoch = epoch
            self._position = 0
            self._consumed = 0
            self._pending, self._replay = [], []
            self._exhausted = False

    def order(self, epoch: int | None = None) -> list[int]:
        """The permutation of ``epoch`` (the current one by default)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return list(range(self.num_samples))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=gen).tolist()

    @property
    def epoch_done(self) -> bool:
        """Whether this epoch's iteration ended (also when ``drop_last`` left samples unused)."""
        return self._exhausted

    @property
    def position(self) -> int:
        """Samples of the current epoch consumed (or drawn, if nobody marks consumption)."""
        return self._consumed if self._tracking else self._position

    def mark_consumed(self, n: int) -> None:
        """Record that the loop used ``n`` more samples of this epoch (prefetching loaders)."""
        _check_int("n", n, 0)
        self._tracking = True
        self._consumed = min(self.num_samples, self._consumed + n)
        left = n
        while self._pending and left >= self._pending[0]:
            left -= self._pending.pop(0)

    def _next_epoch(self) -> None:
        self.epoch += 1
        self._position = 0
        self._consumed = 0
        self._pending, self._replay = [], []
        self._exhausted = False

    def __iter__(self) -> Iterator[list[int]]:
        if self._exhausted:
            self._next_epoch()
        # Resume from what was consumed: batches drawn but never used are drawn again, with the
        # sizes they had, so a loader that prefetches sees the same batches as before.
        if self._tracking:
            self._replay = self._pending + self._replay
            self._pending = []
        self._position = self.position
        while True:
            order = self.order()
            while self._position < self.num_samples:
                size = self._replay.pop(0) if self._replay else self._batch_size
                end = min(self._position + size, self.num_samples)
                if self.drop_last and end - self._position < size:
                    break
                if 0 < self.num_samples - end < self.min_last_batch:
                    end = self.num_samples  # fold a tiny tail into this batch
                batch = order[self._position : end]
                self._position = end
                self._pending.append(len(batch))
                if len(self._pending) > 4096:  # nobody marks consumption: keep memory bounded
                    self._pending = self._pending[-1024:]
                yield batch if self.num_replicas == 1 else batch[self.rank :: self.num_replicas]
            if not self.endless:
                self._exhausted = True
                return
            self._next_epoch()

    def __len__(self) -> int:
        """Batches left in this epoch at the current batch size (undefined when endless)."""
        if self.endless:
            raise TypeError("an endless AdaptiveBatchSampler has no length")
        # An exhausted epoch is followed by a fresh one on the next iter().
        left = self.num_samples if self._exhausted else self.num_samples - self.position
        size = self._batch_size
        return left // size if self.drop_last else -(-left // size)

    # State --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-able position: epoch, samples consumed in it, batch size, seed."""
        position = self.position
        return {
            "epoch": self.epoch,
            "position": position,
            "batch_size": self._batch_size,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "shuffle": self.shuffle,
            # Only a fully consumed, finished epoch moves on to the next one at the next iter().
            "finished": bool(self._exhausted and position >= self.num_samples),
            # Batches drawn (prefetched) but not consumed: redrawn with these sizes after a resume.
            "pending": list(self._pending) + list(self._replay) if self._tracking else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; the dataset size, seed and shuffle must match."""
        if not isinstance(state, dict):
            raise DebaConfigError.single("sampler state", type(state).__name__, "must be a dict from state_dict()")
        for key in ("num_samples", "seed", "shuffle"):
            if state.get(key) != getattr(self, key):
                raise DebaConfigError.single(
                    f"sampler state.{key}", state.get(key), f"must equal this sampler's {key} ({getattr(self, key)!r})"
                )
        self.epoch = _check_int("sampler state.epoch", state.get("epoch"), 0)
        position = _check_int("sampler state.position", state.get("position"), 0)
        if position > self.num_samples:
            raise DebaConfigError.single("sampler state.position", position, f"must be <= {self.num_samples}")
        self.batch_size = state.get("batch_size")  # type: ignore[assignment]
        self._position = position
        self._consumed = position
        pending = state.get("pending", [])
        if not isinstance(pending, list) or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in pending):
            raise DebaConfigError.single("sampler state.pending", pending, "must be a list of batch sizes")
        self._pending, self._replay = [], list(pending)
        self._tracking = self._tracking or bool(pending)
        self._exhausted = bool(state.get("finished", False)) and not self.endless
