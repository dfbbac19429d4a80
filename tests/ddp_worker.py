"""deba.fit under torchrun (or alone) on a Fashion-MNIST subset, for the distributed tests.

    torchrun --nproc-per-node 2 tests/ddp_worker.py RUN_DIR [--epochs 2] [--max-samples N] [--resume]

Each rank writes RUN_DIR/order-<tag>-rank<r>.txt: the sample ids of every step it ran (targets
carry their sample id as id * 10 + label), one line per step.
"""

import argparse
import os

import torch
import torch.distributed as dist

import deba
from deba.app.data import load_dataset

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--max-samples", type=int, default=None)
ap.add_argument("--resume", action="store_true")
ap.add_argument("--tag", default="run")
ap.add_argument("--policy", default="stability", choices=("stability", "goodput"))
ap.add_argument("--data-dir", default=os.environ.get("DEBA_FASHION_MNIST"))
args = ap.parse_args()

if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if dist.is_initialized() else 0
torch.set_num_threads(1)

data = load_dataset("fashion-mnist", data_dir=args.data_dir, train_subset=400, test_subset=100, size=28)
x, y = data.train.tensors
targets = torch.arange(len(y)) * 10 + y
order = open(os.path.join(args.run_dir, f"order-{args.tag}-rank{rank}.txt"), "a")


def loss_fn(out, t):
    order.write(" ".join(map(str, (t // 10).tolist())) + "\n")
    order.flush()
    return torch.nn.functional.cross_entropy(out, t % 10)


torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(4), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 6 * 6, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
profile = deba.load_profile("mlp").replace(interval=2, window=3, min_samples=2, warmup=1, cooldown=1,
                                            increase_above=0.2, decrease_below=0.1, max_micro_batch=24)
if args.policy == "stability":
    # The published rule with linear LR reads no noise: one process and two ranks see the same
    # observations, so their trajectories can be compared step by step. Timing in counts (not
    # shares of the budget), so a first part stopped by --max-samples decides as the full run does.
    profile = profile.replace(policy="stability", lr_scaling="linear", shares=None, growth_factor=1.5)
    table = None
else:
    # The v2 default on a fixed table (decisions a pure function of the observations); the ranks are
    # the noise estimator's small estimates. Splitting a batch is cheap here, growing pays.
    table = {16: 1000.0, 32: 1005.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0}
res = deba.fit(model, (x, targets), optimizer=opt, loss_fn=loss_fn, profile=profile, epochs=args.epochs, throughput=table,
               max_samples=args.max_samples, progress=False, log_dir=os.path.join(args.run_dir, "log"),
               checkpoint_dir=os.path.join(args.run_dir, "ckpt"), checkpoint_every=1, resume=args.resume, seed=3,
               tensorboard=False)
print(f"rank {rank} done: steps {res.steps} samples {res.samples}")
if dist.is_initialized():
    dist.destroy_process_group()
import sys  # noqa: E402

sys.stdout.flush()
os._exit(0)  # see hf_ddp_worker.py: avoid a rare abort during interpreter teardown
