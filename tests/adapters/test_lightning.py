"""DEBA in lightning.Trainer: the callback tier, the DebaModule mixin, refusals, checkpoints, DDP, resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

import lightning as L  # the deba[lightning] extra; the dev extra installs it

import deba  # noqa: E402
from deba.adapters.lightning import DebaCallback, DebaModule, deba_dataloader  # noqa: E402
from deba.training.history import read_history  # noqa: E402
from helpers import FASHION_DIR  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
WORKER = HERE / "lightning_worker.py"
TABLE = {16: 1000.0, 32: 1005.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0}


@pytest.fixture(scope="module")
def data():
    from deba.app.data import load_dataset

    return load_dataset("fashion-mnist", data_dir=FASHION_DIR, train_subset=480, test_subset=64, size=28)


class Net(L.LightningModule):
    def __init__(self, dataset, batch=32, schedule=None):
        super().__init__()
        torch.manual_seed(0)
        self.dataset, self.batch, self.schedule = dataset, batch, schedule
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def loss(self, batch):
        return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        if self.schedule is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.schedule(self, opt)}

    def train_dataloader(self):
        return deba_dataloader(self.dataset, self.batch)


class ModuleNet(DebaModule, Net):
    def deba_loss(self, batch):
        return self.loss(batch)


def _trainer(callback, **kw):
    kw = {"max_epochs": 2, "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
          "enable_progress_bar": False, "enable_model_summary": False, **kw}
    return L.Trainer(callbacks=[callback], **kw)


def test_the_callback_adapts_the_batch_logs_and_keeps_the_sample_budget(data, tmp_path):
    cb = DebaCallback(profile="mlp", throughput=TABLE, history_dir=str(tmp_path))
    trainer = _trainer(cb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Net(data.train))
    history = read_history(tmp_path / "deba_history.jsonl")
    assert cb.scheduler.initial_batch == 32, "the DataLoader's batch is the starting batch"
    assert len({r["batch_size"] for r in history}) >= 3, "the batch size changed"
    assert cb.engine.samples == 2 * len(data.train), "every sample once per epoch, max_epochs epochs"
    assert any(r["noise_scale_low"] is not None for r in history), "a linear model's noise is measured by the callback"
    assert any(r["lr_factor"] != 1.0 for r in history), "the LR factor followed the batch"
    for key in ("deba/batch_size", "deba/score", "deba/noise_scale", "deba/lr_factor"):
        assert key in trainer.callback_metrics, key
    assert "deba/batch_size" in trainer.progress_bar_metrics
    state = cb.state_dict()
    assert json.loads(json.dumps(state))["format"] == "deba-state", "JSON-able, the deba_state.json schema"


def test_the_mixin_runs_micro_batches_and_measurement_steps(data, tmp_path):
    cb = DebaCallback(profile="mlp", throughput=TABLE, history_dir=str(tmp_path), max_micro_batch=24)
    trainer = _trainer(cb)
    module = ModuleNet(data.train)
    assert not module.automatic_optimization
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module)
    history = read_history(tmp_path / "deba_history.jsonl")
    assert any(r["micro_batches"] > 1 for r in history), "a batch above the memory cap ran as micro-batches"
    assert any(r["noise_scale_low"] is not None for r in history)
    assert cb.engine.samples == 2 * len(data.train) and trainer.global_step == len(history)


def test_sample_clock_schedule_ends_with_the_budget(data, tmp_path):
    import math

    seen = []

    def cosine(module, opt):
        cb = next(c for c in module.trainer.callbacks if isinstance(c, DebaCallback))
        return {"scheduler": cb.sample_clock(opt, lambda d: 0.5 * (1 + math.cos(math.pi * d))), "interval": "step"}

    class Watch(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    cb = DebaCallback(profile="mlp", throughput=TABLE, epochs=2)
    trainer = L.Trainer(max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[cb, Watch()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Net(data.train, schedule=cosine))
    assert cb.budget_done() and cb.done_fraction() == 1.0, "DEBA stopped the run at its budget"
    assert seen[0] > seen[len(seen) // 2] > seen[-1] and seen[-1] < 0.01 * 0.05, "the cosine ran to the end of the budget"
    assert cb.equivalent, "goodput with its own budget: equivalent samples"


def test_setups_that_cannot_work_are_refused_with_the_remedy(data):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from (data.train[i] for i in range(8))

    class PlainLoader(Net):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(self.dataset, batch_size=32)

    class StepSized(Net):
        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            steps = self.trainer.estimated_stepping_batches
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)}

    cases = [
        (lambda: _trainer(DebaCallback(), accumulate_grad_batches=2).fit(Net(data.train)), "accumulate_grad_batches"),
        (lambda: _trainer(DebaCallback()).fit(PlainLoader(data.train)), "deba_dataloader"),
        (lambda: _trainer(DebaCallback()).fit(StepSized(data.train)), "sample_clock"),
        (lambda: deba_dataloader(Stream(), 8), "map-style"),
        (lambda: deba_dataloader(data.train, 8, sampler=None), "sampler"),
        (lambda: DebaCallback(budget="tokens"), "budget"),
        (lambda: DebaCallback(max_micro_batch=0), "max_micro_batch"),
    ]
    for run, text in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(deba.DebaConfigError, match=text) as info:
                run()
        assert text == "map-style" or info.value.remedy or "must" in str(info.value), text


def test_strategies_other_than_ddp_and_ddp_without_its_sampler_switch_are_refused(data):
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy

    from deba.adapters.lightning.checks import check_trainer

    class Other(DDPStrategy):  # any strategy that is not plain DDP (FSDP, DeepSpeed, ...)
        pass

    fake = SimpleNamespace(accumulate_grad_batches=1, strategy=Other(), world_size=1, precision="32-true",
                           _accelerator_connector=SimpleNamespace(use_distributed_sampler=False))
    with pytest.raises(deba.DebaConfigError, match="single-device or DDP"):
        check_trainer(fake, Net(data.train))
    fake.strategy, fake.world_size = DDPStrategy(), 2
    fake._accelerator_connector.use_distributed_sampler = True
    with pytest.raises(deba.DebaConfigError, match="use_distributed_sampler"):
        check_trainer(fake, Net(data.train))
    fake._accelerator_connector.use_distributed_sampler, fake.precision = False, "16-mixed"
    with pytest.raises(deba.DebaConfigError, match="bf16"):
        check_trainer(fake, ModuleNet(data.train))
    check_trainer(fake, Net(data.train))  # fp16 with the callback alone: allowed


def test_import_deba_does_not_import_lightning():
    code = "import sys, deba; from deba.adapters.lightning import LightningAdapter; assert 'lightning' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert deba.registry.load("adapters", "lightning", expected=deba.FrameworkAdapter).extra == "lightning"


def _worker(out: Path, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "DEBA_FASHION_MNIST": str(FASHION_DIR), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(WORKER), str(out), *args]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ids(out: Path, rank: int) -> list[list[int]]:
    files = sorted(out.glob(f"ids-*-rank{rank}.txt"), key=lambda p: p.stat().st_mtime)
    return [[int(i) for i in line.split()] for f in files for line in f.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("tier", ["callback", "module"])
def test_ddp_ranks_agree_step_by_step_and_see_every_sample_once_per_epoch(tmp_path, tier):
    r = _worker(tmp_path, "--tier", tier, "--devices", "2")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    h0 = read_history(tmp_path / "history" / "deba_history.jsonl")
    h1 = read_history(tmp_path / "history" / "deba_history-rank1.jsonl")
    assert len(h0) == len(h1) > 10
    keys = ("batch_size", "next_batch_size", "action", "reason", "score", "noise_scale", "lr_factor")
    assert [tuple(a[k] for k in keys) for a in h0] == [tuple(b[k] for k in keys) for b in h1], "ranks never disagree"
    assert len({a["batch_size"] for a in h0}) >= 2
    per_epoch: dict[int, Counter] = {}
    for rank, hist in ((0, h0), (1, h1)):
        for ids, rec in zip(_ids(tmp_path, rank), hist):
            per_epoch.setdefault(rec["epoch"], Counter()).update(ids)
    assert sorted(per_epoch) == [0, 1]
    for epoch, counts in per_epoch.items():
        assert sorted(counts) == list(range(480)) and set(counts.values()) == {1}, epoch


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_mid_run_then_resume_from_the_checkpoint_continues_exactly(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir()
    broken.mkdir()
    r = _worker(straight, "--tier", "module", "--epochs", "3", "--ckpt-every", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    full = read_history(straight / "history" / "deba_history.jsonl")
    assert len({x["batch_size"] for x in full}) >= 2
    kill_at = random.Random(len(full)).randint(8, len(full) - 5)
    p = _worker(broken, "--tier", "module", "--epochs", "3", "--ckpt-every", "3", wait=False)
    hist = broken / "history" / "deba_history.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (hist.exists() and len(hist.read_text().splitlines()) >= kill_at):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    ckpts = sorted((broken / "ckpt").glob("step=*.ckpt"), key=lambda f: int(f.stem.split("=")[1]))
    assert ckpts, "a checkpoint was written before the kill"
    last = None
    for ckpt in reversed(ckpts):  # the newest one that loads (the kill may have cut a save short)
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
            last = ckpt
            break
        except Exception:
            continue
    steps_done = state["global_step"]
    r = _worker(broken, "--tier", "module", "--epochs", "3", "--ckpt-every", "3", "--resume", str(last))
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = read_history(hist)
    assert [x["batch_size"] for x in resumed] == [x["batch_size"] for x in full], "same batch-size trajectory"
    assert [x["loss"] for x in resumed] == pytest.approx([x["loss"] for x in full], rel=1e-6), "same training"
    killed_ids, resumed_ids = _ids(broken, 0), None
    pid_files = sorted(broken.glob("ids-*-rank0.txt"), key=lambda f: f.stat().st_mtime)
    first = [[int(i) for i in line.split()] for line in pid_files[0].read_text().splitlines()]
    resumed_ids = [[int(i) for i in line.split()] for line in pid_files[-1].read_text().splitlines()]
    assert first[:steps_done] + resumed_ids == _ids(straight, 0), "same sample order as the uninterrupted run"
    assert killed_ids  # the killed run logged its batches


@pytest.mark.slow
def test_a_loaded_checkpoint_state_never_reaches_another_trainers_loader(data, tmp_path):
    # Each loader carries its own position (Lightning's stateful-loader protocol): a callback that
    # loaded a checkpoint's state must not hand it to another trainer that starts afresh.
    first = DebaCallback(profile="mlp", throughput=TABLE, history_dir=str(tmp_path / "a"))
    trainer = _trainer(first, max_epochs=1)
    trainer.fit(Net(data.train))
    saved = first.state_dict()
    assert saved["sampler"]["epoch"] >= 1 or saved["sampler"]["position"] > 0
    DebaCallback(profile="mlp", throughput=TABLE).load_state_dict(saved)  # loaded, never trained
    fresh = DebaCallback(profile="mlp", throughput=TABLE, history_dir=str(tmp_path / "b"))
    _trainer(fresh, max_epochs=1).fit(Net(data.train))
    steps = [r for r in read_history(tmp_path / "b" / "deba_history.jsonl") if r.get("kind") == "step"]
    assert steps[0]["step"] == 1 and steps[-1]["samples"] == len(data.train)


@pytest.mark.slow
def test_the_callback_logs_the_noise_estimate_and_its_bound_under_their_own_names(data, tmp_path):
    logged = set()

    class Spy(Net):
        def log(self, name, *args, **kwargs):
            logged.add(name)
            return super().log(name, *args, **kwargs)

    cb = DebaCallback(profile="mlp", throughput=TABLE, epochs=2)
    _trainer(cb, max_epochs=-1).fit(Spy(data.train))
    assert {"deba/batch_size", "deba/lr_factor", "deba/noise_scale", "deba/noise_scale_low"} <= logged


@pytest.mark.slow
def test_the_callbacks_probe_is_the_shared_runs(data, monkeypatch):
    # One probe for every front end: the same sizes, the same bound (no time cut-off under DDP).
    from deba.training.run import DebaRun

    calls = []
    real = DebaRun.probe_throughput

    def spy(self, make_batch, **kw):
        calls.append(kw)
        return real(self, make_batch, **kw)

    monkeypatch.setattr(DebaRun, "probe_throughput", spy)
    cb = DebaCallback(profile="mlp", max_samples=64)
    _trainer(cb, max_epochs=-1).fit(Net(data.train))
    assert calls and calls[0]["world"] == 1 and cb.run.clock["probe_sizes"]


def _steps_of(folder):
    return [(r["step"], r["batch_size"], r["loss"]) for r in read_history(folder / "deba_history.jsonl")
            if r.get("kind") == "step"]


@pytest.mark.slow
@pytest.mark.parametrize("plain_loader", [False, True])
def test_resume_from_an_epoch_end_checkpoint_continues_exactly(data, tmp_path, plain_loader):
    # Lightning restores no loader state after a finished epoch: DEBA's copy of the sampler's
    # position is applied and the training iterator restarted (restart_training_iterator), for
    # deba_dataloader and for a plain DataLoader over an AdaptiveBatchSampler alike.
    class PlainLoaderNet(Net):
        def train_dataloader(self):
            sampler = deba.AdaptiveBatchSampler(self.dataset, 32, seed=0)
            return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler)

    cls = PlainLoaderNet if plain_loader else Net

    def trainer(folder, epochs, checkpoint):
        cb = DebaCallback(profile="mlp", throughput=TABLE, history_dir=str(folder))
        extra = [L.pytorch.callbacks.ModelCheckpoint(dirpath=str(folder / "ck"), save_top_k=-1)] if checkpoint else []
        return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, callbacks=[cb, *extra],
                         enable_checkpointing=checkpoint, enable_progress_bar=False, enable_model_summary=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer(tmp_path / "whole", 3, False).fit(cls(data.train))
        trainer(tmp_path / "cut", 1, True).fit(cls(data.train))
        (tmp_path / "cut" / "deba_history.jsonl").unlink()
        ckpt = sorted((tmp_path / "cut" / "ck").glob("*.ckpt"))[0]
        trainer(tmp_path / "cut", 3, False).fit(cls(data.train), ckpt_path=str(ckpt))
    whole, resumed = _steps_of(tmp_path / "whole"), _steps_of(tmp_path / "cut")
    assert resumed and resumed[0][0] > 1, "the resumed run starts after the checkpoint"
    assert resumed == whole[resumed[0][0] - 1:]
