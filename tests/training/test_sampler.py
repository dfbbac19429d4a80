"""AdaptiveBatchSampler: every index once per epoch, deterministic order, resume, loaders with workers."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deba
from deba import AdaptiveBatchSampler


@given(st.integers(1, 300), st.lists(st.integers(1, 64), min_size=1, max_size=50), st.integers(0, 5), st.booleans())
def test_every_index_exactly_once_whatever_the_size_changes(n, sizes, seed, shuffle):
    s = AdaptiveBatchSampler(n, sizes[0], seed=seed, shuffle=shuffle)
    seen = []
    for i, batch in enumerate(s):
        assert 1 <= len(batch) <= s.batch_size
        seen.extend(batch)
        s.batch_size = sizes[(i + 1) % len(sizes)]
    assert sorted(seen) == list(range(n))


@given(st.integers(2, 200), st.lists(st.integers(1, 32), min_size=1, max_size=20), st.integers(0, 40))
def test_state_dict_mid_epoch_resumes_with_the_next_unseen_index(n, sizes, cut):
    a = AdaptiveBatchSampler(n, sizes[0], seed=3)
    it = iter(a)
    first, finished = [], False
    for i in range(cut):
        try:
            first.extend(next(it))
        except StopIteration:
            finished = True
            break
        a.batch_size = sizes[i % len(sizes)]
    state = json.loads(json.dumps(a.state_dict()))
    assert state["finished"] == finished
    # a finished epoch continues with the next one on a fresh iter(); otherwise the same iterator goes on
    rest_a = [i for b in (iter(a) if finished else it) for i in b]
    b = AdaptiveBatchSampler(n, 1, seed=3)
    b.load_state_dict(state)
    rest_b = [i for batch in b for i in batch]
    assert rest_a == rest_b
    if not finished:
        assert sorted(first + rest_b) == list(range(n))


def test_order_depends_only_on_seed_and_epoch():
    a, b = AdaptiveBatchSampler(50, 7, seed=1), AdaptiveBatchSampler(50, 13, seed=1)
    assert [i for x in a for i in x] == [i for x in b for i in x]
    assert a.order(0) != a.order(1) != AdaptiveBatchSampler(50, 7, seed=2).order(1)
    a.set_epoch(4)
    assert [i for x in a for i in x] == a.order(4)
    # without set_epoch, the next iteration is the next epoch
    assert a.epoch == 4 and [i for x in a for i in x] == a.order(5)


def test_endless_mode_has_no_length_and_crosses_epochs():
    s = AdaptiveBatchSampler(10, 4, endless=True, shuffle=False)
    with pytest.raises(TypeError):
        len(s)
    it = iter(s)
    got = [next(it) for _ in range(4)]
    assert got[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and got[3] == [0, 1, 2, 3] and s.epoch == 1


def test_drop_last_and_len():
    s = AdaptiveBatchSampler(10, 4, shuffle=False, drop_last=True)
    assert len(s) == 2 and [len(b) for b in s] == [4, 4]
    s2 = AdaptiveBatchSampler(10, 4, shuffle=False)
    assert len(s2) == 3


def test_bad_arguments():
    for kwargs in ({"batch_size": 0}, {"batch_size": 2.5}, {"seed": -1}):
        with pytest.raises(deba.DebaConfigError):
            AdaptiveBatchSampler(10, **{"batch_size": 4, **kwargs})
    with pytest.raises(deba.DebaConfigError, match="length"):
        AdaptiveBatchSampler(iter([1, 2]), 4)  # type: ignore[arg-type]
    s = AdaptiveBatchSampler(10, 4)
    with pytest.raises(deba.DebaConfigError, match="num_samples"):
        s.load_state_dict({**s.state_dict(), "num_samples": 11})


def _loader(num_workers, prefetch=2):
    data = torch.utils.data.TensorDataset(torch.arange(200))
    sampler = AdaptiveBatchSampler(data, 4, shuffle=False)
    kwargs = {"num_workers": num_workers}
    if num_workers:
        kwargs["prefetch_factor"] = prefetch
    return sampler, torch.utils.data.DataLoader(data, batch_sampler=sampler, **kwargs)


def test_resize_lands_on_the_next_batch_without_workers():
    sampler, loader = _loader(0)
    sizes = []
    for i, (batch,) in enumerate(loader):
        sizes.append(len(batch))
        if i == 2:
            sampler.batch_size = 10
    assert sizes[:4] == [4, 4, 4, 10]
    assert sum(sizes) == 200


def test_resize_lands_within_workers_times_prefetch_with_workers():
    workers, prefetch = 2, 2
    sampler, loader = _loader(workers, prefetch)
    sizes, seen = [], []
    for i, (batch,) in enumerate(loader):
        sizes.append(len(batch))
        seen.extend(batch.tolist())
        if i == 2:
            sampler.batch_size = 10
    first_new = sizes.index(10)
    assert 3 <= first_new <= 3 + workers * prefetch, sizes
    assert sorted(seen) == list(range(200)), "every sample once, even with prefetching"


def _consume_with_lookahead(sampler, lookahead, changes, stop_after=None):
    """Like a prefetching DataLoader: draw `lookahead` batches ahead, consume one at a time."""
    it = iter(sampler)
    queue, out = [], []
    for _ in range(lookahead):
        nxt = next(it, None)
        if nxt is not None:
            queue.append(nxt)
    while queue:
        batch = queue.pop(0)
        out.append(batch)
        sampler.mark_consumed(len(batch))
        if len(out) in changes:
            sampler.batch_size = changes[len(out)]
        if stop_after is not None and len(out) == stop_after:
            return out
        nxt = next(it, None)
        if nxt is not None:
            queue.append(nxt)
    return out


@given(st.integers(20, 200), st.integers(0, 4), st.dictionaries(st.integers(1, 30), st.integers(1, 20), max_size=5),
       st.integers(1, 25))
def test_resume_replays_prefetched_batches_with_their_sizes(n, lookahead, changes, cut):
    full = _consume_with_lookahead(AdaptiveBatchSampler(n, 4, seed=1), lookahead, changes)
    a = AdaptiveBatchSampler(n, 4, seed=1)
    head = _consume_with_lookahead(a, lookahead, changes, stop_after=cut)
    if len(head) < cut:
        return  # the epoch ended first
    state = json.loads(json.dumps(a.state_dict()))
    if state["finished"]:
        return  # the epoch is over: the next iter() is a new epoch (tested above)
    b = AdaptiveBatchSampler(n, 1, seed=1)
    b.load_state_dict(state)
    shifted = {k - cut: v for k, v in changes.items() if k > cut}
    tail = _consume_with_lookahead(b, lookahead, shifted)
    assert head + tail == full


@given(st.integers(1, 200), st.integers(1, 4), st.lists(st.integers(1, 40), min_size=1, max_size=20), st.integers(1, 9))
def test_ranks_share_every_global_batch_and_see_each_index_once(n, world, sizes, tail):
    samplers = [AdaptiveBatchSampler(n, sizes[0], seed=2, num_replicas=world, rank=r, min_last_batch=tail)
                for r in range(world)]
    single = AdaptiveBatchSampler(n, sizes[0], seed=2, min_last_batch=tail)
    iters = [iter(s) for s in samplers]
    seen, steps = [], 0
    for global_batch in single:
        shards = [next(it) for it in iters]
        assert sorted(i for sh in shards for i in sh) == sorted(global_batch), "the shards are the global batch"
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
        seen.extend(global_batch)
        steps += 1
        size = sizes[steps % len(sizes)]
        single.batch_size = size
        for s in samplers:
            s.batch_size = size
            s.mark_consumed(len(global_batch))
        single.mark_consumed(len(global_batch))
    assert all(next(it, None) is None for it in iters), "every rank ends the epoch together"
    assert sorted(seen) == list(range(n))
    if world > 1:
        # a state saved on one world size resumes on another (positions are global)
        assert samplers[0].state_dict()["position"] == single.state_dict()["position"]


def test_tiny_tail_is_folded_into_the_last_batch():
    s = AdaptiveBatchSampler(10, 4, shuffle=False, min_last_batch=3)
    assert [len(b) for b in s] == [4, 6]
