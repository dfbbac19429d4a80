"""Which LR schedule lets a `small` task's fixed-batch run plateau (< 0.3 points in its last 20 %)?

Usage: python benchmarks/plateau_schedules.py TASK {held,cosine,step} EPOCHS SEED [DATA_DIR]

Trains the task's fixed-small cell (the study's `run_cell`) under the named schedule and prints
the plateau gain (the mean of the last 3 evaluations minus the evaluation at 80 %), that final
mean and the 20 evaluations. `held` and `cosine` are the study's (deba_core/app/study/schedule.py);
`step` is x0.1 at 50 % and 75 %, for comparison.

Outcome (docs/benchmarks.md, "The schedule"): under the full cosine no task plateaued (0.25-0.73
points on seeds 0-1); under `held` fashion-mlp (20 ep) gained 0.09-0.25 and ended as accurate,
fashion-cnn (8 ep) -0.12, fashion-resnet -0.01 at 16 epochs but starved at 8 (86.1 % against
the full cosine's 87.8 %), hence 16.
"""
import dataclasses
import sys

import deba
from deba.app.study import cells, schedule
from deba.app.study.analysis import plateau_gain
from deba.app.study.methods import method_config
from deba.app.study.runner import load_task_data
from deba.app.study.spec import PRESETS


def step(progress: float) -> float:
    return 1.0 if progress < 0.5 else (0.1 if progress < 0.75 else 0.01)


if len(sys.argv) not in (5, 6) or sys.argv[2] not in ("held", "cosine", "step"):
    sys.exit(__doc__.split("\n\n")[1])
name, kind, epochs, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
data_dir = sys.argv[5] if len(sys.argv) == 6 else "../shared/data/fashion-mnist"
task = next((t for t in PRESETS["small"].tasks if t.name == name), None)
if task is None:
    sys.exit(f"TASK must be one of {', '.join(t.name for t in PRESETS['small'].tasks)}")
if kind == "step":  # not a study schedule: register it for this process only
    schedule.SCHEDULES["step"] = step
task = dataclasses.replace(task, epochs=epochs, schedule=kind)
data = load_task_data(task, data_dir)
detected = deba.profile_for(cells.build_model(task, data, seed)).starting_at(task.batch)
rec = cells.run_cell(task, "fixed-small", method_config("fixed-small", detected, task.batch, schedule=task.schedule), seed, data)
accs = [100 * p["accuracy"] for p in rec["curve"]]
print(f"{name} {kind} {epochs:g} ep seed {seed}: plateau gain {100 * plateau_gain(rec):.2f} points, "
      f"final (mean of last 3) {sum(accs[-3:]) / 3:.2f} %")
print("evaluations:", " ".join(f"{a:.1f}" for a in accs))
