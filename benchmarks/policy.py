"""Fixed batch vs the published rule vs the goodput policy, side by side on small real tasks.

    python benchmarks/policy.py [--tasks digits-mlp fashion-mlp small-cnn resnet18] [--seeds 3]
                                [--epochs N] [--data-dir ../shared/data/fashion-mnist]

Per task: one throughput table measured up front (batch assembly + forward + backward, median of
repeats, at 16..512), then for each seed the three methods interleaved (so machine load drifts hit
all alike): ``fixed`` (the starting batch), ``stability`` (``policy="stability"``, the published
rule on v1's signals and interval timing, linear LR), ``goodput`` (the v2 default profile as
detected: ``policy="goodput"``, ``lr_scaling: auto``, timing as shares of the run, budget in
equivalent samples). Every method uses the same cosine LR schedule counted in samples. Printed:
accuracy, steps, samples, measured training time and modelled time (sum of B / T(B) over the steps
from the table), with the batch range and the last noise-scale estimate.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from pathlib import Path

import torch

import deba
from deba.app.data import load_dataset
from deba.app.models import make_model
from deba.control.throughput import ThroughputModel
from deba.training.step import loss_of
from deba.training.throughput_probe import probe_throughput

TASKS = {
    # name: (dataset, model, size, channels, train subset, epochs, batch, lr)
    "digits-mlp": ("digits", "small-mlp", 8, 1, None, 20, 16, 0.05),
    "fashion-mlp": ("fashion-mnist", "small-mlp", 28, 1, None, 4, 32, 0.05),
    "small-cnn": ("fashion-mnist", "small-cnn", 32, 1, 12000, 2, 32, 0.05),
    "resnet18": ("fashion-mnist", "resnet18", 32, 3, 4000, 2, 32, 0.05),
}
SIZES = (16, 32, 64, 128, 256, 512)
HERE = Path(__file__).resolve().parent


def _mean(xs) -> float:
    xs = list(xs)
    return float("nan") if not xs or any(math.isnan(x) for x in xs) else statistics.fmean(xs)


def _sd(xs) -> float:
    xs = list(xs)
    return float("nan") if not xs or any(math.isnan(x) for x in xs) else statistics.pstdev(xs)


def _throughput(task, data) -> dict[int, float]:
    ds, model_name, size, ch, _, _, _, _ = TASKS[task]
    model = make_model(model_name, in_channels=ch, num_classes=data.num_classes, size=size)
    x, y = data.train.tensors
    tm = ThroughputModel()
    probe_throughput(model, loss_of(model, torch.nn.functional.cross_entropy), lambda n: (x[:n], y[:n]), SIZES, tm,
                     repeats=6, max_seconds=60)
    return tm.measured()


def _published(profile: deba.ArchitectureProfile) -> deba.ArchitectureProfile:
    """The architecture's profile as v1 ran it: the published rule on v1's three signals and
    scales, timed in intervals (its counts), linear LR."""
    paper = deba.load_profile("paper")
    return profile.replace(policy="stability", lr_scaling="linear", shares=None, weights=paper.weights, tau=paper.tau,
                           rules=paper.rules, increase_above=0.55, decrease_below=0.3)


def _run(task, data, method, seed, epochs, table):
    _, model_name, size, ch, _, _, batch, lr = TASKS[task]
    torch.manual_seed(seed)
    model = make_model(model_name, in_channels=ch, num_classes=data.num_classes, size=size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    nominal = max(1, epochs * len(data.train) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, nominal) / nominal)))
    kw = dict(optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, epochs=epochs, eval_data=data.test,
              progress=False, seed=seed, tensorboard=False, batch_size=batch, lr_scheduler=sched,
              lr_scheduler_interval="samples")
    profile = deba.profile_for(model)
    if method == "fixed":
        kw.update(fixed_batch=batch, budget="samples")
    elif method == "stability":
        kw.update(profile=_published(profile), budget="samples")
    else:
        kw.update(profile=profile, budget="equivalent")  # the v2 default: goodput, lr_scaling auto
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = deba.fit(model, data.train, **kw)
        except deba.NonFiniteTraining as exc:  # a method that diverges is reported, not hidden
            print(f"  {method} seed {seed}: diverged ({str(exc).split('.')[0]})", flush=True)
            return {"acc": float("nan"), "steps": 0, "samples": 0, "wall": time.perf_counter() - t0,
                    "modelled": float("nan"), "bmin": batch, "bmax": batch, "noise": None, "eq_epochs": 0.0}
    wall = time.perf_counter() - t0
    steps = res.step_records()
    tm = ThroughputModel(table)
    modelled = sum(r["batch_size"] / tm.samples_per_second(r["batch_size"]) for r in steps)
    noise = next((r["noise_scale"] for r in reversed(steps) if r.get("noise_scale") is not None), None)
    return {"acc": res.final["eval_accuracy"], "steps": res.steps, "samples": res.samples, "wall": wall,
            "modelled": modelled, "bmin": min(res.batch_sizes), "bmax": max(res.batch_sizes), "noise": noise,
            "eq_epochs": res.equivalent_epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    ap.add_argument("--data-dir", default=str(HERE.parents[1] / "shared" / "data" / "fashion-mnist"))
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for task in args.tasks:
        ds, _, size, ch, subset, epochs, batch, _ = TASKS[task]
        epochs = args.epochs or epochs
        data = load_dataset(ds, data_dir=args.data_dir, size=size, channels=ch, train_subset=subset, seed=0)
        table = _throughput(task, data)
        print(f"\n## {task}: {ds} {len(data.train)} train / {len(data.test)} test, B0={batch}, {epochs} epochs")
        print("throughput (samples/s): " + ", ".join(f"{b}: {v:.0f}" for b, v in table.items()))
        rows: dict[str, list[dict]] = {m: [] for m in ("fixed", "stability", "goodput")}
        for seed in range(args.seeds):
            for method in rows:  # interleaved
                rows[method].append(_run(task, data, method, seed, epochs, table))
        print(f"{'method':10s} {'acc %':>12s} {'steps':>7s} {'samples':>8s} {'wall s':>8s} {'model s':>8s} "
              f"{'x model':>7s} {'batch':>9s} {'B_noise':>8s} {'eq ep':>6s}")
        base = _mean(r["modelled"] for r in rows["fixed"])
        # statistics of diverged runs are NaN: they show as nan, never as a win
        for method, rs in rows.items():
            acc = [100 * r["acc"] for r in rs]
            noise = [r["noise"] for r in rs if r["noise"] is not None]
            print(f"{method:10s} {_mean(acc):6.2f}±{_sd(acc):4.2f} "
                  f"{_mean(r['steps'] for r in rs):7.0f} {_mean(r['samples'] for r in rs):8.0f} "
                  f"{_mean(r['wall'] for r in rs):8.1f} {_mean(r['modelled'] for r in rs):8.2f} "
                  f"{base / _mean(r['modelled'] for r in rs):7.2f} "
                  f"{min(r['bmin'] for r in rs):4d}-{max(r['bmax'] for r in rs):<4d} "
                  f"{_mean(noise):8.0f} {_mean(r['eq_epochs'] for r in rs):6.2f}", flush=True)


if __name__ == "__main__":
    main()
