"""The batched fetch of tensors: the same batches, in the same order, as the per-sample loader."""

from __future__ import annotations

import torch

import deba
from deba.training.tensor_batches import TensorBatches, fetch_batch, loader_parts


class _PerSample(torch.utils.data.TensorDataset):
    """A TensorDataset subclass: loaded one sample at a time, as before (the fast path skips subclasses)."""


def test_loader_parts_batches_plain_tensor_datasets_only():
    ds = torch.utils.data.TensorDataset(torch.randn(10, 3), torch.arange(10))
    fast, collate = loader_parts(ds, None)
    assert isinstance(fast, TensorBatches) and collate is not None
    assert loader_parts(_PerSample(*ds.tensors), None)[0].__class__ is _PerSample, "a subclass may change __getitem__"
    mine = torch.utils.data.default_collate
    assert loader_parts(ds, mine) == (ds, mine), "a user's collate_fn is kept, and the per-sample fetch with it"


def test_batched_loader_gives_the_per_sample_loaders_batches():
    ds = torch.utils.data.TensorDataset(torch.randn(50, 2, 3), torch.randint(0, 4, (50,)))
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(3)),
                                            7, drop_last=False)
    slow = list(torch.utils.data.DataLoader(ds, batch_sampler=sampler))
    fast_ds, collate = loader_parts(ds, None)
    sampler.sampler.generator.manual_seed(3)
    fast = list(torch.utils.data.DataLoader(fast_ds, batch_sampler=sampler, collate_fn=collate))
    assert len(fast) == len(slow) == 8
    for a, b in zip(fast, slow):
        assert isinstance(a, list) and len(a) == 2 and all(torch.equal(u, v) and u.dtype == v.dtype for u, v in zip(a, b))
    idx = [5, 0, 49, 5]
    hwc = torch.randn(50, 4, 4, 3).permute(0, 3, 1, 2)  # a channels-last source, as an HWC image loader makes
    fast_batch = fetch_batch(torch.utils.data.TensorDataset(hwc), idx, None)[0]
    slow_batch = torch.utils.data.default_collate([(hwc[i],) for i in idx])[0]
    assert torch.equal(fast_batch, slow_batch) and fast_batch.stride() == slow_batch.stride(), "same layout as stacking"
    assert all(torch.equal(u, v) for u, v in zip(fetch_batch(ds, idx, None), fetch_batch(_PerSample(*ds.tensors), idx, None)))


def test_fit_trains_bit_identically_with_the_batched_fetch():
    # A fixed batch: which steps DEBA measures (and so splits) follows measured costs, i.e. the
    # clock, and a split step rounds differently; a fixed batch measures nothing, so two runs on
    # the same samples must agree to the bit. (Batches whose size changes: the loader test above.)
    torch.manual_seed(0)
    x = torch.randn(300, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)

    def run(data):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 4))
        seen = []
        model[0].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].clone()))
        res = deba.fit(model, data, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), batch_size=24,
                       fixed_batch=24, loss_fn=torch.nn.functional.cross_entropy, epochs=2, progress=False, seed=4)
        return res, seen, torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    fetched = []
    real = TensorBatches.__getitems__
    TensorBatches.__getitems__ = lambda self, idx: fetched.append(len(idx)) or real(self, idx)
    try:
        fast, seen_fast, w_fast = run((x, y))
    finally:
        TensorBatches.__getitems__ = real
    slow, seen_slow, w_slow = run(_PerSample(x, y))
    assert sum(fetched) >= 2 * 300, "fit took the batched path (every sample of both epochs)"
    assert fast.steps == slow.steps == 26 and len(seen_fast) == len(seen_slow)
    assert all(torch.equal(a, b) for a, b in zip(seen_fast, seen_slow)), "the same batches, in the same order"
    assert torch.equal(w_fast, w_slow), "and so the same weights"
    model = torch.nn.Linear(8, 4)
    big = torch.randn(1100, 8), torch.randint(0, 4, (1100,))  # three evaluation batches of 512
    assert deba.evaluate(model, big, torch.nn.functional.cross_entropy) == \
        deba.evaluate(model, _PerSample(*big), torch.nn.functional.cross_entropy)
