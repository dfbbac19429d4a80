"""``deba run``: DEBA against the fixed starting batch on a real dataset, where the trade-off is real.

By default: scikit-learn's digits (embedded in its wheel), a two-layer MLP, starting batch 16, 20
epochs, SGD with momentum and a cosine LR on the budget's clock, 3 seeds with the methods
interleaved (so load drift on this machine hits both alike). On a CPU an MLP runs several times
faster per sample at larger batches, so growing can pay; DEBA grows only when its measured noise
scale says a larger batch still makes progress per sample. Printed per method: accuracy, steps,
samples, measured and *modelled* time (sum over steps of ``B / T(B)`` from a throughput table timed
here first), the noise scale, the throughput table DEBA decided from, the batch trajectory and why
it grew or held. Writes ``history.jsonl`` (DEBA, seed 0), ``profile.yaml``, ``summary.json`` and
``report.png`` (accuracy against modelled and measured time, batch size against samples).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from deba.app.command_table import command
from deba.app.commands.common import (
    add_data_model_args,
    build_optimizer,
    check_data_model_args,
    check_int,
    check_strategy,
    load_run_inputs,
    make_out_dir,
    model_for,
)
from deba.errors import DebaConfigError
from deba.training.callbacks import Callback
from deba.training.fit import FitResult, fit

__all__ = ["explain", "parse_compare", "summarise"]


def parse_compare(items: list[str] | None, initial: int) -> list[int]:
    """``["static:64", "static"]`` -> batch sizes (``static`` alone is the starting batch).

    Args:
        items: the ``--compare`` values; ``None`` (not given) means one ``static`` baseline.
        initial: the starting batch, the size of a bare ``static``.

    Raises:
        DebaConfigError: naming ``--compare`` and echoing the bad item.
    """
    sizes: list[int] = []
    for item in items if items is not None else ["static"]:
        kind, _, value = item.partition(":")
        if kind != "static":
            raise DebaConfigError.single("--compare", item, "must be 'static' or 'static:BATCH'")
        if not value:
            sizes.append(initial)
            continue
        if not value.isdigit() or int(value) < 1:
            raise DebaConfigError.single("--compare", item, "needs a positive batch size after 'static:'")
        sizes.append(int(value))
    return sizes


def explain(result: FitResult) -> str:
    """One line: why the batch grew, shrank or held, from the run's decided steps."""
    decided = [r for r in result.step_records() if r.get("decided") and r.get("reason")]
    changes = [r for r in decided if r.get("changed")]
    if changes:
        first, last = changes[0], changes[-1]
        return (f"{len(changes)} change(s) {first['batch_size']} -> {last['next_batch_size']}; "
                f"first: {first['reason']}; last: {last['reason']}")
    if not decided:
        return "no decision was made (too few steps)"
    return f"held at {decided[-1]['next_batch_size']}: {decided[-1]['reason']}"


class Trace(Callback):
    """Every step's batch size, summed as modelled time and kept as changes (the in-memory history
    of a run without ``log_dir`` holds only its last records). The modelled time starts with the
    start-up throughput probe's passes, priced from the same table (a cost the fixed batch does not pay)."""

    def __init__(self, table: dict[str, float] | None) -> None:
        from deba.app.study.analysis import to_model

        self.tm = None if table is None else to_model(table)
        self.modelled, self.sizes, self.changes = 0.0, set(), []

    def on_train_start(self, state: dict[str, Any]) -> None:
        if self.tm is not None:
            from deba.app.study.analysis import probe_cost

            self.modelled += probe_cost(state.get("probe_sizes", ()), state.get("probe_passes", 0), self.tm)

    def on_step_end(self, record: dict[str, Any]) -> None:
        b = record["batch_size"]
        self.sizes.add(b)
        if self.tm is not None:
            self.modelled += b / self.tm.samples_per_second(b)
        if record.get("changed"):
            self.changes.append([record["samples"], record["next_batch_size"]])


def summarise(name: str, result: FitResult, trace: Trace | None = None) -> dict[str, Any]:
    """One run's row: accuracy, steps, times (measured and, with a ``trace``, modelled), batch range, noise."""
    steps = result.step_records() if trace is None else []
    sizes = sorted(trace.sizes) if trace is not None else [r["batch_size"] for r in steps]
    return {
        "method": name,
        "wall_time_s": round(result.wall_time, 3),
        "modelled_time_s": None if trace is None or trace.tm is None else trace.modelled,
        "final_accuracy": result.final.get("eval_accuracy"),
        "final_loss": result.final.get("eval_loss"),
        "optimizer_steps": result.steps,
        "samples": result.samples,
        "equivalent_epochs": result.equivalent_epochs,
        "batch_min": min(sizes) if sizes else None,
        "batch_max": max(sizes) if sizes else None,
        "batch_changes": len(trace.changes) if trace is not None else sum(1 for r in steps if r.get("changed")),
        "trajectory": trace.changes if trace is not None else [[r["samples"], r["next_batch_size"]] for r in steps
                                                               if r.get("changed")],
        "profile": result.profile.name,
        "noise_scale": result.noise_scale,
        "noise_scale_low": result.noise_scale_low,
        "throughput": {str(b): t for b, t in result.throughput.items()},
        "throughput_measured": list(result.measured_sizes),
        "why": explain(result),
    }


def _args(p: argparse.ArgumentParser) -> None:
    add_data_model_args(p, epochs=20, model="small-mlp", size=8)
    p.add_argument("--batch", type=int, default=16, help="the starting batch B0 (the fixed baseline's; default 16)")
    p.add_argument("--seeds", type=int, default=3, help="runs per method, interleaved (default 3)")
    p.add_argument("--strategy", default="equal-weight")
    p.add_argument("--compare", action="append", default=None, metavar="static[:BATCH]",
                   help="fixed-batch baseline(s); default: static at the starting batch; repeatable")
    p.add_argument("--max-micro-batch", type=int, default=None)


def check_run_args(args: argparse.Namespace) -> None:
    """Check every ``deba run`` option before anything is loaded or written.

    Raises:
        DebaConfigError: for the first bad value, naming its option.
    """
    check_data_model_args(args)
    check_int("--max-micro-batch", args.max_micro_batch, 1)
    check_int("--batch", args.batch, 1)
    check_int("--seeds", args.seeds, 1)
    check_strategy("--strategy", args.strategy)
    parse_compare(args.compare, 1)  # the format only


def _train(args, data, profile, out: Path | None, fixed: int | None, seed: int, trace: Trace | None = None
           ) -> FitResult:
    """One ``deba.fit`` run from seed ``seed``'s weights: DEBA (``fixed=None``) or a fixed batch."""
    args_seed = argparse.Namespace(**{**vars(args), "seed": seed})
    model = model_for(args_seed, data)
    b0 = args.batch
    base_lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    # a fixed batch other than B0 gets the profile's LR rule (sqrt for an SGD "auto" profile)
    scale = 1.0 if fixed in (None, b0) else (math.sqrt(fixed / b0) if profile.lr_scaling in ("auto", "sqrt", "adascale")
                                               else profile.lr_factor(fixed, b0))
    opt = build_optimizer(args.optimizer, model.parameters(), base_lr * scale)
    budget = args.epochs * len(data.train)
    nominal = max(1, budget // b0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, nominal) / nominal)))
    return fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile=profile,
               strategy=args.strategy, epochs=args.epochs, batch_size=b0, eval_data=data.test, device=args.device,
               log_dir=out, progress=not args.no_progress, seed=seed, fixed_batch=fixed,
               max_micro_batch=args.max_micro_batch, tensorboard=False, lr_scheduler=sched,
               lr_scheduler_interval="samples", probe_throughput=False if fixed is not None else None,
               callbacks=[trace] if trace is not None else [])


def _table(args, data) -> dict[str, float]:
    """Samples/s of full training steps at B0/2 .. 32 B0 (median of 3 interleaved rounds)."""
    from deba.app.study.throughput import measure_table, table_sizes

    def build():
        model = model_for(args, data)
        return model, build_optimizer(args.optimizer, model.parameters(), args.lr)

    sizes = table_sizes(args.batch, 32 * args.batch)
    return measure_table(build, data, sizes, cap=args.max_micro_batch, rounds=3, seconds_per_size=0.25,
                         device=args.device)["samples_per_s"]


def _train_all(args, data, profile, out: Path, baselines: list[int], table
               ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, FitResult]]:
    """Every method ``--seeds`` times, interleaved; DEBA's seed 0 writes the run folder's history.

    Returns the rows of every run by method, and each method's first-seed result (for the report).
    """
    rows: dict[str, list[dict[str, Any]]] = {f"static-{b}": [] for b in baselines}
    rows["deba"] = []
    results: dict[str, FitResult] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        for name in rows:
            fixed = None if name == "deba" else int(name.split("-")[1])
            first = seed == args.seed
            log = (out if name == "deba" else out / "baselines" / name) if first else None
            trace = Trace(table)
            res = _train(args, data, profile, log, fixed, seed, trace)
            rows[name].append(summarise(name, res, trace))
            if first:
                results[name] = res
    return rows, results


def _combine(name: str, runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds; speedups paired by seed against the reference method."""
    mean = lambda k: statistics.fmean(r[k] for r in runs)  # noqa: E731
    return {**runs[0], "method": name, "seeds": len(runs),
            "final_accuracy": mean("final_accuracy"), "accuracies": [r["final_accuracy"] for r in runs],
            "optimizer_steps": mean("optimizer_steps"), "samples": mean("samples"),
            "wall_time_s": statistics.median(r["wall_time_s"] for r in runs), "modelled_time_s": mean("modelled_time_s"),
            "speedup": statistics.fmean(a["wall_time_s"] / b["wall_time_s"] for a, b in zip(reference, runs)),
            "modelled_speedup": statistics.fmean(a["modelled_time_s"] / b["modelled_time_s"] for a, b in zip(reference, runs)),
            "step_speedup": statistics.fmean(a["optimizer_steps"] / b["optimizer_steps"] for a, b in zip(reference, runs)),
            "batch_min": min(r["batch_min"] for r in runs), "batch_max": max(r["batch_max"] for r in runs)}


def _noise(row: dict[str, Any]) -> str:
    point, low = row["noise_scale"], row["noise_scale_low"]
    if point is None and low is None:
        return "-"
    return (f"{point:.0f}" if point is not None else "unclear") + (f" (>= {low:.0f})" if low is not None else "")


def _details(rows: list[dict[str, Any]], table: dict[str, float]) -> str:
    """The timed table; per method the noise scale, DEBA's own table, the trajectory and why."""
    lines = ["throughput timed here (samples/s, full training steps): "
             + ", ".join(f"{b}: {v:.0f}" for b, v in table.items())]
    for r in rows:
        if r["method"].startswith("static"):
            continue
        seen = ", ".join(f"{b}{'*' if int(b) in r['throughput_measured'] else ''}: {t:.0f}" for b, t in r["throughput"].items())
        traj = " -> ".join(f"{b} at {s:,} samples" for s, b in r["trajectory"]) or "none"
        lines += [f"{r['method']}: noise scale B_simple {_noise(r)} (seed 0, at the end)",
                  f"  the table it decided from (samples/s, * measured in training): {seen or '-'}",
                  f"  batch changes (seed 0): {traj}", f"  why: {r['why']}"]
    return "\n".join(lines)


def _table_text(rows: list[dict[str, Any]]) -> str:
    head = (f"{'method':<12}{'accuracy':>10}{'steps':>8}{'samples':>9}{'measured s':>12}{'modelled s':>12}"
            f"{'batch':>10}{'x measured':>12}{'x modelled':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<12}{100 * r['final_accuracy']:>9.2f}%{r['optimizer_steps']:>8.0f}{r['samples']:>9.0f}"
                     f"{r['wall_time_s']:>12.2f}{r['modelled_time_s']:>12.3f}{r['batch_min']:>5}-{r['batch_max']:<4}"
                     f"{r['speedup']:>11.2f}x{r['modelled_speedup']:>11.2f}x")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Time the throughput table, train every method ``--seeds`` times interleaved, print, write the run folder.

    Every option, the data, the model and the profile are checked before the run folder is created,
    so a refused run leaves nothing behind.
    """
    from deba.app.commands.report import write_report

    check_run_args(args)
    data, _, profile = load_run_inputs(args)
    profile = profile.starting_at(args.batch)
    baselines = parse_compare(args.compare, args.batch)
    out = make_out_dir(args.out, "run")
    print(f"deba run: {args.dataset} ({len(data.train)} train / {len(data.test)} test, {data.channels}x{data.size}x{data.size}), "
          f"model {args.model}, profile {profile.name} ({profile.policy}), starting batch {args.batch}, {args.epochs} epochs, "
          f"{args.seeds} seed(s) interleaved -> {out}", flush=True)
    table = _table(args, data)
    runs, first = _train_all(args, data, profile, out, baselines, table)
    reference = runs[f"static-{baselines[0]}"]
    rows = [_combine(name, rs, reference) for name, rs in runs.items()]
    print(_table_text(rows))
    print(_details(rows, table))
    summary = {"command": "deba run", "args": {k: v for k, v in vars(args).items() if k != "func"},
               "dataset": {"name": args.dataset, "train": len(data.train), "test": len(data.test)},
               "profile": profile.name, "reference": f"static-{baselines[0]}", "throughput_table": table,
               "results": rows, "runs": runs, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    written = write_report(out, first, table)
    print(f"wrote {out / 'history.jsonl'}, {out / 'profile.yaml'}, {out / 'summary.json'}" + (f", {written}" if written else ""))
    return 0


command("run", "DEBA against the fixed starting batch, interleaved seeds, measured and modelled time", _args)(run)
