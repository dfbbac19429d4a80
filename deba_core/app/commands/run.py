"""``deba run``: train with DEBA and fixed-batch baselines side by side on a real dataset."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from deba.app.cli import command
from deba.errors import DebaConfigError
from deba.training.fit import FitResult, fit
from deba.app.commands.common import (
    add_data_model_args,
    build_optimizer,
    check_data_model_args,
    check_int,
    check_strategy,
    load_run_inputs,
    make_out_dir,
)

__all__ = ["explain", "parse_compare", "summarise"]


def parse_compare(items: list[str] | None, initial: int) -> list[int]:
    """``["static:64", "static"]`` -> batch sizes (``static`` alone is the profile's initial batch).

    Args:
        items: the ``--compare`` values; ``None`` (not given) means one ``static`` baseline.
        initial: the profile's initial batch, the size of a bare ``static``.

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


def summarise(name: str, result: FitResult) -> dict[str, Any]:
    """One row of the run table: wall time, accuracy, steps and the batch range of ``result``."""
    steps = result.step_records()
    sizes = [r["batch_size"] for r in steps]
    return {
        "method": name,
        "wall_time_s": round(result.wall_time, 3),
        "final_accuracy": result.final.get("eval_accuracy"),
        "final_loss": result.final.get("eval_loss"),
        "optimizer_steps": result.steps,
        "samples": result.samples,
        "epochs": result.epochs,
        "batch_min": min(sizes) if sizes else None,
        "batch_max": max(sizes) if sizes else None,
        "batch_changes": sum(1 for r in result.history if r.get("changed")),
        "profile": result.profile.name,
        "noise_scale": result.noise_scale,
        "noise_scale_low": result.noise_scale_low,
        "throughput": {str(b): t for b, t in result.throughput.items()},
        "throughput_measured": list(result.measured_sizes),
        "why": explain(result),
    }


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


def _noise(row: dict[str, Any]) -> str:
    point, low = row["noise_scale"], row["noise_scale_low"]
    if point is None and low is None:
        return "-"
    return (f"{point:.0f}" if point is not None else "unclear") + (f" (>= {low:.0f})" if low is not None else "")


def _details(rows: list[dict[str, Any]]) -> str:
    """Per method: the noise scale, the throughput table it decided from, and why it moved or held."""
    lines = []
    for r in rows:
        table = ", ".join(f"{b}{'*' if int(b) in r['throughput_measured'] else ''}: {t:.0f}"
                          for b, t in r["throughput"].items())
        lines.append(f"{r['method']}: noise scale B_simple {_noise(r)}; samples/s (* measured) {table or '-'}")
        if not r["method"].startswith("static"):
            lines.append(f"  why: {r['why']}")
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> str:
    head = f"{'method':<18}{'wall s':>9}{'accuracy':>10}{'steps':>8}{'batch range':>14}{'speedup':>9}{'step speedup':>14}"
    lines = [head, "-" * len(head)]
    for r in rows:
        acc = "-" if r["final_accuracy"] is None else f"{100 * r['final_accuracy']:.2f}%"
        rng = f"{r['batch_min']}-{r['batch_max']}"
        lines.append(f"{r['method']:<18}{r['wall_time_s']:>9.1f}{acc:>10}{r['optimizer_steps']:>8}{rng:>14}"
                     f"{r['speedup']:>8.2f}x{r['step_speedup']:>13.2f}x")
    return "\n".join(lines)


def _args(p: argparse.ArgumentParser) -> None:
    add_data_model_args(p, epochs=12)
    p.add_argument("--strategy", default="equal-weight")
    p.add_argument("--compare", action="append", default=None, metavar="static[:BATCH]",
                   help="fixed-batch baseline(s); default: static at the profile's initial batch; repeatable")
    p.add_argument("--max-micro-batch", type=int, default=None)


def _train(args, data, model, profile, strategy, out: Path, fixed: int | None, lr_scale: float) -> FitResult:
    """One ``deba.fit`` run: DEBA (``fixed=None``) or a fixed-batch baseline at LR x ``lr_scale``."""
    base_lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    opt = build_optimizer(args.optimizer, model.parameters(), base_lr * lr_scale)
    return fit(
        model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile=profile,
        strategy=strategy, epochs=args.epochs, eval_data=data.test, device=args.device, log_dir=out,
        progress=not args.no_progress, seed=args.seed, fixed_batch=fixed, max_micro_batch=args.max_micro_batch,
        tensorboard=False,
    )


def check_run_args(args: argparse.Namespace) -> None:
    """Check every ``deba run`` option before anything is loaded or written.

    Raises:
        DebaConfigError: for the first bad value, naming its option.
    """
    check_data_model_args(args)
    check_int("--max-micro-batch", args.max_micro_batch, 1)
    check_strategy("--strategy", args.strategy)
    parse_compare(args.compare, 1)  # the format only; sizes need the profile


def _train_all(args, data, model, profile, out: Path, baselines: list[int]) -> dict[str, FitResult]:
    """DEBA, then each fixed-batch baseline, every one from the same initial weights."""
    initial = copy.deepcopy(model.state_dict())
    results: dict[str, FitResult] = {}
    model.load_state_dict(initial)
    results["deba"] = _train(args, data, model, profile, args.strategy, out, None, 1.0)
    for b in baselines:
        name = f"static-{b}"
        model.load_state_dict(initial)
        # A fixed batch other than the profile's initial one gets the profile's LR scaling.
        results[name] = _train(args, data, model, profile, "equal-weight", out / "baselines" / name, b, profile.lr_factor(b))
    return results


def _rows(results: dict[str, FitResult], reference: FitResult) -> list[dict[str, Any]]:
    """The table rows, with wall-clock and step speedups against ``reference``."""
    rows = []
    for name, res in results.items():
        row = summarise(name, res)
        row["speedup"] = reference.wall_time / max(res.wall_time, 1e-9)
        row["step_speedup"] = reference.steps / max(res.steps, 1)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    """Train DEBA and each baseline from the same initial weights; print a table; write the run folder.

    Every option, the data, the model and the profile are checked before the run folder is created,
    so a refused run leaves nothing behind.
    """
    from deba.app.commands.report import write_report

    check_run_args(args)
    data, model, profile = load_run_inputs(args)
    baselines = parse_compare(args.compare, profile.initial_batch)
    out = make_out_dir(args.out, "run")
    print(f"deba run: {args.dataset} ({len(data.train)} train / {len(data.test)} test, {data.channels}x{data.size}x{data.size}), "
          f"model {args.model}, profile {profile.name}, strategy {args.strategy}, {args.epochs} epochs -> {out}")
    results = _train_all(args, data, model, profile, out, baselines)
    reference_name = f"static-{baselines[0]}" if baselines else "deba"
    rows = _rows(results, results[reference_name])
    print(_table(rows))
    print(_details(rows))
    summary = {
        "command": "deba run",
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "dataset": {"name": args.dataset, "train": len(data.train), "test": len(data.test)},
        "profile": profile.name,
        "reference": reference_name,
        "results": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    written = write_report(out, results)
    print(f"wrote {out / 'history.jsonl'}, {out / 'profile.yaml'}, {out / 'summary.json'}" + (f", {written}" if written else ""))
    return 0


command("run", "train with DEBA and fixed-batch baselines side by side; writes a run folder", _args)(run)
