"""`deba run` and `deba calibrate` on real data, and their error messages (no tracebacks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import deba
from deba.app.commands.calibrate import calibrate_profile, intervals_from_history
from deba.app.commands.run import parse_compare
from deba.app.data import load_dataset, read_idx

from helpers import FASHION_DIR as FASHION


def deba_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deba", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_deba_run_writes_the_run_folder_and_a_table(tmp_path):
    out = tmp_path / "run"
    r = deba_cli("run", "--epochs", "3", "--seeds", "2", "--out", str(out), "--no-progress", "--compare", "static",
                 "--compare", "static:64")
    assert r.returncode == 0, r.stderr
    assert "x modelled" in r.stdout and "static-64" in r.stdout and "deba" in r.stdout
    for name in ("history.jsonl", "profile.yaml", "summary.json", "report.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    methods = {row["method"]: row for row in summary["results"]}
    assert set(methods) == {"deba", "static-16", "static-64"} and summary["reference"] == "static-16"
    assert methods["static-64"]["batch_max"] == 64 and methods["deba"]["final_accuracy"] > 0.5
    assert all(len(summary["runs"][m]) == 2 for m in methods), "every method once per seed"
    assert deba.load_profile(out / "profile.yaml").name == summary["profile"] == "mlp"
    # modelled time from the table timed first: sum of B / T(B) over the steps
    table = summary["throughput_table"]
    assert set(table) >= {"8", "16", "32", "64", "512"}
    static = summary["runs"]["static-16"][0]
    assert static["modelled_time_s"] == pytest.approx(static["samples"] / table["16"], rel=0.05)  # tails of 13 aside
    # what DEBA decided from, and one line saying why it grew or held
    assert "the table it decided from" in r.stdout and "  why: " in r.stdout and "noise scale" in r.stdout
    row = methods["deba"]
    assert row["why"] and row["throughput_measured"] and row["modelled_speedup"] > 0
    assert row["why"].startswith("held at") == (row["batch_changes"] == 0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fashion_mnist_from_the_shared_idx_files(tmp_path):
    data = load_dataset("fashion-mnist", data_dir=FASHION, train_subset=300, test_subset=100, channels=3)
    x, y = data.train.tensors
    assert x.shape == (300, 3, 32, 32) and y.max() <= 9 and data.num_classes == 10
    assert abs(float(x.mean())) < 0.1
    assert read_idx(FASHION / "t10k-labels-idx1-ubyte.gz").shape == (10000,)
    r = deba_cli("run", "--dataset", "fashion-mnist", "--data-dir", str(FASHION), "--train-subset", "400",
                 "--test-subset", "200", "--epochs", "1", "--out", str(tmp_path / "f"), "--no-progress")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--model", "resnet81"], "Did you mean"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent-folder"], "train-images-idx3-ubyte.gz"),
    (["--dataset", "fashion-mnist"], "--data-dir"),
    (["--compare", "dynamic:3"], "static"),
    (["--epochs", "0"], "epochs"),
])
def test_bad_input_is_a_clear_message_and_nonzero_exit(tmp_path, args, needle):
    r = deba_cli("run", *args, "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_invalid_profile_file_and_unwritable_out(tmp_path):
    bad = tmp_path / "bad.yaml"
    data = deba.load_profile("generic").to_dict()
    data["rules"][0]["op"] = "=="
    bad.write_text(yaml.safe_dump(data))
    r = deba_cli("run", "--profile", str(bad), "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 2 and "rules[0].op" in r.stderr and "Traceback" not in r.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = deba_cli("run", "--out", str(blocker / "sub"), "--no-progress")
    assert r.returncode == 2 and "not writable" in r.stderr and "Traceback" not in r.stderr


def test_cifar_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(deba.DebaConfigError, match="--download"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_calibrate_writes_a_profile_that_run_and_fit_accept(tmp_path):
    target = tmp_path / "cal.yaml"
    r = deba_cli("calibrate", "--epochs", "2", "--out", str(tmp_path / "c"), "--output", str(target), "--no-progress",
                 "--name", "digits-cnn")
    assert r.returncode == 0, r.stderr
    p = deba.load_profile(target)
    assert p.name == "digits-cnn"
    assert p.tau != deba.load_profile("resnet18").tau, "scales were measured"
    assert 0 <= p.decrease_below < p.increase_above <= 1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 16), torch.randint(0, 3, (64,))
    deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
             loss_fn=torch.nn.functional.cross_entropy, profile=str(target), epochs=1, progress=False)
    r = deba_cli("run", "--profile", str(target), "--epochs", "1", "--out", str(tmp_path / "r"), "--no-progress")
    assert r.returncode == 0, r.stderr


def test_calibration_math():
    base = deba.load_profile("paper")  # the v1 metrics: calibration works for any metric names
    rows = [({"grad_variance": 10.0 + i, "grad_norm_variation": 0.2, "loss_variation": 0.1 * (i % 3)}, 2.0 - 0.01 * i)
            for i in range(30)]
    prof, report = calibrate_profile(base, rows)
    assert prof.tau["grad_variance"] == pytest.approx(24.5) and report["intervals"] == 30
    with pytest.raises(deba.DebaConfigError):
        calibrate_profile(base, rows[:2])
    hist = [{"kind": "step", "loss": 1.0, "metrics": {}, "reason": "collecting"},
            {"kind": "step", "loss": 3.0, "metrics": {"a": 1.0}, "reason": "score"}]
    assert intervals_from_history(hist) == [({"a": 1.0}, 2.0)]


def test_parse_compare():
    assert parse_compare(None, 32) == [32] and parse_compare(["static:64", "static"], 32) == [64, 32]


def _fixed_batch_history():
    """A real fixed-batch run's records (small linear model, decisions every 2 steps)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.randn(256, 16), torch.randint(0, 3, (256,))
    profile = deba.load_profile("generic").replace(interval=2, warmup=0)
    result = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      loss_fn=torch.nn.functional.cross_entropy, profile=profile, epochs=3, progress=False,
                      fixed_batch=16, tensorboard=False)
    return result.history


def test_calibrate_reads_structured_records_never_reason_strings():
    history = _fixed_batch_history()
    intervals = intervals_from_history(history)
    closes = [r for r in history if r.get("kind") == "step" and r["decided"] and r["metrics"]]
    assert len(intervals) == len(closes) >= 4
    assert [m for m, _ in intervals] == [r["metrics"] for r in closes]
    for reason in ("", "something else entirely", "score 0.9 >= 0.5", "filling window 1/5"):
        rewritten = [dict(r, reason=reason) if r.get("kind") == "step" else r for r in history]
        assert intervals_from_history(rewritten) == intervals, reason
    base = deba.load_profile("generic")
    blank = [dict(r, reason="") if r.get("kind") == "step" else r for r in history]
    assert calibrate_profile(base, intervals_from_history(blank))[0] == calibrate_profile(base, intervals)[0]


def test_interval_boundaries_come_from_decided_and_interval():
    def step(loss, decided, interval, metrics=None, reason="anything"):
        return {"kind": "step", "loss": loss, "decided": decided, "interval": interval, "metrics": metrics or {},
                "changed": False, "reason": reason}

    history = [
        step(1.0, False, 0), step(5.0, True, 1),  # closed without metrics (window filling): losses dropped
        step(2.0, False, 1), step(float("nan"), True, 1, reason="non-finite"),  # emergency: no close
        step(4.0, True, 2, {"a": 1.0}),
        {"kind": "epoch", "loss": 100.0},
        step(3.0, False, 2), step(5.0, True, 3, {"a": "nan"}),  # history.jsonl spells NaN as a string
    ]
    got = intervals_from_history(history)
    assert got[0] == ({"a": 1.0}, 3.0)
    assert got[1][1] == 4.0 and np.isnan(got[1][0]["a"])


def test_calibrate_scores_with_the_strategy(monkeypatch):
    from deba.strategies.equal_weight import EqualWeightStrategy

    calls = []

    def constant(self, metrics):
        calls.append(dict(metrics))
        return 0.7

    monkeypatch.setattr(EqualWeightStrategy, "score", constant)
    base = deba.load_profile("generic")
    rows = [({"grad_variance": 10.0 + i, "grad_norm_variation": 0.2, "loss_variation": 0.1}, 2.0 - 0.01 * i)
            for i in range(12)]
    prof, report = calibrate_profile(base, rows)
    assert len(calls) == len(rows) and report["strategy"] == "equal-weight"
    # every score is 0.7, so both quantiles are; the hold band is then opened below it
    assert report["score_quantiles"] == {"grow": pytest.approx(0.7), "shrink": pytest.approx(0.65)}
    assert prof.increase_above == pytest.approx(0.7)
    with pytest.raises(deba.DebaConfigError, match="no-such-strategy"):
        calibrate_profile(base, rows, strategy="no-such-strategy")


def test_deba_runs_modelled_time_starts_with_the_startup_probe():
    from deba.app.commands.run import Trace

    trace = Trace({"16": 1000.0, "32": 2000.0})
    trace.on_train_start({"step": 0, "probe_sizes": [16, 32], "probe_passes": 3, "probe_seconds": 0.1})
    trace.on_step_end({"batch_size": 16})
    assert trace.modelled == pytest.approx(3 * (16 / 1000 + 32 / 2000) + 16 / 1000)
    fixed = Trace({"16": 1000.0})
    fixed.on_train_start({"step": 0, "probe_sizes": [], "probe_passes": 0})
    fixed.on_step_end({"batch_size": 16})
    assert fixed.modelled == pytest.approx(16 / 1000), "no probe, no cost"
    untimed = Trace(None)
    untimed.on_train_start({"step": 0, "probe_sizes": [16], "probe_passes": 3})
    assert untimed.modelled == 0.0
