"""A deba.fit run in its own process, for the kill-and-resume test.

    python fit_worker.py RUN_DIR [--resume]

Writes RUN_DIR/log/history.jsonl and RUN_DIR/order-<pid>.txt (the sample ids of every step, in
order: targets carry their sample id as id * 10 + label).
"""

import os
import sys

import torch

import deba

run_dir = sys.argv[1]
resume = "--resume" in sys.argv
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

g = torch.Generator().manual_seed(0)
n = 600
x = torch.randn(n, 1, 12, 12, generator=g)
labels = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, 0, 0, 0] > 0).long()
ids = torch.arange(n)
targets = ids * 10 + labels
order_file = open(os.path.join(run_dir, f"order-{os.getpid()}.txt"), "a")


def loss_fn(out, y):
    order_file.write(" ".join(map(str, (y // 10).tolist())) + "\n")
    order_file.flush()
    return torch.nn.functional.cross_entropy(out, y % 10)


torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 10 * 10, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
profile = deba.load_profile("mlp").replace(interval=2, window=3, min_samples=2, warmup=1, cooldown=1,
                                            increase_above=0.2, decrease_below=0.1)
# The v2 default (goodput, equivalent budget, timing as shares of the run) with a fixed throughput
# table, so decisions are a pure function of the observations and two runs can be compared.
TABLE = {16: 1000.0, 32: 1005.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0}  # splitting 32 is cheap
deba.fit(model, (x, targets), optimizer=opt, loss_fn=loss_fn, profile=profile, epochs=3, progress=False,
         throughput=TABLE,
         log_dir=os.path.join(run_dir, "log"), checkpoint_dir=os.path.join(run_dir, "ckpt"), checkpoint_every=1,
         resume=resume, seed=5, tensorboard=False)
print("DONE")
