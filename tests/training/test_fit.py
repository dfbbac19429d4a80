"""deba.fit: records, LR composition, non-finite steps, checkpoints and exact resume after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import deba
from deba.training.history import read_history

HERE = Path(__file__).resolve().parents[1]  # tests/, where the worker scripts are


def toy(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x @ torch.randn(10, 3, generator=g)).argmax(1)
    return x, y


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))


# The published rule, timed in steps: these tests pin down the loop's mechanics step by step.
FAST = deba.load_profile("mlp").replace(interval=2, window=3, min_samples=2, warmup=0, cooldown=1, policy="stability",
                                        lr_scaling="linear", shares=None)


def test_every_step_is_recorded_with_everything(tmp_path):
    x, y = toy()
    model = mlp()
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.cross_entropy,
                   profile=FAST, epochs=3, eval_data=(x, y), log_dir=tmp_path, progress=False)
    lines = read_history(tmp_path / "history.jsonl")
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) == res.steps and sum(r["batch_size"] for r in steps) == 3 * 512 == res.samples
    for key in ("step", "epoch", "samples", "batch_size", "micro_batches", "lr", "loss", "metrics", "score",
                "action", "reason", "wall_time", "samples_per_s"):
        assert key in steps[-1], key
    assert [r["epoch"] for r in lines if r["kind"] == "epoch"] == [0, 1, 2]
    assert res.final["eval_accuracy"] > 0.5 and res.stopped_by == "epochs"
    assert (tmp_path / "profile.yaml").exists() and any((tmp_path / "tensorboard").iterdir())
    assert len(res.batch_sizes) > 1, "the batch size changed during the run"


def test_max_samples_budget_without_epochs():
    x, y = toy()
    model = mlp()
    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.cross_entropy,
                   profile=FAST, max_samples=1300, progress=False)
    assert 1300 <= res.samples < 1300 + FAST.max_batch and res.stopped_by == "max_samples"
    assert res.epochs == res.samples // 512, "an epoch finished by the last batch is closed"


class RecordingSGD(torch.optim.SGD):
    """Records the LR each step actually used (pre-hooks have run by the time step() is called)."""

    used: list[float]

    def step(self, closure=None):
        self.used.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("make_sched", [
    lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5),
    lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40),
], ids=["StepLR", "CosineAnnealingLR"])
def test_lr_used_is_schedule_times_factor_at_every_step(make_sched):
    x, y = toy()
    model = mlp()
    opt = RecordingSGD(model.parameters(), lr=0.1)
    opt.used = []
    sched = make_sched(opt)
    twin_opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    twin = make_sched(twin_opt)  # the schedule alone, stepped in lockstep
    res = deba.fit(model, (x, y), optimizer=opt, loss_fn=nn.functional.cross_entropy, profile=FAST, epochs=2,
                   lr_scheduler=sched, progress=False)
    steps = res.step_records()
    assert len(opt.used) == len(steps)
    factors = set()
    intended = FAST.initial_batch
    for used, rec in zip(opt.used, steps):
        expected = twin_opt.param_groups[0]["lr"] * rec["lr_factor"]
        assert used == pytest.approx(expected, rel=1e-12), rec["step"]
        # the factor belongs to the size the batch was drawn at (a last partial batch keeps it)
        assert rec["lr_factor"] == FAST.lr_factor(intended)
        intended = rec["next_batch_size"]
        factors.add(rec["lr_factor"])
        twin_opt.step()
        twin.step()
    assert len(factors) > 1, "the factor changed during the run"
    assert opt.param_groups[0]["lr"] == pytest.approx(twin_opt.param_groups[0]["lr"]), "the scheduler's own value is untouched"


class NaNAfter(nn.Module):
    def __init__(self, start, stop=10**9):
        super().__init__()
        self.lin = nn.Linear(10, 3)
        self.calls, self.start, self.stop = 0, start, stop

    def forward(self, x):
        self.calls += 1
        out = self.lin(x)
        return out * float("nan") if self.start <= self.calls < self.stop else out


def test_nonfinite_steps_are_skipped_recorded_and_shrink_then_abort():
    x, y = toy()
    model = NaNAfter(start=8)
    p = FAST.replace(nonfinite_patience=2, initial_batch=64)
    with pytest.raises(deba.NonFiniteTraining, match=r"step \d+: 6 consecutive non-finite.*learning rate") as info:
        deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.cross_entropy,
                 profile=p, epochs=5, progress=False)
    assert "step" in str(info.value)


def test_transient_nonfinite_steps_skip_the_update_and_never_grow():
    x, y = toy()
    model = NaNAfter(start=6, stop=8)
    # no score-driven change can happen (score < 1), so no cooldown stands in the way of the shrink
    p = FAST.replace(nonfinite_patience=2, increase_above=1.0, decrease_below=0.0, initial_batch=64)
    last = None
    skipped_without_update = 0

    class Watch(deba.Callback):
        def on_step_end(self, rec):
            nonlocal last, skipped_without_update
            now = {k: v.clone() for k, v in model.state_dict().items()}
            if not rec["finite"]:
                assert rec["lr"] is None and rec["next_batch_size"] <= rec["batch_size"]
                assert all(torch.equal(now[k], last[k]) for k in now), "a non-finite step must not update the model"
                skipped_without_update += 1
            last = now

    res = deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.cross_entropy,
                   profile=p, epochs=2, progress=False, callbacks=[Watch()])
    bad = [r for r in res.step_records() if not r["finite"]]
    assert len(bad) == 2 == skipped_without_update and all("non-finite" in r["reason"] for r in bad)
    assert bad[-1]["action"] == "shrink", "two in a row (patience 2) shrink the batch"
    assert all(math.isfinite(r["loss"]) for r in res.step_records()[8:])


def test_manual_mode_controller():
    x, y = toy()
    data = torch.utils.data.TensorDataset(x, y)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sampler = deba.AdaptiveBatchSampler(data, batch_size=8)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
    ctl = deba.DebaController(model, opt, sampler=sampler, profile=FAST)
    assert sampler.batch_size == ctl.batch_size == 8, "the user's batch is the starting batch"
    sizes = []
    for _ in range(3):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            ctl.after_backward(loss, batch_size=len(yb))
            if ctl.step_ok:
                opt.step()
            sizes.append(len(yb))
        ctl.end_epoch()
    assert len(set(sizes)) > 2 and ctl.scheduler.changes >= 1
    state = json.loads(json.dumps(ctl.state_dict()))
    ctl2 = deba.DebaController(mlp(), torch.optim.SGD(mlp().parameters(), lr=0.1), sampler=deba.AdaptiveBatchSampler(data, 8), profile=FAST)
    ctl2.load_state_dict(state)
    assert ctl2.batch_size == ctl.batch_size and ctl2.sampler.state_dict() == sampler.state_dict()


def test_profile_auto_and_bad_arguments():
    x, y = toy()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = deba.fit(model, (x, y), optimizer=opt, loss_fn=nn.functional.cross_entropy, max_samples=200, progress=False)
    assert res.profile.name == "mlp"
    for kwargs, field in (({"epochs": None}, "epochs"), ({"epochs": 0}, "epochs"), ({"resume": True}, "resume"),
                          ({"lr_scheduler_interval": "minute"}, "lr_scheduler_interval")):
        with pytest.raises(deba.DebaConfigError, match=field):
            deba.fit(model, (x, y), optimizer=opt, loss_fn=nn.functional.cross_entropy, **{"epochs": 1, **kwargs})
    with pytest.raises(deba.DebaConfigError, match="train_data"):
        deba.fit(model, [1, 2, 3], optimizer=opt, loss_fn=nn.functional.cross_entropy, epochs=1)


def test_corrupt_or_foreign_checkpoints_are_clear_errors(tmp_path):
    x, y = toy(128)
    model = mlp()

    def run(**kw):
        return deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                        loss_fn=nn.functional.cross_entropy, profile=FAST, epochs=1, progress=False,
                        checkpoint_dir=tmp_path, **kw)

    run()
    (tmp_path / "latest.json").write_text("{not json")
    with pytest.raises(deba.DebaConfigError, match="corrupt"):
        run(resume=True)
    (tmp_path / "latest.json").write_text(json.dumps({"format": "something-else", "dir": "x"}))
    with pytest.raises(deba.DebaConfigError, match="foreign"):
        run(resume=True)
    folder = sorted(tmp_path.glob("step-*"))[-1]
    (tmp_path / "latest.json").write_text(json.dumps({"format": "deba-checkpoint", "version": 1, "dir": folder.name}))
    (folder / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(deba.DebaConfigError, match="cannot be loaded"):
        run(resume=True)
    run()  # a fresh complete checkpoint
    with pytest.raises(deba.DebaConfigError, match="profile"):
        deba.fit(model, (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.functional.cross_entropy,
                 profile=FAST.replace(growth_factor=3.0), epochs=1, progress=False, checkpoint_dir=tmp_path, resume=True)


def _worker(run_dir: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "fit_worker.py"), str(run_dir)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _orders(run_dir: Path) -> dict[int, list[str]]:
    return {int(p.stem.split("-")[1]): p.read_text().splitlines() for p in run_dir.glob("order-*.txt")}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_at_a_random_step_then_resume_continues_exactly(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir()
    broken.mkdir()
    p = _worker(straight)
    out, err = p.communicate(timeout=200)
    assert p.returncode == 0, err
    full = read_history(straight / "log" / "history.jsonl")
    full_steps = [r for r in full if r["kind"] == "step"]
    assert len({r["batch_size"] for r in full_steps}) > 2, "the run must change its batch size to be a real test"

    kill_at = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "0") + str(len(full_steps))).randint(5, len(full_steps) - 5)
    p = _worker(broken)
    hist = broken / "log" / "history.jsonl"
    deadline = time.time() + 200
    while time.time() < deadline:
        if hist.exists() and sum(1 for line in hist.read_text().splitlines() if '"step"' in line) >= kill_at:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_pid = p.pid
    checkpoint = json.loads((broken / "ckpt" / "latest.json").read_text())["dir"]
    # samples trained before the checkpoint (a measurement step runs its batch as two forwards, so
    # the order files have one line per forward, not per step: compare sample ids, not lines)
    checkpoint_samples = json.loads((broken / "ckpt" / checkpoint / "deba_state.json").read_text())["engine"]["samples"]

    p = _worker(broken, resume=True)
    out, err = p.communicate(timeout=200)
    assert p.returncode == 0, err
    resumed = read_history(hist)
    resumed_steps = [r for r in resumed if r["kind"] == "step"]

    assert [r["batch_size"] for r in resumed_steps] == [r["batch_size"] for r in full_steps]
    assert [r["step"] for r in resumed_steps] == [r["step"] for r in full_steps]
    assert [r["loss"] for r in resumed_steps] == [r["loss"] for r in full_steps], "CPU, deterministic: equal losses"
    assert [r.get("eval_loss") for r in resumed if r["kind"] == "epoch"] == [r.get("eval_loss") for r in full if r["kind"] == "epoch"]

    orders = {pid: [int(i) for line in lines for i in line.split()] for pid, lines in _orders(broken).items()}
    combined = orders[killed_pid][:checkpoint_samples] + orders[p.pid]
    straight_ids = [int(i) for line in next(iter(_orders(straight).values())) for i in line.split()]
    assert combined == straight_ids, "same sample order as the uninterrupted run"
