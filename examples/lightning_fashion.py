"""DEBA in lightning.Trainer on Fashion-MNIST: the callback alone, or the DebaModule mixin.

    python examples/lightning_fashion.py --data-dir ../shared/data/fashion-mnist [--mixin] [--epochs 3]
                                         [--devices 2]

Offline: the four standard IDX .gz files of Fashion-MNIST (or MNIST) in --data-dir. Prints the batch
sizes DEBA chose and the test accuracy; writes the step history to runs/lightning-fashion/.
"""

from __future__ import annotations

import argparse
import math
import warnings

import lightning as L
import torch

from deba.adapters.lightning import DebaCallback, DebaModule, deba_dataloader
from deba.app.data import load_dataset
from deba.training.history import read_history


class FashionMLP(L.LightningModule):
    """784-256-256-10 perceptron, SGD with momentum and a cosine on DEBA's budget clock."""

    def __init__(self, train_set, test_set, batch_size: int = 32, lr: float = 0.05) -> None:
        super().__init__()
        self.train_set, self.test_set, self.batch_size, self.lr = train_set, test_set, batch_size, lr
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        deba_cb = next(c for c in self.trainer.callbacks if isinstance(c, DebaCallback))
        cosine = deba_cb.sample_clock(opt, lambda done: 0.5 * (1 + math.cos(math.pi * done)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}

    def train_dataloader(self):
        return deba_dataloader(self.train_set, self.batch_size)  # DEBA's sampler; batch_size is B0

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.test_set, batch_size=1000)


class FashionMLPMixin(DebaModule, FashionMLP):
    """The same model; DEBA runs each step (micro-batches, measurement steps, per-rank gradients)."""

    def deba_loss(self, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--mixin", action="store_true", help="use the DebaModule mixin (tier 2)")
    ap.add_argument("--devices", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    data = load_dataset("fashion-mnist", data_dir=args.data_dir, size=28)
    module = (FashionMLPMixin if args.mixin else FashionMLP)(data.train, data.test)
    deba_cb = DebaCallback(profile="auto", epochs=args.epochs, history_dir="runs/lightning-fashion", max_micro_batch=512)
    trainer = L.Trainer(max_epochs=-1, accelerator="cpu", devices=args.devices, use_distributed_sampler=False,
                        strategy="ddp" if args.devices > 1 else "auto", callbacks=[deba_cb], logger=False,
                        enable_checkpointing=False)
    trainer.fit(module)
    if trainer.global_rank == 0:
        sizes = [r["batch_size"] for r in read_history("runs/lightning-fashion/deba_history.jsonl")]
        print(f"steps {len(sizes)}, batch sizes {sorted(set(sizes))}, samples {deba_cb.engine.samples}, "
              f"equivalent epochs {deba_cb.engine.equivalent_samples / len(data.train):.2f}, "
              f"val_acc {float(trainer.callback_metrics.get('val_acc', float('nan'))):.4f}")


if __name__ == "__main__":
    main()
