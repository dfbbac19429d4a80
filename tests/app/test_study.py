"""The study v2: plan, methods, analysis math, a tiny end-to-end run that resumes, presets' dry runs."""

from __future__ import annotations

import json
import math

import pytest

import deba
from deba.app.cli import main
from deba.app.study import (METHODS, PRESETS, SWEEP, Preset, Task, analyse, bootstrap_mean, choose_best, cost_to_target,
                            critical_batch, goodput_ceiling, method_config, modelled_time, plan, plateau_target,
                            run_study, summary, throughput_bound)
from deba.app.study.schedule import lr_factor
from helpers import FASHION_DIR

TINY_TASK = Task("tiny-mlp", "fashion-mnist", "small-mlp", 28, 1, 600, 300, epochs=2, batch=16, evals=3)
TINY = Preset("tiny", (TINY_TASK,), seeds=1, truth="tiny-mlp")


def _curve(accs, samples_per_point=100, steps_per_point=10, seconds=1.0):
    n = len(accs)
    return [{"progress": (i + 1) / n, "samples": samples_per_point * (i + 1), "equivalent_samples": samples_per_point * (i + 1),
             "steps": steps_per_point * (i + 1), "train_time": seconds * (i + 1), "accuracy": a, "batch": 10}
            for i, a in enumerate(accs)]


def test_plan_runs_the_sweep_first_and_interleaves_methods_by_seed():
    small = PRESETS["small"]
    cells = plan(small, tasks=("fashion-mlp",))
    names = [(m, s) for _, m, s in cells]
    assert names[: 1 + len(SWEEP)] == [("fixed-small", 0)] + [(f"sweep-{k}x-{r}", 0) for k, r in SWEEP]
    assert names[1 + len(SWEEP): 1 + len(SWEEP) + len(METHODS) - 1] == [(m, 0) for m in METHODS if m != "fixed-small"]
    assert len(cells) == len(SWEEP) + small.seeds * len(METHODS)
    assert len(plan(PRESETS["cpu"])) == 6 * 4 * 3 and "fixed-best" not in PRESETS["cpu"].methods
    with pytest.raises(deba.DebaConfigError, match="tasks.*resnet19"):
        plan(small, tasks=("resnet19",))
    with pytest.raises(deba.DebaConfigError, match="needs the fixed-batch sweep.*fixed-best"):
        plan(PRESETS["cpu"], methods=("fixed-best",))
    with pytest.raises(deba.DebaConfigError, match="methods"):
        plan(small, methods=("sgd-magic",))


def test_methods_are_configured_as_documented():
    detected = deba.load_profile("mlp").starting_at(32)
    cfg = {m: method_config(m, detected, 32, best=(4, "sqrt"), schedule="held") for m in METHODS}
    assert (cfg["fixed-small"].fixed_batch, cfg["fixed-small"].lr_mult, cfg["fixed-small"].budget) == (32, 1.0, "samples")
    assert (cfg["fixed-best"].fixed_batch, cfg["fixed-best"].lr_mult) == (128, 2.0)
    assert method_config("sweep-8x-linear", detected, 32, schedule="held").lr_mult == 8.0
    assert cfg["seesaw"].profile.policy == "seesaw" and cfg["seesaw"].profile.lr_scaling == "sqrt"
    assert cfg["seesaw"].policy.schedule(0.6) == lr_factor(0.6, "held") != lr_factor(0.6, "cosine")
    # deba.fit accepts a policy instance only on its own profile: the one it resolves from the config
    from deba.profiles.loading import resolve_profile

    assert resolve_profile(cfg["seesaw"].profile, None).starting_at(32) == cfg["seesaw"].policy.profile
    assert all(cfg[m].policy is None for m in METHODS if m != "seesaw")
    assert cfg["goodput-ungated"].profile.policy == "goodput-ungated" and cfg["goodput-ungated"].budget == "equivalent"
    paper = cfg["deba-paper"].profile
    assert (paper.policy, paper.lr_scaling, paper.shares) == ("stability", "linear", None)
    assert set(paper.weights) == {"grad_variance", "grad_norm_variation", "loss_variation"}
    assert cfg["deba"].profile == detected and cfg["deba"].budget == "equivalent"
    assert cfg["deba-uniform"].profile.name == "generic"
    with pytest.raises(deba.DebaConfigError, match="sweep"):
        method_config("fixed-best", detected, 32, schedule="held")
    with pytest.raises(TypeError):
        method_config("seesaw", detected, 32)  # the schedule is required: a forgotten one is no silent default


def test_the_study_schedule_anneals_by_three_quarters_and_holds_its_floor():
    from deba.app.study.schedule import DECAY_SHARE, FLOOR, lr_lambda

    ts = [i / 200 for i in range(201)]
    fs = [lr_factor(t, "held") for t in ts]
    assert fs[0] == 1.0 and all(a >= b for a, b in zip(fs, fs[1:])), "falls monotonically from the peak"
    assert lr_factor(DECAY_SHARE / 2, "held") == pytest.approx(FLOOR + (1 - FLOOR) / 2)
    assert all(f == pytest.approx(FLOOR) for t, f in zip(ts, fs) if t >= DECAY_SHARE), "held at the floor"
    assert lr_factor(-0.5, "held") == 1.0 and lr_factor(3.0, "held") == pytest.approx(FLOOR)
    f = lr_lambda(400, "held")
    assert f(300) == pytest.approx(FLOOR) and f(100) == pytest.approx(lr_factor(0.25, "held"))
    g = lr_lambda(400, "cosine")
    assert g(200) == pytest.approx(0.5) and g(400) == pytest.approx(0.0), "the cpu presets' schedule"
    import numpy as np

    assert lr_factor(np.float32(0.5), "cosine") == pytest.approx(0.5)
    for bad in (float("nan"), "0.5", True):
        with pytest.raises(deba.DebaConfigError, match="progress"):
            lr_factor(bad, "held")
    with pytest.raises(deba.DebaConfigError, match="nominal"):
        lr_lambda(0, "held")
    assert lr_factor(0.5, "cosine") == pytest.approx(0.5) and lr_factor(1.0, "cosine") == pytest.approx(0.0)
    for bad_call in (lambda: lr_factor(0.5, "linear"), lambda: lr_lambda(10, "step"), lambda: lr_factor(0.5, ["held"]),
                     lambda: Task("t", "digits", "small-mlp", 8, 1, None, None, epochs=1, batch=8, schedule="wsd"),
                     lambda: method_config("seesaw", deba.load_profile("mlp").starting_at(32), 32, schedule="wsd")):
        with pytest.raises(deba.DebaConfigError, match="schedule"):
            bad_call()
    assert all(t.schedule == "held" for t in PRESETS["small"].tasks + PRESETS["paper"].tasks)
    assert all(t.schedule == "cosine" for t in PRESETS["cpu"].tasks + PRESETS["quick"].tasks)


def test_seesaw_doubles_where_the_study_schedule_halves():
    from deba.control.baselines import SeesawPolicy
    from deba.control.policy import PolicySignals

    detected = deba.load_profile("mlp").starting_at(32)
    policy = method_config("seesaw", detected, 32, schedule="held").policy
    first = next(t for t in (i / 1000 for i in range(1001)) if lr_factor(t, "held") <= 0.5)
    at = {t: policy.propose(32, 0.0, PolicySignals(initial_batch=32, progress=t)).batch_size for t in (first - 0.002, first)}
    assert at == {first - 0.002: 32, first: 64}, "the first doubling is where this schedule first halves"
    assert first < 0.5 - 0.1, "earlier than a cosine over the whole run would"
    at_cap = [policy.propose(512, 0.0, PolicySignals(initial_batch=32, progress=t)).batch_size for t in (0.8, 1.0)]
    assert at_cap == [512, 512], "never past its 16 B0 cap, never shrinks"
    cosine = method_config("seesaw", detected, 32, schedule="cosine").policy
    assert [cosine.propose(32, 0.0, PolicySignals(initial_batch=32, progress=t)).batch_size for t in (0.49, 0.5)] == [32, 64]
    with pytest.raises(deba.DebaConfigError, match="schedule"):
        SeesawPolicy(detected, schedule=0.5)
    for shape in (lambda t: 2.0, lambda t: float("nan"), lambda t: -0.1, lambda t: "1"):
        with pytest.raises(deba.DebaConfigError, match="schedule"):
            SeesawPolicy(detected, schedule=shape)  # refused when built, not at the first decision
    # its state carries the shape: a resume under another schedule is refused, the same one passes
    policy.load_state_dict(json.loads(json.dumps(policy.state_dict())))
    policy.load_state_dict({})  # a state saved before the shape was kept
    with pytest.raises(deba.DebaConfigError, match="schedule"):
        cosine.load_state_dict(policy.state_dict())


def test_targets_costs_and_speedups_on_synthetic_cells():
    table = {"16": 1000.0, "32": 2000.0}
    base = {"method": "fixed-small", "seed": 0, "curve": _curve([0.5, 0.8, 0.9, 0.9, 0.92]), "trajectory": [[16, 50]]}
    assert plateau_target([base]) == pytest.approx((0.9 + 0.9 + 0.92) / 3 - 0.003)
    assert modelled_time([[16, 10], [32, 10]], table) == pytest.approx(10 * 16 / 1000 + 10 * 32 / 2000)
    assert modelled_time([[16, 10], [32, 10]], table, at_step=15) == pytest.approx(0.16 + 5 * 32 / 2000)
    cost = cost_to_target(base, 0.85, table)
    assert cost["steps"] == 30 and cost["modelled_time_s"] == pytest.approx(30 * 16 / 1000)
    assert cost_to_target(base, 0.99, table) is None
    mean, lo, hi = bootstrap_mean([1.0, 2.0, 3.0])
    assert mean == 2.0 and 1.0 <= lo < 2.0 < hi <= 3.0
    assert bootstrap_mean([]) == (None, None, None)
    # the sweep's choice: the fastest to the target in modelled time
    fast = {"method": "sweep-4x-sqrt", "seed": 0, "curve": _curve([0.7, 0.9]), "trajectory": [[32, 10]],
            "final_accuracy": 0.9}
    slow = {**base, "final_accuracy": 0.92}
    assert choose_best([slow, fast], 0.85, table)[:2] == (4, "sqrt")
    assert choose_best([slow, fast], 0.99, table)[:2] == (1, "linear"), "none reached: the most accurate"


def test_the_startup_probe_is_priced_into_a_runs_modelled_time():
    from deba.app.study import run_modelled_time
    from deba.app.study.report import _row

    table = {"16": 1000.0, "32": 2000.0}
    held = {"method": "deba", "seed": 0, "curve": _curve([0.5, 0.9, 0.9]), "trajectory": [[16, 30]],
            "final_accuracy": 0.9, "samples": 480, "steps": 30, "batch_range": [16, 16],
            "probe": {"sizes": [16, 32], "passes": 3, "seconds": 0.2}}
    probe = 3 * (16 / 1000 + 32 / 2000)
    assert run_modelled_time(held, table) == pytest.approx(probe + 30 * 16 / 1000)
    cost = cost_to_target(held, 0.85, table)
    assert cost["modelled_time_s"] == pytest.approx(probe + 20 * 16 / 1000), "the probe comes before the first step"
    base = {**held, "method": "fixed-small", "probe": {"sizes": [], "passes": 0, "seconds": 0.0}}
    old = {k: v for k, v in base.items() if k != "probe"}  # a record from before the probe was kept
    assert run_modelled_time(old, table) == run_modelled_time(base, table) == pytest.approx(30 * 16 / 1000)
    row = _row([held], {"fixed-small": [base]}, 0.85, table, None)
    # the same steps as the fixed batch, so the probe alone is what it loses
    assert row["modelled_speedup_vs_fixed-small"][0] == pytest.approx(0.32 / (probe + 0.32))
    assert row["probe_modelled_s"] == pytest.approx(probe)


def test_a_seed_that_missed_the_target_counts_as_an_upper_bound_not_dropped():
    from deba.app.study.report import _speedups

    table = {"16": 1000.0}
    base = [{"seed": s, "curve": _curve([0.5, 0.9]), "trajectory": [[16, 20]]} for s in (0, 1)]
    fast = {"seed": 0, "curve": _curve([0.9, 0.9], steps_per_point=5), "trajectory": [[16, 10]], "train_time_s": 2.0}
    miss = {"seed": 1, "curve": _curve([0.5, 0.6]), "trajectory": [[16, 40]], "train_time_s": 8.0}
    mean, _, _, censored = _speedups([fast, miss], base, 0.85, table, "modelled_time_s")
    # seed 0: 20 steps to target vs 5 -> 4x; seed 1 missed: 20 steps over its whole 40 -> <= 0.5x
    assert censored == 1 and mean == pytest.approx((4.0 + 0.5) / 2)


def test_the_batch_a_method_chose_ignores_an_epochs_short_last_batch():
    from deba.app.study.report import _scheduled

    # 1,000 samples at 32: every epoch ends with a batch of 8, which the method did not choose
    fixed = {"fixed_batch": None, "initial_batch": 32, "changes": [], "batch_range": [8, 32]}
    assert _scheduled(fixed) == (32, 32)
    best = {"fixed_batch": 128, "initial_batch": 32, "changes": [], "batch_range": [104, 128]}
    assert _scheduled(best) == (128, 128)
    grew = {"fixed_batch": None, "initial_batch": 32, "changes": [[640, 64], [2000, 16]], "batch_range": [8, 64]}
    assert _scheduled(grew) == (16, 64)
    assert _scheduled({"batch_range": [8, 32]}) == (8, 32), "a record without its start: the trained range"


def test_the_ceiling_follows_the_measured_noise_scale():
    table = {"16": 1000.0, "32": 1800.0, "64": 3000.0}
    assert throughput_bound(table, 16) == pytest.approx(3.0)
    quiet = [{"noise": [[0, 1.0, 1.0]]}]  # a tiny noise scale: larger batches buy nothing
    loud = [{"noise": [[0, 1e6, 1e6]]}]  # pure noise: the throughput bound
    assert goodput_ceiling(quiet, table, 16, 1000) == pytest.approx(1.0, abs=0.02)
    assert goodput_ceiling(loud, table, 16, 1000) == pytest.approx(3.0, rel=0.01)
    assert goodput_ceiling([{"noise": []}], table, 16, 1000) == pytest.approx(1.0), "no estimate: the starting batch"


def test_fixed_best_reuses_the_run_that_already_is_it(tmp_path):
    from deba.app.study.runner import cell_path, fixed_best_source

    small = cell_path(tmp_path, "t", "fixed-small", 2)
    assert fixed_best_source(tmp_path, "t", (1, "linear"), 2) is None, "not run yet: train it"
    small.parent.mkdir(parents=True)
    small.write_text("{}")
    assert fixed_best_source(tmp_path, "t", (1, "linear"), 2) == small, "1x is the fixed starting batch"
    assert fixed_best_source(tmp_path, "t", (2, "sqrt"), 2) is None, "a larger winner trains on seeds > 0"
    assert fixed_best_source(tmp_path, "t", (2, "sqrt"), 0) == cell_path(tmp_path, "t", "sweep-2x-sqrt", 0)


def test_a_finished_cell_of_another_schedule_or_length_is_refused_not_reused(tmp_path):
    from deba.app.study.runner import cell_path

    path = cell_path(tmp_path, TINY_TASK.name, "fixed-small", 0)
    path.parent.mkdir(parents=True)
    for ran in ({}, {"schedule": "cosine", "epochs": TINY_TASK.epochs}, {"schedule": "held", "epochs": 4}):
        path.write_text(json.dumps({"task": TINY_TASK.name, "method": "fixed-small", "seed": 0, **ran}))
        with pytest.raises(deba.DebaConfigError, match="own --out folder"):
            run_study(TINY, tmp_path, methods=("fixed-small",), data_dir=str(FASHION_DIR), log=lambda _: None)
    from deba.app.study.cells import check_ran_as

    same = {"schedule": TINY_TASK.schedule, "epochs": TINY_TASK.epochs}
    check_ran_as(same, TINY_TASK, "a cell")  # the task as it is now: reused
    old_cosine = Task("old", "digits", "small-mlp", 8, 1, None, None, epochs=1, batch=8, schedule="cosine")
    check_ran_as({}, old_cosine, "a cell")  # cells from before schedules ran the full cosine: reused for one
    with pytest.raises(deba.DebaConfigError, match="must be task tiny-mlp's"):
        check_ran_as({"schedule": "cosine", "epochs": 2}, TINY_TASK, "a cell")


def test_a_diverged_cell_records_its_schedule_so_a_resume_reuses_it(monkeypatch):
    from deba.app.study import cells
    from deba.training.fit import NonFiniteTraining

    seen = {}

    def diverging_fit(*args, **kwargs):
        seen.update(kwargs)
        raise NonFiniteTraining("loss is nan at step 3. More")

    monkeypatch.setattr(cells, "fit", diverging_fit)
    from deba.app.data import load_dataset

    data = load_dataset("digits", train_subset=128, test_subset=32)
    task = Task("t", "digits", "small-mlp", 8, 1, 128, 32, epochs=2, batch=16, evals=2, schedule="cosine")
    config = method_config("seesaw", deba.load_profile("mlp").starting_at(16), 16, schedule=task.schedule)
    rec = cells.run_cell(task, "seesaw", config, 0, data)
    assert rec["diverged"] and (rec["schedule"], rec["epochs"]) == ("cosine", 2)
    cells.check_ran_as(rec, task, "the diverged cell")
    # what the cell handed deba.fit: the task's schedule on its LR scheduler, the Seesaw policy
    sched = seen["lr_scheduler"]
    assert [sched.lr_lambdas[0](k) for k in (0, 8, 16)] == pytest.approx([1.0, 0.5, 0.0])
    assert seen["policy"] is config.policy and seen["lr_scheduler_interval"] == "samples"


def test_critical_batch_is_the_largest_size_before_the_first_loss():
    assert critical_batch({32: 0.40, 64: 0.405, 128: 0.407, 256: 0.45, 512: 0.40}) == (128, 256), "a recovery past a loss does not count"
    assert critical_batch({32: 0.40, 64: 0.405, 128: 0.41}) == (64, 128), "2 % of 0.40 is 0.008"
    assert critical_batch({32: 0.40, 64: 0.39, 128: 0.3}) == (128, None), "no size loses: the grid's end"
    assert critical_batch({64: 0.5, 32: 0.40}) == (32, 64), "the reference is the smallest size, in any order"
    assert critical_batch({32: 0.40, 64: None, 128: 0.40}) == (32, 64), "a diverged branch loses"
    assert critical_batch({32: 0.40, 64: 0.41}, tolerance=0.0) == (32, 64)
    assert critical_batch({32: 0.40, 64: 0.41}, tolerance=0.05) == (64, None)
    assert critical_batch({32: 0.40, 64: float("nan")}) == (32, 64)
    for bad, field in (({}, "losses"), ({32: None, 64: 0.4}, r"losses\[32\]"), ({32: 0.0}, r"losses\[32\]"),
                       ({32: float("inf")}, "losses"), ({"32": 0.4, "64": 0.4}, "positive int"), ({0: 0.4}, "positive int"),
                       ({True: 0.4}, "positive int"), ({32: 0.4, 64: "0.4"}, r"losses\[64\]"), ([0.4], "losses")):
        with pytest.raises(deba.DebaConfigError, match=field):
            critical_batch(bad)
    for tol in (-0.1, float("nan"), True, "0.1"):
        with pytest.raises(deba.DebaConfigError, match="tolerance"):
            critical_batch({32: 0.4}, tolerance=tol)


def _truth_point(**kw):
    point = {"progress": 0.3, "b_simple": 361.0, "b_simple_low": 126.0, "b_crit": 256, "b_crit_upper": None,
             "ratio": 1.41, "ratio_is_upper_bound": True, "reference_spread": 0.003,
             "branch_loss": {"32": 0.30, "64": 0.301, "128": 0.30, "256": 0.302},
             "lr_rule": {"32": "linear", "64": "sqrt", "128": "sqrt", "256": "linear"}}
    return {**point, **kw}


def test_truth_table_and_plot_read_both_methods_files(tmp_path):
    from matplotlib.figure import Figure

    from deba.app.study.plots import _truth
    from deba.app.study.report import truth_markdown

    new = {"method": "equal-samples branches", "branch_samples": 4096, "branch_seeds": [1, 2, 3], "tolerance": 0.02,
           "points": [_truth_point(), _truth_point(progress=0.6, b_crit=None, b_crit_upper=None, ratio=None,
                                                   ratio_is_upper_bound=False, reference_spread=None)]}
    old = {"task": "mlp", "points": [{"progress": 0.6, "b_simple": 412.0, "b_crit": 36.0, "steps_to_target": {"32": 40}}]}
    md = truth_markdown({"new": new, "old": old})
    rows = [line for line in md.splitlines() if line.startswith("| 30%") or line.startswith("| 60%")]
    assert rows[0].startswith("| 30% | 361 (126) | >= 256 | none up to 256 | <= 1.41 | 0.30 % |"), \
        "no size lost: the critical batch and the ratio are bounds"
    assert rows[1].startswith("| 60% | 361 (126) | - | - | - | - |"), "an unmeasured point shows dashes"
    assert "### Noise-scale truth: old" in md and "older steps-to-target method" in md
    assert _truth(tmp_path / "t.png", {"new": new, "old": old}, Figure).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_study_runs_resumes_and_analyses(tmp_path):
    logs = []
    records = run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), log=logs.append)
    assert {r["method"] for r in records} >= set(METHODS)
    assert any(line.startswith("[throughput]") for line in logs)
    table = json.loads((tmp_path / "throughput" / "tiny-mlp.json").read_text())
    assert table["rounds"] == 5 and all(table["low"][b] <= v <= table["high"][b] for b, v in table["samples_per_s"].items())
    for r in records:
        assert len(r["curve"]) == TINY_TASK.evals and r["steps"] > 0 and 0 <= r["final_accuracy"] <= 1
        probes = r["method"] in ("deba", "deba-uniform", "goodput-ungated")  # the goodput policies time sizes first
        assert bool(r["probe"]["sizes"]) == probes and (r["probe"]["passes"] == 3) == probes, r["method"]
        assert r["train_time_s"] >= r["probe"]["seconds"]
        assert sum(n for _, n in r["trajectory"]) == r["steps"]
        assert (r["schedule"], r["epochs"]) == ("held", TINY_TASK.epochs)
    choice = json.loads((tmp_path / "choices" / "tiny-mlp.json").read_text())
    best = next(r for r in records if r["method"] == "fixed-best")
    assert best["fixed_batch"] == choice["k"] * 16
    seesaw = next(r for r in records if r["method"] == "seesaw")
    assert seesaw["batch_range"][1] > 16, "the Seesaw ramp doubled the batch"
    # a rerun resumes: nothing is trained again
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*/*.json")}
    again = []
    run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), log=again.append)
    assert not any("seed" in line for line in again)
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*/*.json")}
    from deba.app.study import load_task_data, noise_truth

    tiny_data = load_task_data(TINY_TASK, str(FASHION_DIR))
    truth = noise_truth(TINY_TASK, tiny_data, tmp_path, log=logs.append)
    assert [p["progress"] for p in truth["points"]] == [0.1, 0.3, 0.6]
    assert (truth["schedule"], truth["epochs"]) == (TINY_TASK.schedule, TINY_TASK.epochs), "a changed task is measured again"
    assert truth["branch_samples"] >= 4 * 16 * 32 and len(truth["branch_seeds"]) == 3
    assert truth["branch_samples"] % (16 * 32) == 0, "every size sees the same samples"
    for p in truth["points"]:  # every size ran on every data order, at the LR rule its own data order picked
        assert len(p["branch_loss"]) == 6 and p["lr_rule"]["16"] == "linear" and "16" not in p["selection_loss"]
        for b, loss in p["branch_loss"].items():
            seeds = p["branch_loss_per_seed"][b]
            assert len(seeds) == 3 and (loss is None) == (None in seeds)
            if loss is not None:
                assert loss == pytest.approx(sum(seeds) / 3)
            if b != "16":
                tried = p["selection_loss"][b]
                done = {r: v for r, v in tried.items() if v is not None}
                assert p["lr_rule"][b] == (min(done, key=done.get) if done else "sqrt")
        if p["b_crit"] is not None:
            losses = {int(b): v for b, v in p["branch_loss"].items()}
            assert (p["b_crit"], p["b_crit_upper"]) == critical_batch(losses, truth["tolerance"])
            assert p["reference_spread"] >= 0
    quiet = []
    assert noise_truth(TINY_TASK, tiny_data, tmp_path, log=quiet.append) == truth and not quiet, "read back, not measured again"
    analysis = summary(tmp_path, TINY, "test")
    t = analysis["tasks"]["tiny-mlp"]
    assert t["methods"]["fixed-small"]["modelled_speedup_vs_fixed-small"][0] == pytest.approx(1.0)
    assert t["throughput_bound"] >= 1.0 and "goodput_ceiling" in t
    cells = analysis["cells"]
    for key in ("task", "method", "seed", "final_accuracy", "reached_target", "samples", "steps", "train_time_s",
                "modelled_time_s"):
        assert all(key in c for c in cells), key
    assert analysis["targets"]["tiny-mlp"] == pytest.approx(t["target_accuracy_pct"]) and analysis["throughput"]
    for name in ("results.json", "results.md", "speedups.png", "trajectories.png", "accuracy_vs_time.png",
                 "noise_truth.png"):
        assert (tmp_path / name).exists(), name
    assert "### tiny-mlp" in (tmp_path / "results.md").read_text()
    assert "### Noise-scale truth: tiny-mlp" in (tmp_path / "results.md").read_text()
    # an experiment with other DEBA values is refused in a folder of finished cells (never mixed in)
    with pytest.raises(deba.DebaConfigError, match="deba_overrides.*differ from those of the finished cell") as err:
        run_study(TINY, tmp_path, data_dir=str(FASHION_DIR), deba_overrides={"lr_scaling": "sqrt"}, log=again.append)
    assert "own --out folder" in str(err.value)
    assert not math.isnan(analysis["tasks"]["tiny-mlp"]["plateau_gain_pct"])


def test_presets_dry_run_checks_the_setup(capsys):
    assert PRESETS["paper"].seeds == 5 and PRESETS["paper"].download
    assert all(t.dataset == "cifar10" for t in PRESETS["paper"].tasks)
    assert main(["bench", "--preset", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 tasks" in out and "downloaded by torchvision" in out and "vit_base_patch16_224" in out
    assert main(["bench", "--preset", "small", "--dry-run", "--data-dir", str(FASHION_DIR)]) == 0
    out = capsys.readouterr().out
    assert f"{len(plan(PRESETS['small']))} runs" in out and "fashion-resnet" in out
    assert main(["bench", "--preset", "cpu", "--dry-run", "--data-dir", str(FASHION_DIR), "--tasks", "resnet18",
                 "--methods", "fixed-small", "deba", "--deba-set", "lr_scaling=sqrt"]) == 0
    assert "6 runs" in capsys.readouterr().out
    assert main(["bench", "--preset", "cpu", "--dry-run", "--data-dir", str(FASHION_DIR),
                 "--deba-set", "growth_factr=2"]) == 2
    assert "growth_factr" in capsys.readouterr().err


def test_a_folder_without_fixed_small_cells_says_so_instead_of_crashing(tmp_path):
    # `deba bench --methods deba` alone: no target can be set, so no table and no plot (it used to
    # crash in matplotlib with zero subplot columns after the cells had run).
    from deba.app.study.plots import plot_all
    from deba.app.study.report import markdown

    assert plot_all(tmp_path, {"tasks": {}}) == []
    assert "no target" in markdown({"tasks": {}})
