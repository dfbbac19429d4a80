"""Ground truth for the noise scale: branched runs measure the critical batch (Merrill et al. 2025).

From the fixed-small run (seed 0) stopped at 10 %, 30 % and 60 % of its budget, short branches
train at batch ``B = B0, 2 B0, ... 32 B0`` (the optimizer's state carried over) until the loss on a
fixed 4,096-sample slice of the training set falls to a target: the loss the ``B0`` branch
reaches after 2 % of the budget. Each ``B`` is run with the schedule's LR at that point scaled
linearly and by the square root of ``B / B0``, and the fewer steps count (the critical batch is
defined at each batch's best LR; a linear rule alone diverges at the largest sizes). The loss is
checked at least every 1 % of the ``B0`` branch's steps, so steps-to-target resolve to a few steps.
McCandlish et al.'s trade-off ``S(B) = S_min (1 + B_crit / B)`` (steps to the target) is fitted by
least squares in ``1/B``: ``B_crit`` is the batch beyond which doubling it no longer nearly halves
the steps. DEBA's ``B_simple`` at the same point (from the run's own estimator) is compared with it;
they are different quantities that McCandlish et al. expect to track each other (their ratio is
reported, not assumed to be 1).
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from deba.app.study.cells import build_model, build_optimizer
from deba.app.study.spec import Task

__all__ = ["fit_critical_batch", "noise_truth"]

POINTS = (0.1, 0.3, 0.6)
FACTORS = (1, 2, 4, 8, 16, 32)


def fit_critical_batch(steps: dict[int, int]) -> float | None:
    """``B_crit`` of ``S(B) = S_min (1 + B_crit / B)`` fitted to steps-to-target by least squares in ``1/B``.

    Example:
        >>> round(fit_critical_batch({32: 300, 64: 200, 128: 150, 256: 125}), 6)
        64.0
    """
    pts = [(1.0 / b, float(s)) for b, s in steps.items() if s is not None]
    if len(pts) < 3:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    c = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - c * mx
    return None if a <= 0 or c <= 0 else c / a


def _stop_at(task: Task, data: Any, share: float, device: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    """The fixed-small run of seed 0 (the study's own schedule), stopped after ``share`` of its budget."""
    from deba.training.fit import fit

    model = build_model(task, data, 0)
    opt = build_optimizer(task, model)
    budget = int(round(task.epochs * len(data.train)))
    nominal = max(1, budget // task.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, nominal) / nominal)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile="auto",
                  batch_size=task.batch, fixed_batch=task.batch, max_samples=int(share * budget), device=device,
                  progress=False, seed=0, tensorboard=False, lr_scheduler=sched, lr_scheduler_interval="samples",
                  budget="samples", probe_throughput=False, max_micro_batch=task.max_micro_batch, history_in_memory=16)
    return model, opt, res


def _branch(model: torch.nn.Module, opt: torch.optim.Optimizer, data: Any, batch: int, lr: float, target: float | None,
            max_samples: int, loss_on: Callable[[torch.nn.Module], float], seed: int,
            check_samples: int) -> tuple[int | None, float]:
    """Steps at ``batch`` until ``loss_on(model) <= target`` (``None``: not within ``max_samples``), final loss.

    The loss is checked every ``check_samples`` samples (at least every step)."""
    m, o = copy.deepcopy(model), copy.deepcopy(opt)
    o.param_groups[0]["params"] = list(m.parameters())  # the copy steps the copied model
    for g in o.param_groups:
        g["lr"] = lr
    o.state = {pm: copy.deepcopy(opt.state[p]) for pm, p in zip(m.parameters(), model.parameters()) if p in opt.state}
    x, y = data.train.tensors
    gen = torch.Generator().manual_seed(seed)
    every = max(1, round(check_samples / batch))
    m.train()
    for step in range(1, max_samples // batch + 1):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        o.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x[idx]), y[idx]).backward()
        o.step()
        if target is not None and step % every == 0 and loss_on(m) <= target:
            return step, loss_on(m)
    return None, loss_on(m)


def noise_truth(task: Task, data: Any, out: Path, device: str = "cpu", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure (or read back) ``out/truth/<task>.json``."""
    import json

    from deba.app.study.runner import write_json

    path = out / "truth" / f"{task.name}.json"
    if path.exists():
        return json.loads(path.read_text())
    x, y = data.train.tensors
    sl = torch.randperm(len(y), generator=torch.Generator().manual_seed(123))[:4096]

    def loss_on(m: torch.nn.Module) -> float:
        m.eval()
        with torch.no_grad():
            out_ = float(torch.nn.functional.cross_entropy(m(x[sl]), y[sl]))
        m.train()
        return out_

    budget = int(round(task.epochs * len(data.train)))
    points = []
    for share in POINTS:
        model, opt, res = _stop_at(task, data, share, device)
        lr = task.lr * 0.5 * (1 + math.cos(math.pi * share))
        window = max(50 * task.batch, int(0.02 * budget))
        start = loss_on(model)
        check = max(1, window // 100)
        _, end = _branch(model, opt, data, task.batch, lr, None, window, loss_on, seed=1, check_samples=check)
        # The whole drop of the B0 branch, not half of it: the loss fluctuates from step to step by
        # about half that drop, so a half-way target was met in 6-11 steps at every B. On
        # fashion-mlp even the whole drop is met by chance within a few steps at most points (a
        # constant-LR window of 2 % makes too little progress): no B_crit fits there, and the
        # report says so (docs/benchmarks.md, "Noise-scale truth").
        target = end
        steps, rules = {}, {}
        for k in FACTORS:
            runs = {rule: _branch(model, opt, data, task.batch * k, lr * f, target, 8 * window, loss_on, seed=1,
                                  check_samples=check)[0]
                    for rule, f in (("linear", k), ("sqrt", math.sqrt(k))) if rule == "linear" or k > 1}
            done = {r: n for r, n in runs.items() if n is not None}
            best = min(done, key=done.get) if done else None
            steps[task.batch * k], rules[task.batch * k] = (done[best], best) if best else (None, None)
        b_crit = fit_critical_batch(steps)
        points.append({"progress": share, "b_simple": res.noise_scale, "b_simple_low": res.noise_scale_low,
                       "b_crit": b_crit, "steps_to_target": {str(b): s for b, s in steps.items()},
                       "lr_rule": {str(b): r for b, r in rules.items()}, "lr": lr,
                       "loss_at_branch": start, "target_loss": target,
                       "ratio": (res.noise_scale / b_crit) if res.noise_scale and b_crit else None})
        log(f"[truth] {task.name} at {share:.0%}: B_simple {res.noise_scale} (>= {res.noise_scale_low}), "
            f"critical batch {b_crit}, steps {steps}")
    result = {"task": task.name, "points": points, "factors": list(FACTORS)}
    write_json(path, result)
    return result
