"""Plain Lightning vs Lightning with DEBA's callback held at a fixed batch: the adapter's overhead.

    python benchmarks/lightning_overhead.py [--repeats 3] [--epochs 2] [--data-dir ../shared/data/fashion-mnist]

The same module (784-256-256-10 MLP on 12,000 Fashion-MNIST images, batch 128), the same data
order source, runs alternated (plain, DEBA, plain, DEBA...) so machine load drifts hit both; the
profile's bounds pin DEBA's batch to 128, so only its per-step work differs. Prints the median fit
time of each and the overhead (target <= 2 %).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import lightning as L
import torch

import deba
from deba.adapters.lightning import DebaCallback, deba_dataloader
from deba.app.data import load_dataset

HERE = Path(__file__).resolve().parent


class MLP(L.LightningModule):
    def __init__(self, train_set, loader):
        super().__init__()
        torch.manual_seed(0)
        self.train_set, self.loader = train_set, loader
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    def train_dataloader(self):
        return self.loader(self.train_set)


def _fit(train_set, with_deba: bool, epochs: int, batch: int) -> float:
    if with_deba:
        profile = deba.load_profile("mlp").replace(min_batch=batch, max_batch=batch, initial_batch=batch)
        callbacks, loader = [DebaCallback(profile=profile, probe_throughput=False)], lambda d: deba_dataloader(d, batch)
    else:
        callbacks = []
        loader = lambda d: torch.utils.data.DataLoader(d, batch_size=batch, shuffle=True,  # noqa: E731
                                                       generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    t0 = time.perf_counter()
    trainer.fit(MLP(train_set, loader))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data" / "fashion-mnist"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset("fashion-mnist", data_dir=args.data_dir, size=28, train_subset=12000, test_subset=100)
    _fit(data.train, False, 1, args.batch)  # warm-up (allocator, kernels)
    plain, adapted = [], []
    for _ in range(args.repeats):
        plain.append(_fit(data.train, False, args.epochs, args.batch))
        adapted.append(_fit(data.train, True, args.epochs, args.batch))
    p, d = statistics.median(plain), statistics.median(adapted)
    print(f"lightning {L.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.epochs} epochs of 12,000 at batch {args.batch}, {args.repeats} alternated repeats")
    print(f"plain Lightning   {p:7.2f} s  (runs {', '.join(f'{t:.2f}' for t in plain)})")
    print(f"with DebaCallback {d:7.2f} s  (runs {', '.join(f'{t:.2f}' for t in adapted)})")
    print(f"overhead          {100 * (d - p) / p:7.2f} %   (target <= 2 %)")


if __name__ == "__main__":
    main()
