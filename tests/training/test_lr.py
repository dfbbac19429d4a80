"""LRCoupler: the DEBA factor scales each group's LR only for the duration of ``optimizer.step()``.

The contract (``deba.training.lr`` and docs/training.md, "Learning rate"): the LR used by a step is
``param_group["lr"] x factor``, the scheduled value is put back right after, so any LR scheduler
keeps owning ``param_group["lr"]``; the factor also scales weight decay where the optimizer couples
it to the LR (SGD's ``weight_decay``, AdamW's decoupled decay); an optimizer subclass whose
``step()`` calls ``super().step()`` gets the factor once. Expected parameters are computed by hand
from each optimizer's update rule. (deba.fit with StepLR/CosineAnnealingLR is in test_fit.py.)
"""

from __future__ import annotations

import math

import pytest
import torch

import deba
from deba.training.lr import LRCoupler


def sgd(lr=0.1, value=1.0, **kw):
    p = torch.nn.Parameter(torch.full((1,), value, dtype=torch.float64))
    return p, torch.optim.SGD([p], lr=lr, **kw)


def step(opt, p, grad=1.0):
    p.grad = torch.full_like(p, grad)
    opt.step()


def test_a_step_uses_the_lr_times_the_factor_and_the_group_keeps_its_lr():
    p, opt = sgd(lr=0.1)
    coupler = LRCoupler(opt, factor=3.0)
    step(opt, p, grad=2.0)
    assert p.item() == pytest.approx(1.0 - 0.3 * 2.0)
    assert opt.param_groups[0]["lr"] == 0.1 and coupler.last_used == [pytest.approx(0.3)]


def test_every_param_group_is_scaled_by_the_same_factor():
    a = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    coupler = LRCoupler(opt, factor=2.0)
    c = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt.add_param_group({"params": [c], "lr": 0.5})  # a group added after coupling
    for t in (a, b, c):
        t.grad = torch.ones_like(t)
    opt.step()
    assert (a.item(), b.item(), c.item()) == pytest.approx((1 - 0.2, 1 - 0.02, 1 - 1.0))
    assert coupler.last_used == pytest.approx([0.2, 0.02, 1.0])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01, 0.5]


def test_a_new_factor_applies_from_the_next_step():
    p, opt = sgd(lr=0.1)
    coupler = LRCoupler(opt)
    assert coupler.factor == 1.0, "the default factor changes nothing"
    step(opt, p)
    assert p.item() == pytest.approx(0.9) and coupler.last_used == [pytest.approx(0.1)]
    coupler.factor = 4
    assert coupler.factor == 4.0 and isinstance(coupler.factor, float)
    step(opt, p)
    assert p.item() == pytest.approx(0.9 - 0.4) and coupler.last_used == [pytest.approx(0.4)]


def test_a_chainable_scheduler_sees_only_its_own_values():
    # ExponentialLR computes the next LR from param_group["lr"]: had the factor been left in, the
    # schedule would compound it (3, 4.5, ...) instead of 1, 0.5, 0.25
    p, opt = sgd(lr=1.0, value=0.0)
    coupler = LRCoupler(opt, factor=3.0)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    used = []
    for _ in range(4):
        step(opt, p)
        used.append(coupler.last_used[0])
        sched.step()
    assert used == pytest.approx([3.0, 1.5, 0.75, 0.375])
    assert p.item() == pytest.approx(-sum(used))
    assert sched.get_last_lr() == pytest.approx([1.0 / 16]) and opt.param_groups[0]["lr"] == pytest.approx(1.0 / 16)


def test_schedule_times_factor_when_both_change():
    p, opt = sgd(lr=1.0, value=0.0)
    coupler = LRCoupler(opt, factor=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch))
    factors = [1.0, 2.0, 2.0, 8.0]
    for i, f in enumerate(factors):
        coupler.factor = f
        step(opt, p)
        assert coupler.last_used == [pytest.approx(f / (1 + i))]
        sched.step()
    assert p.item() == pytest.approx(-(1.0 + 2.0 / 2 + 2.0 / 3 + 8.0 / 4))


def test_sgd_weight_decay_is_scaled_with_the_lr():
    # SGD adds weight_decay x w to the gradient, then multiplies by the LR: w = 1 - 0.1 x 2 x (0 + 0.5 x 1)
    p, opt = sgd(lr=0.1, weight_decay=0.5)
    LRCoupler(opt, factor=2.0)
    step(opt, p, grad=0.0)
    assert p.item() == pytest.approx(0.9)


def test_adamw_decoupled_decay_is_scaled_with_the_lr():
    # AdamW first shrinks w by lr x weight_decay; with a zero gradient the Adam update itself is 0
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.5)
    LRCoupler(opt, factor=2.0)
    step(opt, p, grad=0.0)
    assert p.item() == pytest.approx(1.0 - 0.2 * 0.5)
    assert opt.param_groups[0]["lr"] == 0.1


def test_adams_step_is_scaled():
    # Adam's first step moves each weight by lr x m_hat / (sqrt(v_hat) + eps) = lr x sign(g) (eps aside)
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.01, eps=1e-12)
    LRCoupler(opt, factor=5.0)
    step(opt, p, grad=3.0)
    assert p.item() == pytest.approx(1.0 - 0.05)


def test_a_subclass_calling_super_step_gets_the_factor_once():
    class Logged(torch.optim.SGD):
        def step(self, closure=None):
            self.seen = self.param_groups[0]["lr"]
            return super().step(closure)

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # the base class's step is hooked as well
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = Logged([p], lr=0.1)
    coupler = LRCoupler(opt, factor=2.0)
    for expected in (0.8, 0.6):
        step(opt, p)
        assert p.item() == pytest.approx(expected), "0.1 x 2 per step, not 0.1 x 4"
        assert opt.seen == pytest.approx(0.2) and opt.param_groups[0]["lr"] == 0.1
    assert coupler.last_used == [pytest.approx(0.2)]


def test_remove_detaches_the_factor():
    p, opt = sgd(lr=0.1)
    coupler = LRCoupler(opt, factor=5.0)
    step(opt, p)
    assert p.item() == pytest.approx(0.5)
    coupler.remove()
    step(opt, p)
    assert p.item() == pytest.approx(0.4), "plain SGD after remove()"
    assert opt.param_groups[0]["lr"] == 0.1
    coupler.remove()  # a second remove() is harmless
    step(opt, p)
    assert p.item() == pytest.approx(0.3)


def test_a_closure_is_passed_through_and_its_loss_returned():
    p, opt = sgd(lr=0.1)
    LRCoupler(opt, factor=2.0)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()  # gradient 2 w = 2
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(1.0) and p.item() == pytest.approx(1.0 - 0.2 * 2.0)


@pytest.mark.xfail(strict=True, reason="a step() that raises skips the post-hook: the group keeps the scaled LR "
                                       "and the coupler's nesting depth stays at 1, so later factors are ignored")
def test_a_step_that_raises_leaves_the_scheduled_lr_in_place():
    p, opt = sgd(lr=0.1)
    coupler = LRCoupler(opt, factor=2.0)

    def failing():
        raise RuntimeError("out of memory in the closure")

    with pytest.raises(RuntimeError):
        opt.step(failing)
    assert opt.param_groups[0]["lr"] == 0.1, "the scheduled value is put back"
    coupler.factor = 4.0
    step(opt, p)
    assert p.item() == pytest.approx(1.0 - 0.4), "the next step uses schedule x the new factor"


@pytest.mark.parametrize("not_an_optimizer", [object(), None, torch.nn.Linear(2, 2), [torch.zeros(1)]])
def test_only_an_optimizer_can_be_coupled(not_an_optimizer):
    with pytest.raises(deba.DebaConfigError) as info:
        LRCoupler(not_an_optimizer)
    assert info.value.fields == ["optimizer"]


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, math.nan, math.inf, True, "2", None])
def test_a_bad_factor_is_a_config_error_naming_lr_factor(bad):
    p, opt = sgd()
    with pytest.raises(deba.DebaConfigError) as info:
        LRCoupler(opt, factor=bad)
    assert info.value.fields == ["lr_factor"]
    coupler = LRCoupler(opt, factor=2.0)
    with pytest.raises(deba.DebaConfigError, match="lr_factor"):
        coupler.factor = bad
    assert coupler.factor == 2.0, "a rejected factor leaves the old one"
    step(opt, p)
    assert p.item() == pytest.approx(0.8)
