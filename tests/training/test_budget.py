"""A budget in starting-batch-equivalent samples: same accuracy, less time; strict samples on request."""

from __future__ import annotations

import pytest
import torch

import deba
from deba.profiles.lr_rule import adascale_gain, progress_credit


def test_credit_is_E_times_B_with_the_adascale_factor_and_falls_with_linear():
    b0, noise = 32, 96.0
    for b in (32, 64, 256):
        r = adascale_gain(b, b0, noise)
        assert progress_credit(b, b0, r, noise) == pytest.approx((noise + b0) / (noise + b) * b)
    r = adascale_gain(256, b0, noise)
    assert progress_credit(256, b0, 256 / b0, noise) == 0.0, "linear past f = 2r: no progress (clipped at 0)"
    assert progress_credit(256, b0, 1.0, noise) == pytest.approx(b0 * (2 - 1 / r)), "no LR change: 2 - 1/r steps"
    for b in (8, 16, 24):  # below B0 the model's E(B) > 1; a sample is never credited above one sample
        assert adascale_gain(b, b0, noise) * b0 > b, "the uncapped credit would exceed the samples"
        assert progress_credit(b, b0, adascale_gain(b, b0, noise), noise) == pytest.approx(b)


class Stable(deba.ScoringStrategy):
    name = "stable"

    def score(self, metrics):
        return 1.0


def _fit(budget, policy="goodput", epochs=2, **kw):
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)  # learnable: the gradient has signal, so the noise scale is measurable
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    prof = deba.load_profile("mlp").replace(warmup=0, cooldown=1, interval=2, window=3, min_samples=2,
                                            lr_scaling="adascale")
    # Splitting a batch of 32 costs nothing here (measure every step); larger batches run faster.
    table = {b: 1000.0 * max(1.0, min(4.0, b / 32)) for b in range(16, 2049, 8)}
    return deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                    loss_fn=torch.nn.functional.cross_entropy, profile=prof, strategy=Stable(prof), epochs=epochs,
                    progress=False, policy=policy, throughput=table, budget=budget, seed=1, **kw)


def test_equivalent_budget_trains_until_sum_of_E_B_reaches_the_epochs():
    res = _fit("equivalent")
    assert res.budget == "equivalent" and res.stopped_by == "equivalent_budget"
    assert res.equivalent_samples >= 2 * 512 and res.equivalent_epochs >= 2.0
    assert max(res.batch_sizes) > 32, "the batch grew"
    assert res.samples > res.equivalent_samples, "a larger batch makes each sample worth less, so more samples"
    recs = res.step_records()
    assert all(b["equivalent_samples"] >= a["equivalent_samples"] for a, b in zip(recs, recs[1:]))


def test_strict_budget_stops_at_the_epochs_of_samples():
    res = _fit("samples")
    assert res.budget == "samples" and res.samples == 2 * 512 and res.stopped_by == "epochs"
    assert res.equivalent_samples <= res.samples


def test_auto_budget_follows_the_policy():
    assert _fit("auto", epochs=1).budget == "equivalent"
    assert _fit("auto", policy="stability", epochs=1).budget == "samples"


def test_an_lr_schedule_on_the_sample_clock_ends_with_the_budget():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nominal = 2 * 512 // 32  # steps of the starting batch in the budget
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1 - k / nominal))
    x, y = torch.randn(512, 8), torch.randint(0, 4, (512,))
    prof = deba.load_profile("mlp").replace(warmup=0, cooldown=1, interval=2, window=3, min_samples=2)
    res = deba.fit(model, (x, y), optimizer=opt, loss_fn=torch.nn.functional.cross_entropy, profile=prof,
                   strategy=Stable(prof), epochs=2, progress=False, lr_scheduler=sched,
                   lr_scheduler_interval="samples", budget="samples", policy="stability")
    assert max(res.batch_sizes) > 32 and res.steps < nominal, "fewer, larger steps"
    assert sched.last_epoch == nominal and sched.get_last_lr()[0] == pytest.approx(0.0), "the schedule ended on time"


def test_budget_is_validated():
    with pytest.raises(deba.DebaConfigError, match="budget"):
        _fit("tokens")


def test_the_startup_probe_measures_candidate_sizes_and_leaves_the_model_alone():
    from deba.control.throughput import ThroughputModel
    from deba.training.step import loss_of
    from deba.training.throughput_probe import candidate_sizes, probe_throughput

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Dropout(0.2),
                                torch.nn.Linear(16, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tm = ThroughputModel()
    x, y = torch.randn(512, 8), torch.randint(0, 3, (512,))
    rng = torch.get_rng_state()
    sizes = candidate_sizes(32, 1024, 8)
    out = probe_throughput(model, loss_of(model, torch.nn.functional.cross_entropy), lambda n: (x[:n], y[:n]), sizes, tm,
                           cap=64, max_seconds=1e9)  # no time cut-off: a loaded machine must not shorten the list
    assert list(out) == sizes == [32, 64, 128, 256] and set(tm.measured()) == set(sizes)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "weights and BN statistics unchanged"
    assert torch.equal(torch.get_rng_state(), rng) and all(p.grad is None for p in model.parameters())


def test_fit_probes_throughput_for_goodput_so_it_can_grow_without_a_table():
    torch.manual_seed(0)
    x = torch.randn(1024, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    prof = deba.load_profile("mlp").replace(warmup=0, cooldown=1, interval=2, window=3, min_samples=2, policy="goodput")
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05), profile=prof,
                   loss_fn=torch.nn.functional.cross_entropy, strategy=Stable(prof), epochs=1, progress=False)
    reasons = " ".join(r["reason"] for r in res.step_records())
    assert "throughput at 32 not measured" not in reasons, "the probe measured the start before the first decision"


def test_the_startup_probe_is_on_the_run_clock_and_in_the_result(monkeypatch):
    # The probe is time a fixed batch does not spend: a run's wall and train time must include it.
    import time

    import deba.training.run as run_module

    real = run_module.probe_throughput

    def slow_probe(*args, **kwargs):
        out = real(*args, **kwargs)
        time.sleep(0.3)  # a probe that takes at least 0.3 s
        return out

    monkeypatch.setattr(run_module, "probe_throughput", slow_probe)
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)

    def run(**kw):
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        seen = []

        class First(deba.Callback):
            def on_train_start(self, state):
                seen.append(dict(state))

            def on_step_end(self, record):
                seen.append(record)

        res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05), profile="mlp",
                       loss_fn=torch.nn.functional.cross_entropy, epochs=1, progress=False, callbacks=[First()], **kw)
        return res, seen

    res, seen = run(policy="goodput")
    assert res.probe_seconds >= 0.3 and res.probe_passes == 3
    assert res.probe_sizes == sorted(res.probe_sizes) and res.probe_sizes[:2] == [16, 32]
    assert res.wall_time >= res.probe_seconds
    start, first_step = seen[0], seen[1]
    assert start["probe_sizes"] == res.probe_sizes and start["probe_seconds"] == res.probe_seconds
    assert first_step["train_time"] >= res.probe_seconds and first_step["wall_time"] >= res.probe_seconds
    plain, seen = run(policy="goodput", probe_throughput=False)
    assert (plain.probe_seconds, plain.probe_sizes, plain.probe_passes) == (0.0, [], 0), "no probe, nothing kept"
    assert seen[1]["train_time"] < 0.3
    fixed, _ = run(policy="goodput", fixed_batch=32)
    assert fixed.probe_sizes == [], "a fixed batch never grows: by default it does not probe"
    asked, _ = run(policy="goodput", fixed_batch=32, probe_throughput=True)
    assert asked.probe_sizes[:2] == [16, 32], "unless asked to"


def test_the_probe_past_the_start_is_bounded_by_a_share_of_the_run():
    from deba.control.throughput import ThroughputModel
    from deba.training.step import loss_of
    from deba.training.throughput_probe import probe_throughput

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(512, 8), torch.randint(0, 3, (512,))
    loss = loss_of(model, torch.nn.functional.cross_entropy)

    def probe(**kw):
        return sorted(probe_throughput(model, loss, lambda n: (x[:n], y[:n]), [16, 32, 64, 128, 256], ThroughputModel(),
                                       max_seconds=1e9, start=32, **kw))

    assert probe(run_samples=0) == [16, 32], "a run with no time to spare: the start and its half, no more"
    assert probe(run_samples=1e15) == probe() == [16, 32, 64, 128, 256], "a long run (or none given): every size"
    assert probe(run_samples=0, run_share=1.0) == [16, 32]
    for bad in ({"run_share": 1.5}, {"run_share": -0.1}, {"run_samples": -1}, {"max_seconds": -1.0}):
        with pytest.raises(deba.DebaConfigError, match=next(iter(bad))):
            probe_throughput(model, loss, lambda n: (x[:n], y[:n]), [16], ThroughputModel(), **bad)


def test_the_share_cuts_the_probe_between_sizes_on_a_clock_it_reads(monkeypatch):
    import types

    import deba.training.throughput_probe as probe_module
    from deba.control.throughput import ThroughputModel
    from deba.training.step import loss_of

    ticks = iter(range(10**6))  # a clock that moves 1 s per reading: each pass takes 1 s
    monkeypatch.setattr(probe_module, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    model = torch.nn.Linear(8, 3)
    x, y = torch.randn(512, 8), torch.randint(0, 3, (512,))

    def sizes(run_samples, run_share=0.01):
        return sorted(probe_module.probe_throughput(
            model, loss_of(model, torch.nn.functional.cross_entropy), lambda n: (x[:n], y[:n]), [16, 32, 64, 128, 256],
            ThroughputModel(), max_seconds=1e9, start=32, run_samples=run_samples, run_share=run_share))

    # Each size reads the clock 6 times (3 passes), each check past the start once: 13 s have gone
    # after 32, 20 after 64, 27 after 128. T(32) = 32/s, so a limit of L s is run_samples = L * 32 / share.
    assert sizes(22 * 32 / 0.01) == [16, 32, 64, 128], "crosses 22 s at 128: that size timed, no more"
    assert sizes(15 * 32 / 0.01) == [16, 32, 64]
    assert sizes(15 * 32 / 0.01, run_share=0.015) == [16, 32, 64, 128], "a larger share, a longer probe"


def test_a_resumed_run_keeps_its_probe_on_the_clock(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)

    def run(epochs, resume):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        return deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05), profile="mlp",
                        loss_fn=torch.nn.functional.cross_entropy, epochs=epochs, progress=False, policy="goodput",
                        checkpoint_dir=tmp_path, resume=resume)

    first = run(1, False)
    assert first.probe_seconds > 0
    again = run(2, True)  # resumes after epoch 1: no second probe, the first one's cost is kept
    assert again.probe_seconds == pytest.approx(first.probe_seconds) and again.probe_sizes == first.probe_sizes
    assert again.wall_time >= first.wall_time


def test_an_epoch_tail_at_the_starting_batch_is_credited_its_samples():
    # A run held at B0 must keep the fixed run's clock: the 20-sample tail of each epoch was trained at
    # B0's LR and is worth its samples, not the (zero) credit of a chosen batch of 20 at that LR.
    torch.manual_seed(0)
    x = torch.randn(532, 8)
    y = (x @ torch.randn(8, 4)).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    prof = deba.load_profile("mlp").replace(warmup=0, cooldown=1, interval=2, window=3, min_samples=2)
    flat = {b: 1000.0 for b in range(16, 2049, 8)}  # no size runs faster: the goodput policy holds at 32
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                   loss_fn=torch.nn.functional.cross_entropy, profile=prof, strategy=Stable(prof), epochs=3,
                   progress=False, policy="goodput", throughput=flat, budget="equivalent", seed=1)
    assert set(res.batch_sizes) <= {32, 20}, "held at the starting batch"
    assert res.noise_scale is not None, "a noise estimate existed"
    assert res.equivalent_samples == pytest.approx(res.samples) and res.samples == 3 * 532
