"""``deba calibrate``: a fixed-batch profiling run that writes a calibrated profile.

The run trains at the profile's initial batch (nothing changes), records each decision interval's
metrics and mean loss, then derives:

* ``tau`` per metric: its median over the run, so a typical interval reads as half-unstable;
* thresholds: with those scales the equal-weight score of every interval is computed;
  ``increase_above`` is its ``--grow-quantile`` quantile and ``decrease_below`` its
  ``--shrink-quantile`` quantile (ordered, in [0, 1]);
* weights: the ``learned`` strategy's fit on the recorded intervals (spikes and stalls of the loss
  that followed); with too little signal the weights stay equal and the profile says so.

The profile file it writes is accepted by ``deba run --profile FILE`` and ``deba.fit(profile=FILE)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deba.app.cli import command
from deba.errors import DebaConfigError
from deba.training.fit import FitResult, fit
from deba.profiles.schema import ArchitectureProfile
from deba.control.scoring import instability
from deba.app.commands.common import add_data_model_args, build_optimizer, load_data, make_out_dir, model_for

__all__ = ["calibrate_profile", "intervals_from_history"]


def intervals_from_history(history: list[dict[str, Any]]) -> list[tuple[dict[str, float], float]]:
    """(metrics, mean loss of the interval) for every interval close that had metrics."""
    out: list[tuple[dict[str, float], float]] = []
    losses: list[float] = []
    for r in history:
        if r.get("kind") != "step":
            continue
        if isinstance(r.get("loss"), float) and np.isfinite(r["loss"]):
            losses.append(r["loss"])
        if r.get("metrics"):
            if losses:
                out.append((dict(r["metrics"]), float(np.mean(losses))))
            losses = []
        elif r.get("reason", "").startswith(("warmup", "filling", "cooldown", "calibrating", "score")):
            losses = []  # an interval closed without metrics
    return out


def calibrate_profile(
    profile: ArchitectureProfile,
    intervals: list[tuple[dict[str, float], float]],
    *,
    name: str | None = None,
    grow_quantile: float = 0.5,
    shrink_quantile: float = 0.1,
) -> tuple[ArchitectureProfile, dict[str, Any]]:
    """The calibrated profile and a report of what was measured."""
    from deba.strategies.learned import LearnedStrategy

    if not 0 <= shrink_quantile < grow_quantile <= 1:
        raise DebaConfigError.single("grow_quantile", grow_quantile, f"must be > shrink_quantile ({shrink_quantile}) and <= 1")
    if len(intervals) < 4:
        raise DebaConfigError.single(
            "intervals", len(intervals), "must be >= 4 measured intervals to calibrate",
            remedy="Train longer (--epochs / --steps) or use a profile with a smaller interval and window.",
        )
    tau = dict(profile.tau)
    medians = {}
    for metric in profile.metrics:
        values = [m[metric] for m, _ in intervals if metric in m and np.isfinite(m[metric])]
        if values:
            medians[metric] = statistics.median(values)
            tau[metric] = max(medians[metric], 1e-6)
    scores = []
    for m, _ in intervals:
        u = [instability(v, tau.get(k, 1.0)) for k, v in m.items() if profile.weights.get(k, 1.0) > 0]
        if u:
            scores.append(1 - sum(u) / len(u))
    inc = float(np.quantile(scores, grow_quantile))
    dec = float(np.quantile(scores, shrink_quantile))
    if dec >= inc:
        dec = max(0.0, inc - 0.05)
    draft = profile.replace(name=name or f"{profile.name}-calibrated", tau=tau, increase_above=round(inc, 4),
                            decrease_below=round(dec, 4),
                            calibration=profile.calibration.replace(intervals=max(4, len(intervals)),
                                                                     horizon=min(profile.calibration.horizon, max(1, len(intervals) // 4))).model_dump())
    learner = LearnedStrategy(draft)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for metrics, loss in intervals:
            learner.update(metrics, loss)
    if learner.calibrating:
        raise DebaConfigError.single("intervals", len(intervals), "were too few for the learned fit")
    learned = learner.status == "learned"
    final = draft.replace(weights=dict(learner.weights) if learned else dict(profile.weights),
                          calibration=draft.calibration.replace(learned=learned).model_dump())
    report = {"intervals": len(intervals), "tau_medians": medians, "score_quantiles": {"grow": inc, "shrink": dec},
              "weights": learner.status, "weights_report": learner.report, "warnings": [str(w.message) for w in caught]}
    return final, report


def _args(p: argparse.ArgumentParser) -> None:
    add_data_model_args(p, epochs=3)
    p.add_argument("--output", "-o", default=None, help="profile file to write (.yaml/.json/.toml); default OUT/profile.yaml")
    p.add_argument("--name", default=None, help="name of the calibrated profile")
    p.add_argument("--grow-quantile", type=float, default=0.5)
    p.add_argument("--shrink-quantile", type=float, default=0.1)


def calibrate(args: argparse.Namespace) -> int:
    from deba.profiles.loading import resolve_profile

    out = make_out_dir(args.out, "calibrate")
    data = load_data(args)
    model = model_for(args, data)
    profile = resolve_profile(args.profile, model)
    opt = build_optimizer(args.optimizer, model.parameters(), args.lr)
    print(f"deba calibrate: {args.model} on {args.dataset}, fixed batch {profile.initial_batch}, {args.epochs} epochs, "
          f"starting from profile {profile.name}")
    result: FitResult = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy,
                            profile=profile, epochs=args.epochs, eval_data=data.test, device=args.device, log_dir=out,
                            progress=not args.no_progress, seed=args.seed, fixed_batch=profile.initial_batch, tensorboard=False)
    calibrated, report = calibrate_profile(
        profile.replace(warmup=0), intervals_from_history(result.history), name=args.name,
        grow_quantile=args.grow_quantile, shrink_quantile=args.shrink_quantile,
    )
    calibrated = calibrated.replace(warmup=profile.warmup)
    target = Path(args.output) if args.output else out / "profile.yaml"
    calibrated.to_file(target)
    (out / "calibration.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(f"wrote {target}  (use: deba run --profile {target})")
    return 0


command("calibrate", "profile a fixed-batch run and write a calibrated profile", _args)(calibrate)
