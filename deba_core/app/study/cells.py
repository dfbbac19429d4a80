"""One cell of the study: a task, a method and a seed, trained through ``deba.fit``.

Evaluations run from a callback at equal shares of the budget (on the clock the budget counts) on
the task's test set; their time is kept out of the training time. A cell's record holds what the
analysis needs: the evaluation curve, the batch trajectory (run-length, for the modelled time), the
start-up throughput probe's sizes (for its modelled cost) and seconds, the noise-scale trajectory,
and the totals. The measured training time includes the probe (``deba.fit`` puts it on the clock).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch

from deba.app.study.methods import MethodConfig
from deba.app.study.schedule import lr_lambda
from deba.app.study.spec import Task
from deba.errors import DebaConfigError
from deba.training.callbacks import Callback
from deba.training.fit import NonFiniteTraining, evaluate, fit

__all__ = ["EvalEvery", "build_model", "build_optimizer", "check_ran_as", "lr_scheduler_for", "ran_as", "run_cell"]


def build_model(task: Task, data: Any, seed: int) -> torch.nn.Module:
    """The task's model with the seed's initial weights."""
    from deba.app.models import SMALL_MODELS, make_model

    torch.manual_seed(seed)
    if task.model in SMALL_MODELS:
        unknown = sorted(set(task.model_kwargs) - {"width"})
        if unknown:
            raise DebaConfigError.single("model_kwargs", unknown, f"are not options of {task.model} (it takes: width)")
        return make_model(task.model, in_channels=data.channels, num_classes=data.num_classes, size=data.size,
                          **task.model_kwargs)
    if task.model_kwargs:
        import timm

        return timm.create_model(task.model, pretrained=False, num_classes=data.num_classes, in_chans=data.channels,
                                 **task.model_kwargs)
    return make_model(task.model, in_channels=data.channels, num_classes=data.num_classes, size=data.size)


def build_optimizer(task: Task, model: torch.nn.Module, lr_mult: float = 1.0) -> torch.optim.Optimizer:
    """SGD with momentum (weight decay 5e-4) or AdamW (weight decay 0.05) at the task's LR x ``lr_mult``."""
    if task.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=task.lr * lr_mult, weight_decay=0.05)
    return torch.optim.SGD(model.parameters(), lr=task.lr * lr_mult, momentum=0.9, weight_decay=5e-4)


def lr_scheduler_for(task: Task, opt: torch.optim.Optimizer, budget: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The task's schedule (``schedule.py``) on ``opt``, stepped once per ``B0`` samples of the
    budget's clock (``lr_scheduler_interval="samples"``), so it ends with the budget."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(max(1, budget // task.batch), task.schedule))


def ran_as(record: dict[str, Any]) -> tuple[str, float | None]:
    """``(schedule, epochs)`` a cell's record ran with. Records from before tasks named a schedule
    ran the full cosine; their epochs are not recorded (``None``)."""
    return record.get("schedule", "cosine"), record.get("epochs")


def check_ran_as(record: dict[str, Any], task: Task, where: str) -> None:
    """Refuse a finished cell that ran another schedule or length than ``task`` has now.

    Raises:
        DebaConfigError: the record's ``(schedule, epochs)`` differ from the task's.
    """
    schedule, epochs = ran_as(record)
    if schedule != task.schedule or (epochs is not None and epochs != task.epochs):
        raise DebaConfigError.single("schedule, epochs", (schedule, epochs),
                                     f"of {where} must be task {task.name}'s ({task.schedule!r}, {task.epochs:g})",
                                     remedy="Give the changed task its own --out folder (cells are never mixed).")


class EvalEvery(Callback):
    """Evaluates at ``k / evals`` of the budget (k = 1..evals) on the budget's own clock, and keeps
    the run's batch trajectory (run-length), noise-scale trajectory and batch changes."""

    def __init__(self, model: torch.nn.Module, test: Any, budget: float, evals: int, equivalent: bool,
                 device: str) -> None:
        self.model, self.test, self.budget, self.evals = model, test, budget, evals
        self.equivalent, self.device = equivalent, device
        self.curve: list[dict[str, Any]] = []
        self.eval_seconds = 0.0
        self._next = 1
        self.trajectory: list[list[int]] = []  # [batch, steps in a row]
        self.noise: list[list[float | None]] = []  # [equivalent samples, B_simple, lower bound]
        self.changes: list[list[int]] = []  # [samples, new batch]
        self.last: dict[str, Any] | None = None
        self.probe: dict[str, Any] = {"sizes": [], "passes": 0, "seconds": 0.0}

    def on_train_start(self, state: dict[str, Any]) -> None:
        # fit's start-up throughput probe ran before this: its sizes set its modelled cost (analysis).
        self.probe = {"sizes": list(state.get("probe_sizes", [])), "passes": int(state.get("probe_passes", 0)),
                      "seconds": float(state.get("probe_seconds", 0.0))}

    def on_step_end(self, record: dict[str, Any]) -> None:
        if record.get("kind") != "step":
            return
        self.last = record
        b = record["batch_size"]
        if self.trajectory and self.trajectory[-1][0] == b:
            self.trajectory[-1][1] += 1
        else:
            self.trajectory.append([b, 1])
        if record.get("decided") and (record.get("noise_scale") is not None or record.get("noise_scale_low") is not None):
            self.noise.append([record["equivalent_samples"], record.get("noise_scale"), record.get("noise_scale_low")])
        if record.get("changed"):
            self.changes.append([record["samples"], record["next_batch_size"]])
        progress = record["equivalent_samples"] if self.equivalent else record["samples"]
        if progress >= self._next * self.budget / self.evals - 1e-6:
            while progress >= self._next * self.budget / self.evals - 1e-6:
                self._next += 1
            self.point(record, progress)

    def point(self, record: dict[str, Any], progress: float) -> None:
        train_time = record["train_time"] - self.eval_seconds  # this callback's evaluations are not training
        t0 = time.perf_counter()
        acc = evaluate(self.model, self.test, torch.nn.functional.cross_entropy, device=self.device).get("eval_accuracy")
        self.eval_seconds += time.perf_counter() - t0
        self.curve.append({"progress": progress / self.budget, "samples": record["samples"],
                           "equivalent_samples": record["equivalent_samples"], "steps": record["step"],
                           "train_time": train_time, "accuracy": acc, "batch": record["batch_size"]})


def _thin(rows: list[Any], keep: int = 400) -> list[Any]:
    return rows[:: max(1, math.ceil(len(rows) / keep))]


def run_cell(task: Task, method: str, config: MethodConfig, seed: int, data: Any, device: str = "cpu") -> dict[str, Any]:
    """Train one cell and return its record."""
    model = build_model(task, data, seed)
    opt = build_optimizer(task, model, config.lr_mult)
    budget = int(round(task.epochs * len(data.train)))
    sched = lr_scheduler_for(task, opt, budget)
    evals = EvalEvery(model, data.test, budget, task.evals, config.budget == "equivalent", device)
    diverged = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile=config.profile,
                     batch_size=task.batch, max_samples=budget, device=device, progress=False, seed=seed,
                     fixed_batch=config.fixed_batch, policy=config.policy, tensorboard=False, lr_scheduler=sched,
                     lr_scheduler_interval="samples", budget=config.budget, callbacks=[evals],
                     max_micro_batch=task.max_micro_batch, history_in_memory=16,
                     probe_throughput=False if config.fixed_batch is not None else None)
        except NonFiniteTraining as exc:  # a method that diverges is recorded as such, never averaged in
            diverged, result = str(exc).split(". ")[0], None
    last = evals.last
    if diverged is None and (not evals.curve or evals.curve[-1]["progress"] < 1.0 - 1e-6):  # the 4x sample cap
        evals.point(last, last["equivalent_samples"] if evals.equivalent else last["samples"])
    if diverged is not None:
        return _diverged(task, method, config, seed, budget, evals, diverged)
    return {
        **_setting(task, method, config, seed, budget), "stopped_by": result.stopped_by, "diverged": None,
        "final_accuracy": evals.curve[-1]["accuracy"], "samples": result.samples, "steps": result.steps,
        "equivalent_samples": result.equivalent_samples,
        "train_time_s": evals.curve[-1]["train_time"], "curve": evals.curve, "trajectory": evals.trajectory,
        "noise": _thin(evals.noise), "changes": evals.changes, "probe": evals.probe,
        "batch_range": [min(b for b, _ in evals.trajectory), max(b for b, _ in evals.trajectory)],
    }


def _setting(task: Task, method: str, config: MethodConfig, seed: int, budget: int) -> dict[str, Any]:
    """What every record holds of how the cell was set up (finished or diverged alike)."""
    return {
        "task": task.name, "method": method, "seed": seed, "label": config.label, "profile": config.profile.name,
        "policy": None if config.fixed_batch is not None else config.profile.policy,
        "fixed_batch": config.fixed_batch, "lr": task.lr * config.lr_mult, "initial_batch": task.batch,
        "budget_samples": budget, "epochs": task.epochs, "schedule": task.schedule, "budget": config.budget,
    }


def _diverged(task: Task, method: str, config: MethodConfig, seed: int, budget: int, evals: EvalEvery,
              why: str) -> dict[str, Any]:
    """The record of a run that diverged: its curve up to then, no final accuracy."""
    last = evals.last or {"samples": 0, "step": 0, "equivalent_samples": 0.0, "train_time": 0.0}
    return {
        **_setting(task, method, config, seed, budget), "stopped_by": "diverged", "diverged": why,
        "final_accuracy": None, "samples": last["samples"], "steps": last["step"],
        "equivalent_samples": last["equivalent_samples"], "train_time_s": last["train_time"] - evals.eval_seconds,
        "curve": evals.curve, "trajectory": evals.trajectory or [[task.batch, 0]], "noise": _thin(evals.noise),
        "changes": evals.changes, "probe": evals.probe,
        "batch_range": [min(b for b, _ in evals.trajectory), max(b for b, _ in evals.trajectory)] if evals.trajectory
        else [task.batch, task.batch],
    }
