"""A Lightning run with DEBA, in its own process (DDP launches, SIGKILL and resume tests).

    python tests/lightning_worker.py OUT --tier {callback,module} [--devices N] [--epochs E]
                                     [--ckpt-every K] [--resume CKPT]

Writes OUT/history/deba_history*.jsonl (every step, per rank) and OUT/ids-<pid>-rank<r>.txt (the
sample ids of every step's batch, one line per step, from the collate function).
"""

import argparse
import os
import sys
import warnings

import torch

torch.set_num_threads(1)
warnings.simplefilter("ignore")

import lightning as L  # noqa: E402

from deba.adapters.lightning import DebaCallback, DebaModule, deba_dataloader  # noqa: E402
from deba.app.data import load_dataset  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--tier", choices=("callback", "module"), default="callback")
ap.add_argument("--devices", type=int, default=1)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--ckpt-every", type=int, default=0)
ap.add_argument("--resume", default=None)
ap.add_argument("--data-dir", default=os.environ.get("DEBA_FASHION_MNIST"))
args = ap.parse_args()

data = load_dataset("fashion-mnist", data_dir=args.data_dir, train_subset=480, test_subset=64, size=28)
x, y = data.train.tensors
ids = torch.arange(len(y))
dataset = torch.utils.data.TensorDataset(x, y, ids)
TABLE = {16: 1000.0, 32: 1005.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0}  # decisions free of timing


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 10))

    def forward(self, inputs):
        return self.net(inputs)

    def loss(self, batch):
        return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

    def training_step(self, batch, batch_idx):
        return self.loss(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    def train_dataloader(self):
        rank = self.trainer.global_rank
        log = open(os.path.join(args.out, f"ids-{os.getpid()}-rank{rank}.txt"), "a")

        def collate(items):
            batch = torch.utils.data.default_collate(items)
            log.write(" ".join(map(str, batch[2].tolist())) + "\n")
            log.flush()
            return batch

        return deba_dataloader(dataset, 32, seed=3, collate_fn=collate)


class ModuleNet(DebaModule, Net):
    def deba_loss(self, batch):
        return self.loss(batch)


callbacks = [DebaCallback(profile="mlp", throughput=TABLE, history_dir=os.path.join(args.out, "history"),
                          max_micro_batch=40)]
if args.ckpt_every:
    callbacks.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=os.path.join(args.out, "ckpt"), save_top_k=-1,
                                                         every_n_train_steps=args.ckpt_every, filename="{step}"))
trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=args.devices,
                    strategy="ddp" if args.devices > 1 else "auto", use_distributed_sampler=False,
                    callbacks=callbacks, logger=False, enable_checkpointing=bool(args.ckpt_every),
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
trainer.fit(ModuleNet() if args.tier == "module" else Net(), ckpt_path=args.resume)
print(f"rank {trainer.global_rank} done: {callbacks[0].engine.steps} steps, {callbacks[0].engine.samples} samples")
sys.stdout.flush()
os._exit(0)
