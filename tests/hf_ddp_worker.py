"""DebaTrainer under torchrun: the tiny BERT docstring task on 2 processes (gloo, CPU).

    torchrun --nproc-per-node 2 tests/hf_ddp_worker.py OUT_DIR
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import torch  # noqa: E402
from transformers import TrainingArguments  # noqa: E402

import deba  # noqa: E402
from deba.adapters.huggingface import DebaTrainer  # noqa: E402
from hf_text import docstring_task, tiny_bert  # noqa: E402

out = sys.argv[1]
torch.set_num_threads(1)


class IndexLog(torch.utils.data.Dataset):
    def __init__(self, inner, path):
        self.inner, self.fh = inner, open(path, "a")

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.fh.write(f"{int(i)}\n")
        self.fh.flush()
        return self.inner[i]


train, test, tok, k = docstring_task()
rank = int(os.environ.get("RANK", "0"))
profile = deba.load_profile("vit_b16").replace(interval=2, window=4, min_samples=3, warmup=2, cooldown=2,
                                               increase_above=0.3, decrease_below=0.1, growth_factor=1.5, min_gain=0.02)
# A fixed table (no start-up probe reading the dataset, decisions a pure function of the observations)
# and the strict sample budget: exactly 3 epochs, so "every sample once per epoch" can be counted.
TABLE = {16: 1000.0, 32: 1005.0, 40: 1250.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0, 512: 8000.0}
args = TrainingArguments(out, num_train_epochs=3, learning_rate=2e-3, logging_steps=4, save_strategy="no", report_to=[],
                         use_cpu=True, eval_strategy="no", disable_tqdm=True, seed=0, ddp_backend="gloo")
trainer = DebaTrainer(model=tiny_bert(len(tok), k), args=args, train_dataset=IndexLog(train, f"{out}/fetched-rank{rank}.txt"),
                      deba_profile=profile, deba_throughput=TABLE, deba_budget="samples")
trainer.train()
print(f"rank {rank}: samples {trainer.deba_samples}, accelerate processes {trainer.accelerator.num_processes}")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"logits": logits, "loss": torch.nn.functional.cross_entropy(logits, labels)}


class TinyData(torch.utils.data.Dataset):
    def __init__(self, n=256):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


# The start-up probe under DDP (the run's: no time cut-off, passes under no_sync): every rank times
# the same sizes, and the run then trains on both processes.
probe_args = TrainingArguments(f"{out}/probe", max_steps=-1, num_train_epochs=1, learning_rate=0.05, save_strategy="no",
                               report_to=[], use_cpu=True, eval_strategy="no", disable_tqdm=True, seed=0,
                               ddp_backend="gloo", per_device_train_batch_size=16)
probed = DebaTrainer(model=Tiny(), args=probe_args, train_dataset=TinyData(), deba_profile="mlp",
                     deba_probe_throughput=True, deba_max_samples=128)
probed.train()
sizes = probed.deba_run.clock["probe_sizes"]
every = [None, None]
torch.distributed.all_gather_object(every, sizes)
assert len(sizes) >= 2 and every[0] == every[1], every
print(f"rank {rank}: probe sizes {sizes}")
# Tear the process group down explicitly: leaving it to interpreter exit can abort gloo's threads.
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
# Skip interpreter teardown: a C++ thread left by the gloo/accelerate stack now and then aborts the
# process at exit ("terminate called without an active exception") after all work is done.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
