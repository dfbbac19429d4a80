"""How fast a batch of 3x32x32 tensors is assembled: per-sample DataLoader vs the batched fetch.

Usage: python benchmarks/tensor_batches.py

Prints samples/s of both over one shuffled pass of 60,000 Fashion-MNIST-sized images (3x32x32,
float32) at batch 128, 512 and 2048, interleaved and repeated 3 times (median), and their ratio.
What ``deba.fit`` gains from ``deba.training.tensor_batches`` wherever a GPU trains faster than one
CPU thread can stack samples (docs/benchmarks.md, "On a GPU").
"""
import statistics
import time

import torch

from deba.training.tensor_batches import loader_parts

ds = torch.utils.data.TensorDataset(torch.randn(60_000, 3, 32, 32), torch.randint(0, 10, (60_000,)))


def rate(batch: int, fast: bool) -> float:
    data, collate = loader_parts(ds, None) if fast else (ds, None)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(0))
    t0, n = time.perf_counter(), 0
    for _, y in loader:
        n += len(y)
    return n / (time.perf_counter() - t0)


for b in (128, 512, 2048):
    runs = {False: [], True: []}
    for _ in range(3):
        for fast in (False, True):
            runs[fast].append(rate(b, fast))
    slow, fast = statistics.median(runs[False]), statistics.median(runs[True])
    print(f"batch {b:5d}: per-sample {slow:9.0f} samples/s, batched {fast:9.0f} samples/s, {fast / slow:5.1f}x")
