"""Re-analyse a published study with the start-up probe priced in (cells from before it was recorded).

Cells run before 2026-12-04 (fourth session) do not record the start-up throughput probe that
``deba.fit`` runs before a goodput policy's first step, and their measured training time leaves it
out. This script writes a study's ``results.json`` back into a study folder (one file per cell, the
throughput tables, the noise-truth files) and gives each cell of a probing method the probe it ran:
the sizes ``startup_sizes`` picks from the method's profile, ``passes_per_size()`` passes each, cut
after the size at which the table's time passes the probe's 5 s, as ``probe_throughput`` does with
its clock. The record says it was reconstructed (``"reconstructed": true``, ``"seconds": null``).
The measured times stay as measured (without the probe); ``deba bench --analyse-only`` on the
folder then prices the probe into the modelled time.

    python benchmarks/reprice_probe.py docs/benchmarks/v2-small-held/results.json runs/reprice-small
    deba bench --preset small --analyse-only --out runs/reprice-small
"""

from __future__ import annotations

import argparse
import json
import shutil
import types
from pathlib import Path
from typing import Any

PROBING = ("deba", "deba-uniform", "goodput-ungated")  # the goodput policies (``needs_noise``)


def probe_of(record: dict[str, Any], task: Any, table: dict[str, float]) -> dict[str, Any]:
    """The probe a cell of a probing method ran, rebuilt from its profile and the task's table."""
    import deba
    from deba.app.study.analysis import to_model
    from deba.app.study.cells import build_model
    from deba.app.study.methods import method_config
    from deba.training.throughput_probe import passes_per_size, startup_sizes

    data = types.SimpleNamespace(channels=task.channels, num_classes=10, size=task.size)
    b0 = int(record.get("initial_batch", task.batch))  # as the cell ran, not as the preset says now
    detected = deba.profile_for(build_model(task, data, record["seed"])).starting_at(b0)
    profile = method_config(record["method"], detected, b0, schedule=task.schedule).profile
    if record["method"] == "deba" and record.get("overrides"):
        profile = profile.replace(**record["overrides"])  # as runner.run_study applies them
    tm, passes, spent, sizes = to_model(table), passes_per_size(), 0.0, []
    for b in startup_sizes(b0, profile.max_batch, profile.granularity):
        sizes.append(b)
        spent += passes * b / tm.samples_per_second(b)
        if spent > 5.0:  # probe_throughput's max_seconds
            break
    return {"sizes": sizes, "passes": passes, "seconds": None, "reconstructed": True}


def main() -> None:
    from deba.app.study.runner import cell_path, write_json
    from deba.app.study.spec import PRESETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="a study's results.json")
    ap.add_argument("out", type=Path, help="a new study folder to write the cells into")
    args = ap.parse_args()
    published = json.loads(args.results.read_text())
    preset = PRESETS[published["preset"]["name"]]
    tasks = {t.name: t for t in preset.tasks}
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: give the re-analysis its own folder")
    for name, table in published["throughput"].items():
        write_json(args.out / "throughput" / f"{name}.json", table)
    derived = ("reached_target", "to_target", "modelled_time_s")  # the analysis writes these again
    rebuilt = 0
    for c in published["cells"]:
        rec = {k: v for k, v in c.items() if k not in derived}
        if rec["method"] in PROBING and "probe" not in rec:
            rec["probe"] = probe_of(rec, tasks[rec["task"]], published["throughput"][rec["task"]]["samples_per_s"])
            rebuilt += 1
        write_json(cell_path(args.out, rec["task"], rec["method"], rec["seed"]), rec)
    truth = args.results.parent / "truth"
    if truth.is_dir():
        shutil.copytree(truth, args.out / "truth")
    print(f"{len(published['cells'])} cells written to {args.out}, {rebuilt} given a reconstructed probe")


if __name__ == "__main__":
    main()
