"""DebaTrainer: a tiny BERT on real text built offline, a vision model on Fashion-MNIST, resume, refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

import deba
from deba.adapters.huggingface import DebaTrainer
from helpers import FASHION_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from hf_text import EncodedTexts, docstring_task, tiny_bert  # noqa: E402

# The gate opened wider than the built-in's: these tests are about the Trainer's mechanics (a changing
# batch, micro-batches, logs, resume), and this tiny BERT's warm-up is a plateau it then leaves.
PROFILE = deba.load_profile("vit_b16").replace(interval=2, window=4, min_samples=3, warmup=2, cooldown=2,
                                               increase_above=0.3, decrease_below=0.1, growth_factor=1.5, min_gain=0.02)
# A fixed throughput table (decisions a pure function of the observations, so runs can be compared):
# splitting the starting batch of 32 is cheap (the noise is measured every step), larger batches pay.
TABLE = {16: 1000.0, 32: 1005.0, 40: 1250.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0, 512: 8000.0}


@pytest.fixture(scope="module")
def task():
    return docstring_task()


class IndexLog(torch.utils.data.Dataset):
    """Wraps a dataset and records every index fetched, in order."""

    def __init__(self, inner):
        self.inner, self.fetched = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.fetched.append(int(i))
        return self.inner[i]


class Capture(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def accuracy(p):
    return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}


def make_trainer(task, out, *, epochs=8, train=None, profile=PROFILE, callbacks=(), **arg_overrides):
    train_ds, test_ds, tok, k = task
    deba_kwargs = {key: arg_overrides.pop(key) for key in list(arg_overrides) if key.startswith("deba_")}
    deba_kwargs.setdefault("deba_throughput", TABLE)
    kwargs = dict(num_train_epochs=epochs, learning_rate=2e-3, logging_steps=4, save_strategy="no", report_to=[],
                  use_cpu=True, eval_strategy="epoch", disable_tqdm=True, seed=0,
                  per_device_train_batch_size=PROFILE.initial_batch)  # the starting batch is the user's
    kwargs.update(arg_overrides)
    return DebaTrainer(model=tiny_bert(len(tok), k), args=TrainingArguments(str(out), **kwargs),
                       train_dataset=train if train is not None else train_ds, eval_dataset=test_ds,
                       compute_metrics=accuracy, deba_profile=profile, callbacks=list(callbacks), **deba_kwargs)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bert_trains_with_a_changing_batch_and_logs_everything(task, tmp_path):
    cap = Capture()
    # budget="samples": exactly 8 epochs of samples, so evaluations fall on epochs 1..8
    trainer = make_trainer(task, tmp_path, callbacks=[cap], deba_max_micro_batch=48, deba_budget="samples")
    out = trainer.train()
    n = len(task[0])
    history = trainer.deba_history()
    sizes = [r["batch_size"] for r in history]
    assert len({s for s in sizes if s > 16}) >= 3, "the batch size actually changed"
    assert trainer.deba_samples == 8 * n and out.metrics["epoch"] == pytest.approx(8.0)
    assert any(r["micro_batches"] > 1 for r in history), "batches above the cap ran as micro-batches"
    evals = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    assert [h["epoch"] for h in evals] == pytest.approx([1, 2, 3, 4, 5, 6, 7, 8]), "eval at real epoch ends"
    assert evals[-1]["eval_accuracy"] > 0.40, evals  # 4 classes: chance 0.25, majority class 0.32
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len({h["deba_batch_size"] for h in logged}) >= 3
    assert any("deba_score" in h and "deba_grad_norm_deviation" in h and "deba_loss_deviation" in h for h in logged)
    assert any("deba_noise_scale_low" in h for h in logged) and all("deba_equivalent_samples" in h for h in logged)
    # the same values reached the reporting callbacks through Trainer.log
    assert any("deba_batch_size" in logs and "deba_score" in logs for logs in cap.logs)
    # evaluate / predict / save_model behave as in a plain Trainer
    metrics = trainer.evaluate()
    assert metrics["eval_accuracy"] == evals[-1]["eval_accuracy"]
    pred = trainer.predict(task[1])
    assert pred.predictions.shape == (len(task[1]), task[3])
    trainer.save_model(str(tmp_path / "saved"))
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert torch.equal(weights["classifier.weight"], trainer.model.classifier.weight.detach().cpu())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lr_follows_samples_and_the_deba_factor(task, tmp_path):
    trainer = make_trainer(task, tmp_path, epochs=3, lr_scheduler_type="linear", warmup_steps=0, eval_strategy="no")
    trainer.train()
    history = trainer.deba_history()
    budget = 3 * len(task[0])
    nominal = -(-budget // PROFILE.initial_batch)
    # linear decay on the budget's clock (goodput: starting-batch-equivalent samples): lr = base *
    # (1 - k / nominal) with k = equivalent samples before the step / initial batch, times DEBA's
    # factor for the size the batch was drawn at
    seen = 0.0
    for rec in history:
        k = seen / PROFILE.initial_batch
        expected = 2e-3 * max(0.0, (nominal - k) / nominal) * rec["lr_factor"]
        assert rec["lr"] == pytest.approx(expected, rel=1e-9), rec["step"]
        seen = rec["equivalent_samples"]
    assert history[-1]["equivalent_samples"] >= budget > history[-2]["equivalent_samples"], "stops at the budget"
    assert history[-1]["samples"] != budget, "the equivalent clock is not the sample count"
    assert len({r["lr_factor"] for r in history}) > 1, "the factor changed with the batch"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_resume_from_checkpoint_continues_exactly(task, tmp_path):
    train_ds = task[0]
    straight_ds = IndexLog(train_ds)
    a = make_trainer(task, tmp_path / "a", epochs=4, train=straight_ds, save_strategy="steps", save_steps=7,
                     eval_strategy="no")
    a.train()
    full = a.deba_history()

    b_ds = IndexLog(train_ds)
    b = make_trainer(task, tmp_path / "b", epochs=4, train=b_ds, save_strategy="steps", save_steps=7, eval_strategy="no")
    b.train()
    ckpt = tmp_path / "b" / "checkpoint-14"
    state = json.loads((ckpt / "deba_state.json").read_text())
    assert state["sampler"]["position"] > 0

    resumed_ds = IndexLog(train_ds)
    c = make_trainer(task, tmp_path / "b", epochs=4, train=resumed_ds, save_strategy="steps", save_steps=7,
                     eval_strategy="no")
    c.train(resume_from_checkpoint=str(ckpt))
    resumed = c.deba_history()
    assert [r["batch_size"] for r in resumed] == [r["batch_size"] for r in full]
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in full], rel=1e-6, abs=1e-7)
    consumed = state["engine"]["samples"]  # samples consumed before the checkpoint (all in the first epochs)
    assert resumed_ds.fetched == straight_ds.fetched[consumed:], "same sample order as the uninterrupted run"
    assert c.deba_samples == a.deba_samples and c.deba_progress == a.deba_progress >= 4 * len(train_ds)


def test_refusals_say_what_to_change(task, tmp_path, monkeypatch):
    train_ds, test_ds, tok, k = task
    cases = [
        ({"auto_find_batch_size": True}, "auto_find_batch_size"),
        ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps"),
        ({"accelerator_config": {"split_batches": True}}, "split_batches"),
        ({"fp16": True}, "fp16"),
    ]
    for overrides, field in cases:
        with pytest.raises(deba.DebaConfigError, match=field) as info:
            make_trainer(task, tmp_path, **overrides)
        assert info.value.remedy

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from (train_ds[i] for i in range(len(train_ds)))

    with pytest.raises(deba.DebaConfigError, match="map-style"):
        make_trainer(task, tmp_path, train=Stream())
    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "is_deepspeed_zero3_enabled", lambda: True)
    with pytest.raises(deba.DebaConfigError, match="ZeRO"):
        make_trainer(task, tmp_path)


def test_resume_from_a_plain_trainer_checkpoint_is_refused(task, tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    trainer = make_trainer(task, tmp_path, epochs=1)
    with pytest.raises(deba.DebaConfigError, match="deba_state.json"):
        trainer.train(resume_from_checkpoint=str(folder))


class WithLoss(torch.nn.Module):
    """A timm image classifier that returns what Trainer expects: a loss and logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = torch.nn.functional.cross_entropy(logits, labels)
        return out


class DictImages(torch.utils.data.Dataset):
    def __init__(self, tensors):
        self.x, self.y = tensors

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_vision_model_on_fashion_mnist(tmp_path):
    import timm

    from deba.app.data import load_dataset

    data = load_dataset("fashion-mnist", data_dir=FASHION_DIR, train_subset=640, test_subset=200, channels=3)
    torch.manual_seed(0)
    model = WithLoss(timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10))
    profile = deba.profile_for(model.net).replace(interval=2, window=3, min_samples=2, warmup=1, cooldown=1)
    assert profile.family == "mobilenet"
    args = TrainingArguments(str(tmp_path), num_train_epochs=2, learning_rate=3e-3, logging_steps=5, save_strategy="no",
                             report_to=[], use_cpu=True, eval_strategy="epoch", disable_tqdm=True, seed=0)
    # The full v2 default: measured throughput (a start-up probe), goodput, equivalent budget.
    trainer = DebaTrainer(model=model, args=args, train_dataset=DictImages(data.train.tensors),
                          eval_dataset=DictImages(data.test.tensors), compute_metrics=accuracy, deba_profile=profile)
    trainer.train()
    history = trainer.deba_history()
    # The run's start-up probe (DebaRun.probe_throughput): the sizes up to the start always, past it
    # only within 1 % of the run's expected length (this run lasts seconds, so it may stop there).
    clock = trainer.deba_run.clock
    assert {4, 8} <= set(clock["probe_sizes"]) and clock["probe_seconds"] > 0 and clock["probe_passes"] > 0
    # The probe timed half the starting batch too: what a measurement split costs, T(8)/T(4), sets how
    # often it measures (here ~1 in 100+ steps: this short run may end before the first measurement).
    assert {4, 8} <= set(trainer.deba_scheduler.throughput.measured())
    # it stopped on its equivalent budget, not on Trainer's step ceiling
    assert trainer.state.global_step < trainer.args.max_steps
    assert trainer.deba_progress >= 2 * 640 or trainer.deba_samples >= 4 * 2 * 640, "the equivalent budget ran out"
    assert "eval_accuracy" in trainer.evaluate()


def test_the_users_training_arguments_are_not_changed(task, tmp_path):
    train_ds, test_ds, tok, k = task
    args = TrainingArguments(str(tmp_path), num_train_epochs=1, learning_rate=2e-3, save_strategy="no", report_to=[],
                             use_cpu=True, eval_strategy="no", disable_tqdm=True, seed=0)
    before = args.to_dict()
    trainer = DebaTrainer(model=tiny_bert(len(tok), k), args=args, train_dataset=train_ds, deba_profile=PROFILE,
                          deba_max_samples=64)
    trainer.train()
    assert trainer.deba_samples >= 64 and trainer.args is not args
    assert trainer.args.ignore_data_skip and trainer.args.max_steps > 0, "DebaTrainer changed its own copy"
    assert args.to_dict() == before, "the TrainingArguments object the user passed is untouched"


# A tiny torch model through Trainer (fast): the run's non-finite abort, log names, options, a second train().

SMALL_TABLE = {16: 1000.0, 32: 1005.0, 48: 1500.0, 64: 2000.0, 128: 4000.0, 256: 6000.0}


class TinyNet(torch.nn.Module):
    """Linear layers only (DEBA reads per-sample norms); ``poisoned`` makes every loss NaN."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        self.poisoned = False

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits, labels)
            out["loss"] = loss * float("nan") if self.poisoned else loss
        return out


class TinyData(torch.utils.data.Dataset):
    def __init__(self, n=320):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0.5).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class PoisonAfter(TrainerCallback):
    """From optimizer step ``n`` on, the model's loss is NaN."""

    def __init__(self, model, n):
        self.model, self.n = model, n

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.n:
            self.model.poisoned = True


def tiny_trainer(out, *, model=None, epochs=2, callbacks=(), **deba):
    if "deba_options" not in deba:
        deba = {"deba_profile": "mlp", "deba_throughput": SMALL_TABLE, **deba}
    args = TrainingArguments(str(out), num_train_epochs=epochs, learning_rate=0.05, logging_steps=1, save_strategy="no",
                             report_to=[], use_cpu=True, eval_strategy="no", disable_tqdm=True, seed=0,
                             per_device_train_batch_size=32, lr_scheduler_type="constant")
    return DebaTrainer(model=model if model is not None else TinyNet(), args=args, train_dataset=TinyData(),
                       callbacks=list(callbacks), **deba)


@pytest.mark.timeout(120)
def test_a_loss_gone_nan_stops_the_run(tmp_path):
    model = TinyNet()
    trainer = tiny_trainer(tmp_path, model=model, callbacks=[PoisonAfter(model, 2)])
    abort_after = 3 * trainer.deba_profile.nonfinite_patience  # the default, as in deba.fit
    with pytest.raises(deba.NonFiniteTraining, match="consecutive non-finite"):
        trainer.train()
    history = trainer.deba_history()
    assert len(history) == 2 + abort_after, "the step that stops the run is recorded too"
    assert trainer.state.global_step == 2 + abort_after - 1, "raised from the step, before its optimizer step"
    # the keyword, validated under its own name
    model = TinyNet()
    trainer = tiny_trainer(tmp_path / "b", model=model, callbacks=[PoisonAfter(model, 1)], deba_nonfinite_abort=2)
    with pytest.raises(deba.NonFiniteTraining):
        trainer.train()
    assert len(trainer.deba_history()) == 3
    for bad in (0, 1.5, True):
        with pytest.raises(deba.DebaConfigError, match="deba_nonfinite_abort"):
            tiny_trainer(tmp_path, deba_nonfinite_abort=bad)


@pytest.mark.timeout(120)
def test_logs_are_the_runs_values_under_deba_names(tmp_path):
    cap = Capture()
    trainer = tiny_trainer(tmp_path, callbacks=[cap])  # goodput, equivalent budget: the noise is measured
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all("deba_batch_size" in h and "deba_equivalent_samples" in h for h in logged)
    assert any("deba_noise_scale" in h and "deba_noise_scale_low" in h for h in logged)
    # the names DebaRun.log_values gives every front end (Lightning: deba/<name>), plus the metrics
    names = {"batch_size", "samples", "equivalent_samples", "lr_factor", "score", "noise_scale", "noise_scale_low"}
    seen = {k[len("deba_"):] for h in logged for k in h if k.startswith("deba_")}
    assert names <= seen, names - seen
    metrics = set(trainer.deba_scheduler.metrics())
    assert metrics and metrics <= seen, "the strategy's metrics as deba_<metric>"
    assert any("deba_noise_scale" in logs for logs in cap.logs), "through Trainer.log to the callbacks"


@pytest.mark.timeout(120)
def test_deba_options_instead_of_the_keywords(tmp_path):
    opts = deba.RunOptions(profile="mlp", throughput=SMALL_TABLE, budget="samples", max_micro_batch=24)
    trainer = tiny_trainer(tmp_path, deba_options=opts)
    assert trainer.deba_options is opts and trainer.deba_max_micro_batch == 24
    trainer.train()
    assert not trainer.deba_equivalent and trainer.deba_samples == 2 * 320, "strictly 2 epochs of samples"
    assert any(r["micro_batches"] > 1 for r in trainer.deba_history()), "the options' memory cap"
    with pytest.raises(deba.DebaConfigError, match="deba_budget") as info:
        DebaTrainer(model=TinyNet(), args=TrainingArguments(str(tmp_path), use_cpu=True, report_to=[]),
                    train_dataset=TinyData(), deba_options=opts, deba_budget="equivalent")
    assert "deba_options" in str(info.value)
    with pytest.raises(deba.DebaConfigError, match="deba_options"):
        DebaTrainer(model=TinyNet(), args=TrainingArguments(str(tmp_path), use_cpu=True, report_to=[]),
                    train_dataset=TinyData(), deba_options={"budget": "samples"})
    with pytest.raises(deba.DebaConfigError, match="deba_budget"):
        tiny_trainer(tmp_path, deba_budget="steps")


@pytest.mark.timeout(120)
def test_a_second_train_is_a_fresh_run_on_the_same_optimizer(tmp_path):
    trainer = tiny_trainer(tmp_path, deba_budget="samples")
    first_scheduler = trainer.deba_scheduler
    trainer.train()
    first = trainer.deba_history()
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    hooks = len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)
    trainer.train()
    second = trainer.deba_history()
    assert trainer.deba_scheduler is not first_scheduler and trainer.deba_samples == 2 * 320
    assert second[0]["batch_size"] == 32 and second[0]["step"] == first[0]["step"], "from the user's batch again"
    for rec in second:  # one LR factor on the constant schedule: the first run's hooks are gone
        assert rec["lr"] == pytest.approx(0.05 * rec["lr_factor"], rel=1e-9)
    assert len({r["lr_factor"] for r in second}) > 1
    assert len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks) == hooks
