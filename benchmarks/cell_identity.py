"""One study cell with a fixed throughput table: does a code change leave it bit-identical?

A study cell decides from throughput it measures, so two runs of the same code part wherever the
machine's timing differs. With a fixed table (and no start-up probe) the decisions depend on the
observations only; this runs the study's own cell (``deba.app.study.cells.run_cell``, its model,
data, optimizer, schedule and evaluations) that way and writes its trajectory, accuracy curve and
step count as JSON, so the old and the new code can be compared on the study's real tasks.

    python benchmarks/cell_identity.py small fashion-mlp deba 0 --data-dir ../shared/data/fashion-mnist out.json
    python benchmarks/fingerprint.py --compare ...   # or diff the two JSON files

The table: ``samples/s = 400 * B**0.8`` (growth pays at every size) unless ``--table`` gives a
``results.json``-style throughput file's ``{"samples_per_s": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import deba
from deba.app.study import cells
from deba.app.study.methods import method_config
from deba.app.study.runner import load_task_data
from deba.app.study.spec import PRESETS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("task")
    ap.add_argument("method")
    ap.add_argument("seed", type=int)
    ap.add_argument("out")
    ap.add_argument("--data-dir")
    ap.add_argument("--table")
    args = ap.parse_args()
    task = next(t for t in PRESETS[args.preset].tasks if t.name == args.task)
    sizes = [task.batch // 2 * 2 ** i for i in range(8)]
    table = {b: 400.0 * b ** 0.8 for b in sizes}
    if args.table:
        table = {int(k): float(v) for k, v in json.loads(Path(args.table).read_text())["samples_per_s"].items()}
    real_fit = cells.fit

    def fit_with_table(*a, **kw):
        kw.update(throughput=table, probe_throughput=False)
        return real_fit(*a, **kw)

    cells.fit = fit_with_table
    torch.set_num_threads(1)
    data = load_task_data(task, args.data_dir)
    detected = deba.profile_for(cells.build_model(task, data, args.seed)).starting_at(task.batch)
    config = method_config(args.method, detected, task.batch, None, schedule=task.schedule)
    rec = cells.run_cell(task, args.method, config, args.seed, data)
    keep = {k: rec[k] for k in ("final_accuracy", "samples", "steps", "equivalent_samples", "trajectory", "changes",
                                "batch_range")}
    keep["accuracy_curve"] = [(p["steps"], p["accuracy"]) for p in rec["curve"]]
    Path(args.out).write_text(json.dumps(keep))
    print(args.task, args.method, "acc", rec["final_accuracy"], "steps", rec["steps"], "batches", rec["batch_range"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
