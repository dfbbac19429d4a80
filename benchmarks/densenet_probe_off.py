"""DenseNet-121 (cpu preset task), DEBA with the shrink floored at 32 and the start-up probe off: does it match the fixed batch?

Usage: python benchmarks/densenet_probe_off.py SEED {noprobe,probe,nomeasure}   (prints final accuracy, steps, batch changes)

Outcome (docs/benchmarks.md, DenseNet-121): the gap it chased was the noise-measurement split on a
BatchNorm model. Since measurement uses a shadow half (deba_core/training/shadow.py) every mode
trains bit-identically to the fixed batch: seeds 0 and 1 in `probe` mode end at 73.2 and 70.0 %,
the fixed cells' figures on the same machine.
"""
import dataclasses
import sys

import deba
from deba.app.study import cells as C
from deba.app.study.spec import PRESETS
from deba.app.study.runner import load_task_data
from deba.app.study.methods import method_config
task = next(t for t in PRESETS["cpu"].tasks if t.name == "densenet121")
data = load_task_data(task, "../shared/data/fashion-mnist")
if len(sys.argv) != 3 or sys.argv[2] not in ("noprobe", "probe", "nomeasure"):
    sys.exit("usage: densenet_probe_off.py SEED {noprobe,probe,nomeasure}")
seed, mode = int(sys.argv[1]), sys.argv[2]
orig = C.fit
def fit(*a, **k):
    if mode == "noprobe":
        k["probe_throughput"] = False
    return orig(*a, **k)
C.fit = fit
if mode == "nomeasure":  # the probe runs; no step is a noise-measurement (split) step
    from deba.training.step import StepEngine
    StepEngine._measure_now = lambda self: False
detected = deba.profile_for(C.build_model(task, data, seed)).starting_at(task.batch)
cfg = method_config("deba", detected, task.batch, None, schedule=task.schedule)
cfg = dataclasses.replace(cfg, profile=cfg.profile.replace(min_batch=32))
rec = C.run_cell(task, "deba", cfg, seed, data)
print(mode, seed, rec["final_accuracy"], rec["steps"], rec["changes"])
