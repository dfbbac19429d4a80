"""DebaRun: the run object every front end shares (budget, probe bound, abort, state, logs)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import deba
from deba.training.budget import SAMPLE_CAP, RunBudget
from deba.training.run import DebaRun, probe_batch_maker


def _run(**options):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = DebaRun(deba.RunOptions(profile="mlp", **options), model, initial_batch=16, optimizer=opt)
    return run, model, opt


def _loss(model):
    return lambda b: torch.nn.functional.cross_entropy(model(b[0]), b[1])


def test_the_budget_counts_equivalent_samples_only_when_deba_owns_the_stop():
    run, model, opt = _run()
    run.plan(640)
    assert run.budget == RunBudget(640, equivalent=True, owned=True)
    run2, _, _ = _run()
    run2.plan(640, owned=False)
    assert not run2.budget.equivalent and not run2.budget_spent()
    run3, _, _ = _run(budget="equivalent")
    with pytest.raises(deba.DebaConfigError, match="budget"):
        run3.plan(640, owned=False)


def test_the_sample_cap_ends_an_equivalent_budget():
    b = RunBudget(100, equivalent=True)
    assert not b.spent(SAMPLE_CAP * 100 - 1, 10.0)
    assert b.spent(SAMPLE_CAP * 100, 10.0)
    assert b.stop_reason(SAMPLE_CAP * 100, 10.0) == "sample_cap"
    assert b.stop_reason(120, 100.0) == "equivalent_budget"
    assert RunBudget(100).stop_reason(100, 0.0) == "max_samples"


@pytest.mark.parametrize("world, limit", [(1, "run_samples"), (2, "max_seconds")])
def test_the_startup_probe_has_no_time_cut_off_under_ddp(monkeypatch, world, limit):
    # Ranks on their own clocks would stop at different sizes (and then decide differently).
    import deba.training.run as run_module

    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return {16: 100.0}

    monkeypatch.setattr(run_module, "probe_throughput", spy)
    run, model, opt = _run()
    run.plan(640)
    run.attach(model, opt, forward_loss=_loss(model))
    run.probe_throughput(lambda n: (torch.randn(n, 4), torch.zeros(n, dtype=torch.long)), world=world)
    if world > 1:
        assert seen["max_seconds"] == math.inf and "run_samples" not in seen
    else:
        assert seen["run_samples"] == 640 and "max_seconds" not in seen
    assert run.clock["probe_sizes"] == [16]


def test_probe_batches_come_from_their_own_generator():
    before = torch.get_rng_state()
    a = probe_batch_maker(100, list, seed=3, world=2)
    b = probe_batch_maker(100, list, seed=3, world=2)
    assert a(8) == b(8) and len(a(8)) == 4
    assert torch.equal(before, torch.get_rng_state())


def test_non_finite_steps_in_a_row_stop_the_controller_as_they_stop_fit():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctl = deba.DebaController(model, opt, profile="mlp", batch_size=16)
    x, y = torch.randn(16, 4), torch.zeros(16, dtype=torch.long)
    with pytest.raises(deba.NonFiniteTraining, match="consecutive non-finite"):
        for _ in range(3 * ctl.profile.nonfinite_patience + 1):
            opt.zero_grad()
            loss = model(x).sum() * float("nan")
            loss.backward()
            ctl.after_backward(loss, batch_size=16)


def test_the_state_document_round_trips_and_a_pending_engine_state_waits_for_attach():
    run, model, opt = _run()
    run.plan(640)
    engine = run.attach(model, opt, forward_loss=_loss(model))
    for _ in range(5):
        engine.run((torch.randn(16, 4), torch.randint(0, 2, (16,))))
    doc = json.loads(json.dumps(run.state_document()))
    fresh, model2, opt2 = _run()
    fresh.plan(640)
    fresh.restore(doc)  # before attach: the engine's part waits
    assert fresh.samples == 80 and fresh.engine is None
    fresh.attach(model2, opt2, forward_loss=_loss(model2))
    assert fresh.engine.samples == 80 and fresh.engine.lr_factor == engine.lr_factor
    assert fresh.state_document()["scheduler"] == doc["scheduler"]


def test_log_values_name_the_noise_estimate_and_its_bound_apart():
    run, model, opt = _run()
    d = deba.Decision(batch_size=16, previous_batch_size=16, changed=False, action="hold", score=0.5, step=1,
                      interval=1, reason="", lr_factor=1.0, noise_scale=None, noise_scale_low=12.0)
    values = run.log_values(d)
    assert values["noise_scale_low"] == 12.0 and "noise_scale" not in values


def test_options_and_keywords_together_are_refused():
    model = torch.nn.Linear(4, 2)
    with pytest.raises(deba.DebaConfigError, match="budget"):
        deba.fit(model, (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)),
                 optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.functional.cross_entropy,
                 epochs=1, budget="samples", options=deba.RunOptions(profile="mlp"), progress=False)
    with pytest.raises(deba.DebaConfigError, match="max_micro_batch"):
        deba.RunOptions(max_micro_batch=0)
