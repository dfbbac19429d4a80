"""``deba calibrate``: a fixed-batch profiling run that writes a calibrated profile.

The run trains at the profile's initial batch (nothing changes), records each decision interval's
metrics and mean loss (from the structured step records: ``decided``, ``interval``, ``metrics``;
the human-readable ``reason`` is never parsed), then derives:

* ``tau`` per metric: its median over the run, so a typical interval reads as half-unstable;
* thresholds: with those scales the chosen scoring strategy (``--strategy``, default
  ``equal-weight``) scores every interval; ``increase_above`` is the scores' ``--grow-quantile``
  quantile and ``decrease_below`` their ``--shrink-quantile`` quantile (ordered, in [0, 1]);
* weights: the ``learned`` strategy's fit on the recorded intervals (spikes and stalls of the loss
  that followed); with too little signal the weights stay equal and the profile says so.

The profile file it writes is accepted by ``deba run --profile FILE`` and ``deba.fit(profile=FILE)``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deba.app.command_table import command
from deba.errors import DebaConfigError
from deba.training.fit import FitResult, fit
from deba.profiles.schema import ArchitectureProfile
from deba.app.commands.common import (
    add_data_model_args,
    build_optimizer,
    check_data_model_args,
    check_strategy,
    load_run_inputs,
    make_out_dir,
)

__all__ = ["calibrate_profile", "intervals_from_history"]


def _numeric_metrics(raw: dict[str, Any]) -> dict[str, float]:
    """The metric values as floats; ``history.jsonl`` stores NaN/inf as strings (JSON has none)."""
    out: dict[str, float] = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[name] = float(value)
        elif isinstance(value, str) and value in ("nan", "inf", "-inf"):
            out[name] = float(value)
    return out


def _closes_interval(record: dict[str, Any], last_interval: Any) -> bool:
    """Whether a step record closed a decision interval, from its structured fields only.

    ``decided`` is also set by a non-finite emergency in mid-interval; such a step leaves the
    ``interval`` counter where it was, so a close is a decided step whose counter moved (or one
    that carries metrics, which only a close computes). Records written before ``decided``
    existed count a step with metrics as a close.
    """
    if "decided" not in record:
        return bool(record.get("metrics"))
    if not record["decided"]:
        return False
    return bool(record.get("metrics")) or record.get("interval") != last_interval


def intervals_from_history(history: list[dict[str, Any]]) -> list[tuple[dict[str, float], float]]:
    """(metrics, mean loss of the interval) for every interval close that had metrics.

    Args:
        history: the run's records (``FitResult.history`` or :func:`deba.training.history.read_history`).

    Returns:
        One pair per closed interval with metrics, in order; the loss is the mean of the
        interval's finite step losses (intervals with none are skipped).
    """
    out: list[tuple[dict[str, float], float]] = []
    losses: list[float] = []
    last_interval: Any = None
    for r in history:
        if r.get("kind") != "step":
            continue
        loss = r.get("loss")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool) and np.isfinite(loss):
            losses.append(float(loss))
        if _closes_interval(r, last_interval):
            metrics = _numeric_metrics(r.get("metrics") or {})
            if metrics and losses:
                out.append((metrics, float(np.mean(losses))))
            losses = []
        elif r.get("changed"):
            losses = []  # a batch change restarts the scheduler's windows: the losses before it are not this interval's
        last_interval = r.get("interval", last_interval)
    return out


def _check_quantiles(grow: float, shrink: float, *, grow_field: str = "grow_quantile",
                     shrink_field: str = "shrink_quantile") -> None:
    """Refuse quantiles outside ``0 <= shrink < grow <= 1`` (NaN included), naming the field."""
    if not (math.isfinite(shrink) and 0 <= shrink < 1):
        raise DebaConfigError.single(shrink_field, shrink, "must be a number in [0, 1)")
    if not (math.isfinite(grow) and shrink < grow <= 1):
        raise DebaConfigError.single(grow_field, grow, f"must be > {shrink_field} ({shrink}) and <= 1")


def _median_tau(profile: ArchitectureProfile, intervals: list[tuple[dict[str, float], float]]
                ) -> tuple[dict[str, float], dict[str, float]]:
    """(tau, medians): each profile metric's scale set to its median over the intervals."""
    tau = dict(profile.tau)
    medians: dict[str, float] = {}
    for metric in profile.metrics:
        values = [m[metric] for m, _ in intervals if metric in m and np.isfinite(m[metric])]
        if values:
            medians[metric] = statistics.median(values)
            tau[metric] = max(medians[metric], 1e-6)
    return tau, medians


def _strategy_scores(profile: ArchitectureProfile, strategy: str,
                     intervals: list[tuple[dict[str, float], float]]) -> list[float]:
    """Every interval's score by the registered ``strategy``, built on ``profile``.

    The strategy itself scores (never a copy of its formula here), so the thresholds fit whatever
    the run will use.
    """
    from deba.control.scoring import ScoringStrategy
    from deba.registry import registry

    scorer = registry.create("strategies", strategy, expected=ScoringStrategy, profile=profile)
    return [float(scorer.score(metrics)) for metrics, _ in intervals]


def _learned_weights(draft: ArchitectureProfile, intervals: list[tuple[dict[str, float], float]]):
    """The ``learned`` strategy fed every interval, and the warnings it raised."""
    from deba.strategies.learned import LearnedStrategy

    learner = LearnedStrategy(draft)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for metrics, loss in intervals:
            learner.update(metrics, loss)
    if learner.calibrating:
        raise DebaConfigError.single("intervals", len(intervals), "were too few for the learned fit")
    return learner, caught


def calibrate_profile(
    profile: ArchitectureProfile,
    intervals: list[tuple[dict[str, float], float]],
    *,
    name: str | None = None,
    grow_quantile: float = 0.5,
    shrink_quantile: float = 0.1,
    strategy: str = "equal-weight",
) -> tuple[ArchitectureProfile, dict[str, Any]]:
    """The calibrated profile and a report of what was measured.

    Args:
        profile: the profile the run used; its fields not calibrated here are kept.
        intervals: (metrics, mean loss) per interval, from :func:`intervals_from_history`.
        name: the new profile's name (default ``<profile>-calibrated``).
        grow_quantile: quantile of the interval scores that becomes ``increase_above``.
        shrink_quantile: quantile that becomes ``decrease_below``; ``0 <= shrink < grow <= 1``.
        strategy: the registered scoring strategy whose scores set the thresholds.

    Raises:
        DebaConfigError: bad quantiles, an unknown strategy, or fewer than 4 intervals.
    """
    _check_quantiles(grow_quantile, shrink_quantile)
    if len(intervals) < 4:
        raise DebaConfigError.single(
            "intervals", len(intervals), "must be >= 4 measured intervals to calibrate",
            remedy="Train longer (--epochs / --steps) or use a profile with a smaller interval and window.",
        )
    tau, medians = _median_tau(profile, intervals)
    scores = _strategy_scores(profile.replace(tau=tau), strategy, intervals)
    inc = float(np.quantile(scores, grow_quantile))
    dec = float(np.quantile(scores, shrink_quantile))
    if dec >= inc:
        dec = max(0.0, inc - 0.05)  # equal quantiles (a flat score) would leave no hold band
    calibration = profile.calibration.replace(intervals=max(4, len(intervals)),
                                              horizon=min(profile.calibration.horizon, max(1, len(intervals) // 4)))
    draft = profile.replace(name=name or f"{profile.name}-calibrated", tau=tau, increase_above=round(inc, 4),
                            decrease_below=round(dec, 4), calibration=calibration.model_dump())
    learner, caught = _learned_weights(draft, intervals)
    learned = learner.status == "learned"
    final = draft.replace(weights=dict(learner.weights) if learned else dict(profile.weights),
                          calibration=draft.calibration.replace(learned=learned).model_dump())
    report = {"intervals": len(intervals), "strategy": strategy, "tau_medians": medians,
              "score_quantiles": {"grow": inc, "shrink": dec}, "weights": learner.status,
              "weights_report": learner.report, "warnings": [str(w.message) for w in caught]}
    return final, report


def _args(p: argparse.ArgumentParser) -> None:
    add_data_model_args(p, epochs=3)
    p.add_argument("--output", "-o", default=None, help="profile file to write (.yaml/.json/.toml); default OUT/profile.yaml")
    p.add_argument("--name", default=None, help="name of the calibrated profile")
    p.add_argument("--grow-quantile", type=float, default=0.5)
    p.add_argument("--shrink-quantile", type=float, default=0.1)
    p.add_argument("--strategy", default="equal-weight", help="the scoring strategy whose scores set the thresholds")


def check_calibrate_args(args: argparse.Namespace) -> None:
    """Check every ``deba calibrate`` option before anything is loaded or written.

    Raises:
        DebaConfigError: for the first bad value, naming its option.
    """
    from deba.profiles.formats import PROFILE_SUFFIXES, format_of

    check_data_model_args(args)
    _check_quantiles(args.grow_quantile, args.shrink_quantile, grow_field="--grow-quantile",
                     shrink_field="--shrink-quantile")
    check_strategy("--strategy", args.strategy)
    if args.output is not None and format_of(Path(args.output)) is None:
        raise DebaConfigError.single("--output", args.output, f"must end in one of {', '.join(sorted(PROFILE_SUFFIXES))}")


def _checked_name(profile: ArchitectureProfile, name: str | None) -> None:
    """Refuse a ``--name`` the profile schema would reject, before training rather than after."""
    if name is None:
        return
    try:
        profile.replace(name=name)
    except DebaConfigError as exc:
        why = exc.problems[0].message if exc.problems else str(exc)
        raise DebaConfigError.single("--name", name, f"is not a valid profile name ({why})") from None


def calibrate(args: argparse.Namespace) -> int:
    """Train at a fixed batch, calibrate the profile from the run, write it and a report.

    Every option, the data, the model and the profile are checked before the run folder is created,
    so a refused run leaves nothing behind.
    """
    check_calibrate_args(args)
    data, model, profile = load_run_inputs(args)
    _checked_name(profile, args.name)
    opt = build_optimizer(args.optimizer, model.parameters(), args.lr)
    out = make_out_dir(args.out, "calibrate")
    print(f"deba calibrate: {args.model} on {args.dataset}, fixed batch {profile.initial_batch}, {args.epochs} epochs, "
          f"starting from profile {profile.name}")
    result: FitResult = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy,
                            profile=profile, epochs=args.epochs, eval_data=data.test, device=args.device, log_dir=out,
                            progress=not args.no_progress, seed=args.seed, fixed_batch=profile.initial_batch, tensorboard=False)
    calibrated, report = calibrate_profile(
        profile.replace(warmup=0), intervals_from_history(result.history), name=args.name,
        grow_quantile=args.grow_quantile, shrink_quantile=args.shrink_quantile, strategy=args.strategy,
    )
    calibrated = calibrated.replace(warmup=profile.warmup)
    target = Path(args.output) if args.output else out / "profile.yaml"
    calibrated.to_file(target)
    (out / "calibration.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(f"wrote {target}  (use: deba run --profile {target})")
    return 0


command("calibrate", "profile a fixed-batch run and write a calibrated profile", _args)(calibrate)
