"""Ground truth for the noise scale: the critical batch measured by branched runs (Merrill et al. 2025).

From the fixed-small run (seed 0) stopped at 10 %, 30 % and 60 % of its budget, branches train at
batch ``B = B0, 2 B0, ... 32 B0`` (the optimizer's state carried over) on the **same number of
samples** (10 % of the budget), at the schedule's LR at that point held constant. Above ``B0`` the
LR is scaled linearly or by the square root of ``B / B0``, whichever ends at the lower loss on a
separate data order (the critical batch is defined at each batch's best LR, and a linear rule
alone diverges at the largest sizes); choosing on its own data order keeps the pick's luck out of
the comparison. Each branch is then run on three other data orders; its loss is the mean, over
those orders, of the loss on a fixed slice of up to 8,192 training samples, averaged over up to
three checks (at 90, 95 and 100 % of its samples; fewer when a branch has under 20 steps), so a
step-to-step fluctuation does not decide it. The **critical batch** is Merrill et al.'s: the
largest ``B`` up to which every branch ends within a tolerance (2 % of the loss) of the ``B0``
branch, i.e. a larger batch on the same samples does not lose (``b_crit``), with the first size
that does lose as its upper end (``b_crit_upper``; ``None``: none of the grid loses, and
``b_crit`` is a lower bound). DEBA's ``B_simple`` at the same point (from the run's own estimator)
is compared with it; they are different quantities that McCandlish et al. expect to track each
other (their ratio is reported, not assumed to be 1).
"""

from __future__ import annotations

import collections
import copy
import math
import statistics
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from deba.app.study.cells import build_model, build_optimizer, lr_scheduler_for
from deba.app.study.schedule import lr_factor
from deba.app.study.spec import Task
from deba.errors import DebaConfigError

__all__ = ["METHOD", "critical_batch", "noise_truth"]

POINTS = (0.1, 0.3, 0.6)
FACTORS = (1, 2, 4, 8, 16, 32)
#: Each branch's samples, as a share of the run's budget (equal for every batch size).
BRANCH_SHARE = 0.1
#: The data order that picks each size's LR rule, and the orders its loss is measured on.
SELECTION_SEED, BRANCH_SEEDS = 0, (1, 2, 3)
#: A batch is within the critical batch while its branch loss is at most this much (relative) above B0's.
TOLERANCE = 0.02
#: Names the measurement in the result file; a file of another method is measured again.
METHOD = "equal-samples branches (Merrill et al. 2025)"


def critical_batch(losses: Mapping[int, float | None], tolerance: float = TOLERANCE) -> tuple[int, int | None]:
    """The critical batch from equal-sample branch losses: ``(largest B that does not lose, first B that does)``.

    A batch *does not lose* when its loss is at most ``(1 + tolerance)`` times the smallest
    batch's. The first is the largest size up to which no batch loses (Merrill et al.'s local
    definition: the first loss ends it, a recovery past it does not count); the second is the
    size that ends it (``None``: no size in ``losses`` loses, so the first is a lower bound). A
    ``None`` (diverged) or non-finite loss loses.

    Args:
        losses: branch loss per batch size (positive ints); the smallest size is the reference.
        tolerance: the relative loss increase still counted as no loss (``>= 0``).

    Raises:
        DebaConfigError: ``losses`` empty, a size not a positive int, a loss not a number or ``None``,
            the reference's loss not finite and positive, or ``tolerance`` not a number ``>= 0``.

    Example:
        >>> critical_batch({32: 0.40, 64: 0.405, 128: 0.407, 256: 0.45, 512: 0.40})
        (128, 256)
        >>> critical_batch({32: 0.40, 64: 0.39})
        (64, None)
    """
    if not isinstance(losses, Mapping) or not losses:
        raise DebaConfigError.single("losses", losses, "must map batch sizes to losses, the reference size included")
    for b, v in losses.items():
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise DebaConfigError.single("losses", b, "has a batch size that is not a positive int (JSON keys: convert them)")
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise DebaConfigError.single(f"losses[{b}]", v, "must be a number, or None for a diverged branch")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise DebaConfigError.single("tolerance", tolerance, "must be a number >= 0")
    sizes = sorted(losses)
    ref = losses[sizes[0]]
    if ref is None or not math.isfinite(ref) or ref <= 0:
        raise DebaConfigError.single(f"losses[{sizes[0]}]", ref, "(the reference batch's loss) must be finite and > 0")
    best = sizes[0]
    for b in sizes[1:]:
        loss = losses[b]
        if loss is None or not math.isfinite(loss) or loss > (1 + tolerance) * ref:
            return best, b
        best = b
    return best, None


def _stop_at(task: Task, data: Any, share: float, device: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    """The fixed-small run of seed 0 (the study's own schedule), stopped after ``share`` of its budget."""
    from deba.training.fit import fit

    model = build_model(task, data, 0)
    opt = build_optimizer(task, model)
    budget = int(round(task.epochs * len(data.train)))
    sched = lr_scheduler_for(task, opt, budget)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(model, data.train, optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile="auto",
                  batch_size=task.batch, fixed_batch=task.batch, max_samples=int(share * budget), device=device,
                  progress=False, seed=0, tensorboard=False, lr_scheduler=sched, lr_scheduler_interval="samples",
                  budget="samples", probe_throughput=False, max_micro_batch=task.max_micro_batch, history_in_memory=16)
    return model, opt, res


def _branch(model: torch.nn.Module, opt: torch.optim.Optimizer, data: Any, batch: int, lr: float, samples: int,
            loss_on: Callable[[torch.nn.Module], float], seed: int) -> float | None:
    """Train a copy of ``model`` (and of its optimizer state) at ``batch`` and a constant ``lr`` on ``samples``
    samples drawn with ``seed``; its loss averaged over up to three checks, at 90, 95 and 100 % of
    them (``None``: diverged)."""
    m, o = copy.deepcopy(model), copy.deepcopy(opt)
    o.param_groups[0]["params"] = list(m.parameters())  # the copy steps the copied model
    for g in o.param_groups:
        g["lr"] = lr
    # a defaultdict, as torch's own: a parameter without state yet gets it on its first step
    o.state = collections.defaultdict(dict, {pm: copy.deepcopy(opt.state[p])
                                             for pm, p in zip(m.parameters(), model.parameters()) if p in opt.state})
    x, y = data.train.tensors
    dev = next(m.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, samples // batch)
    checks = {max(1, round(steps * f)) for f in (0.9, 0.95, 1.0)}
    seen = []
    m.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        o.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(m(x[idx].to(dev)), y[idx].to(dev))
        if not torch.isfinite(loss):
            return None
        loss.backward()
        o.step()
        if step in checks:
            seen.append(loss_on(m))
    mean = sum(seen) / len(seen)
    return mean if math.isfinite(mean) else None


def noise_truth(task: Task, data: Any, out: Path, device: str = "cpu", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure (or read back) ``out/truth/<task>.json``: per point of progress, the branch losses, the
    critical batch and DEBA's ``B_simple`` there. A file of another method or setting is measured again."""
    import json

    from deba.app.study.runner import write_json

    budget = int(round(task.epochs * len(data.train)))
    # the same samples at every size: a multiple of the largest batch, which takes 4 steps at least
    unit = task.batch * FACTORS[-1]
    samples = unit * max(4, int(BRANCH_SHARE * budget) // unit)
    setting = {"method": METHOD, "branch_samples": samples, "branch_seeds": list(BRANCH_SEEDS),
               "selection_seed": SELECTION_SEED, "tolerance": TOLERANCE, "factors": list(FACTORS),
               "schedule": task.schedule, "epochs": task.epochs}
    path = out / "truth" / f"{task.name}.json"
    if path.exists():
        old = json.loads(path.read_text())
        legacy = {"schedule": "cosine"}  # files from before tasks named a schedule ran the full cosine
        if all(old.get(k, legacy.get(k)) == v for k, v in setting.items()):
            return old
        log(f"[truth] {path} was measured by another method or setting; measuring again")
    x, y = data.train.tensors
    sl = torch.randperm(len(y), generator=torch.Generator().manual_seed(123))[:8192]

    def loss_on(m: torch.nn.Module) -> float:
        dev = next(m.parameters()).device
        m.eval()
        with torch.no_grad():
            out_ = float(torch.nn.functional.cross_entropy(m(x[sl].to(dev)), y[sl].to(dev)))
        m.train()
        return out_

    points = []
    for share in POINTS:
        model, opt, res = _stop_at(task, data, share, device)
        lr = task.lr * lr_factor(share, task.schedule)
        start = loss_on(model)
        losses, rules, per_seed, picks = {}, {}, {}, {}
        for k in FACTORS:
            b = task.batch * k
            if k == 1:
                rule, factor = "linear", 1.0  # both rules give B0 the schedule's own LR
            else:
                scalings = {"linear": float(k), "sqrt": math.sqrt(k)}
                tried = {r: _branch(model, opt, data, b, lr * f, samples, loss_on, SELECTION_SEED) for r, f in scalings.items()}
                picks[b] = tried
                done = {r: v for r, v in tried.items() if v is not None}
                rule = min(done, key=done.get) if done else "sqrt"  # both diverged: the gentler one is measured
                factor = scalings[rule]
            runs = [_branch(model, opt, data, b, lr * factor, samples, loss_on, seed) for seed in BRANCH_SEEDS]
            rules[b], per_seed[b] = rule, runs
            losses[b] = None if None in runs else sum(runs) / len(runs)
        ref = per_seed[task.batch]
        spread = statistics.stdev(ref) / losses[task.batch] if losses[task.batch] else None
        # a diverged B0 branch leaves no reference: nothing to measure at this point
        b_crit, upper = critical_batch(losses) if losses[task.batch] else (None, None)
        points.append({"progress": share, "b_simple": res.noise_scale, "b_simple_low": res.noise_scale_low,
                       "b_crit": b_crit, "b_crit_upper": upper, "branch_loss": {str(b): v for b, v in losses.items()},
                       "branch_loss_per_seed": {str(b): v for b, v in per_seed.items()},
                       "lr_rule": {str(b): r for b, r in rules.items()},
                       "selection_loss": {str(b): v for b, v in picks.items()}, "lr": lr, "loss_at_branch": start,
                       "reference_spread": spread,
                       "ratio": (res.noise_scale / b_crit) if res.noise_scale and b_crit else None,
                       "ratio_is_upper_bound": upper is None and b_crit is not None})
        log(f"[truth] {task.name} at {share:.0%}: B_simple {res.noise_scale} (>= {res.noise_scale_low}), critical "
            f"batch {b_crit} (loses at {upper}), losses " + ", ".join(f"{b}: -" if v is None else f"{b}: {v:.4f}"
                                                                       for b, v in losses.items()))
    result = {"task": task.name, **setting, "points": points}
    write_json(path, result)
    return result
