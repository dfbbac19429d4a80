"""What the noise measurements cost a fixed baseline: the old interval against the new one, side by side.

A fixed batch never trains at B/2, so ``T(B/2)`` stays unknown. The old interval then measured the
noise every 10 steps for the whole run. The new one assumes the costliest half, a measurement every
200 steps. This script trains the study's ``fixed-small`` cell of a task under each rule (the old
one restored by a wrapper), alternating the order, in one process, and prints the training times
and the ratio of their medians. On BatchNorm models training is bit-identical (shadow halves), so
only the time differs.

    python benchmarks/fixed_measurement_overhead.py fashion-cnn 2 6   # task, epochs, rounds
    python benchmarks/fixed_measurement_overhead.py resnet18 4 4

Measured 2026-12-04 (Intel Xeon, 2 cores): fashion-cnn 1.043x, ResNet-18 (``cpu``) 1.072x.
"""
import dataclasses
import statistics
import sys

import torch

import deba
from deba.app.study.spec import PRESETS
from deba.app.study.runner import load_task_data
from deba.app.study.cells import build_model, run_cell
from deba.app.study.methods import method_config
from deba.control.scheduler import BatchScheduler

torch.set_num_threads(2)
if len(sys.argv) < 4:
    raise SystemExit("usage: fixed_measurement_overhead.py TASK EPOCHS ROUNDS [DATA_DIR]")
name, epochs, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
task = next(t for t in PRESETS["small"].tasks + PRESETS["cpu"].tasks if t.name == name)
task = dataclasses.replace(task, epochs=epochs, evals=2)
data = load_task_data(task, sys.argv[4] if len(sys.argv) > 4 else "../shared/data/fashion-mnist")
new = BatchScheduler.measurement_interval


def old(self, own_seconds=None, split=True, shadow=False):
    b = self.batch_size
    if split and self.needs_noise and self.throughput.samples_per_second(max(1, -(-b // 2))) is None:
        return 10
    return new(self, own_seconds, split, shadow)


times = {"old": [], "new": []}
for r in range(rounds):
    for label in (("old", "new") if r % 2 == 0 else ("new", "old")):
        BatchScheduler.measurement_interval = old if label == "old" else new
        det = deba.profile_for(build_model(task, data, 0)).starting_at(task.batch)
        rec = run_cell(task, "fixed-small", method_config("fixed-small", det, task.batch, None, schedule=task.schedule), 0, data)
        times[label].append(rec["train_time_s"])
        print(label, round(rec["train_time_s"], 2), rec["final_accuracy"], flush=True)
BatchScheduler.measurement_interval = new
print({k: round(statistics.median(v), 2) for k, v in times.items()},
      "old/new =", round(statistics.median(a / b for a, b in zip(times["old"], times["new"])), 3))
