"""Adapter parity: every front end takes deba.fit's batch trajectory, losses, budget end, state and
resume on the same case (deba.testing.AdapterConformance)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
import torch

import deba
from deba.testing import AdapterConformance, AdapterRun, ConformanceCase, ControllerFrontEnd, Crash, FitFrontEnd


class TestFit(FitFrontEnd):
    """The reference against itself: its resume must be exact too."""


class TestController(ControllerFrontEnd):
    """A manual-mode loop: the user's loader over DEBA's sampler, ``ctl.step`` runs forward/backward."""


def _history_steps(path, after: int = 0) -> list[tuple[int, float]]:
    from deba.training.history import read_history

    return [(r["batch_size"], r["loss"]) for r in read_history(path) if r.get("kind") == "step" and r["step"] > after]


class _LightningFrontEnd(AdapterConformance):
    """``lightning.Trainer`` with ``DebaCallback``; ``mixin`` trains a ``DebaModule`` instead.
    Lightning's fetcher draws one batch ahead (to know the last one)."""

    mixin = False
    loader_prefetch = 1
    pytestmark = pytest.mark.slow  # a Trainer per test: in `make test`, not in `make test-fast`

    def train(self, case: ConformanceCase, workdir: Any, *, crash_after: int | None = None,
              resume: bool = False) -> AdapterRun:
        import glob

        L = pytest.importorskip("lightning")
        from deba.adapters.lightning import DebaCallback, DebaModule, deba_dataloader

        data = torch.utils.data.TensorDataset(case.inputs, case.targets)

        class Net(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = case.model()

            def deba_loss(self, batch):
                return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

            def training_step(self, batch, batch_idx):
                return self.deba_loss(batch)

            def configure_optimizers(self):
                return case.optimizer(self.parameters())

            def train_dataloader(self):
                return deba_dataloader(data, case.batch_size, seed=case.seed)

        class MixinNet(DebaModule, Net):
            def deba_loss(self, batch):
                return Net.deba_loss(self, batch)

        class Kill(L.Callback):
            def on_train_batch_start(self, trainer, *args):
                if crash_after is not None and cb.engine.steps >= crash_after:
                    raise Crash("killed")

        cb = DebaCallback(options=case.options(), epochs=case.epochs, history_dir=str(workdir), seed=case.seed)
        callbacks = [cb, Kill()]
        if crash_after is not None:
            callbacks.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=str(workdir / "ck"), save_top_k=-1,
                                                                 every_n_train_steps=crash_after))
        trainer = L.Trainer(max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=crash_after is not None,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
        ckpt = sorted(glob.glob(str(workdir / "ck" / "*.ckpt")))[0] if resume else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(MixinNet() if self.mixin else Net(), ckpt_path=ckpt)
        after = case.crash_after if resume else 0
        return AdapterRun(_history_steps(workdir / "deba_history.jsonl", after), json.loads(json.dumps(cb.state_dict())))


class TestLightningCallback(_LightningFrontEnd):
    mixin = False


class TestLightningModule(_LightningFrontEnd):
    mixin = True


class TestHuggingFaceTrainer(AdapterConformance):
    """``DebaTrainer``; accelerate's loader draws one batch ahead (to know the last one)."""

    loader_prefetch = 1
    pytestmark = pytest.mark.slow

    def train(self, case: ConformanceCase, workdir: Any, *, crash_after: int | None = None,
              resume: bool = False) -> AdapterRun:
        pytest.importorskip("transformers")
        from transformers import TrainerCallback, TrainingArguments

        from deba.adapters.huggingface import DebaTrainer

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = case.model()

            def forward(self, x, labels):
                return {"loss": torch.nn.functional.cross_entropy(self.net(x), labels)}

        class Rows(torch.utils.data.Dataset):
            def __len__(self):
                return len(case.targets)

            def __getitem__(self, i):
                return {"x": case.inputs[i], "labels": case.targets[i]}

        class Kill(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if crash_after is not None and state.global_step >= crash_after:
                    raise Crash("killed")

        model = Wrapped()
        args = TrainingArguments(str(workdir), per_device_train_batch_size=case.batch_size, num_train_epochs=case.epochs,
                                 lr_scheduler_type="constant", max_grad_norm=0.0, seed=case.seed, report_to=[],
                                 logging_strategy="no", save_strategy="steps" if crash_after else "no",
                                 save_steps=crash_after or 500, disable_tqdm=True, use_cpu=True,
                                 remove_unused_columns=False)
        trainer = DebaTrainer(model=model, args=args, train_dataset=Rows(), optimizers=(case.optimizer(model.parameters()), None),
                              deba_options=case.options(), callbacks=[Kill()])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.train(resume_from_checkpoint=str(workdir / f"checkpoint-{case.crash_after}") if resume else None)
        after = case.crash_after if resume else 0
        return AdapterRun(_history_steps(workdir / "deba_history.jsonl", after),
                          json.loads(json.dumps(trainer.deba_run.state_document())))


@pytest.mark.parametrize("ahead", [0, 1])
def test_a_loader_drawing_ahead_sees_each_decision_that_many_batches_later(tmp_path, ahead):
    # What the prefetching reference claims: within an epoch, step j trains the size decided at
    # step j - 1 - ahead (the first batches of an epoch are drawn after the last decision before it).
    driver = ControllerFrontEnd()
    driver.loader_prefetch = ahead
    run = driver.train(ConformanceCase.default(), tmp_path)
    sizes = [b for b, _ in run.steps]
    decided = [d for d, _ in run.decided]
    epochs = [e for _, e in run.decided]
    assert len(set(sizes)) > 1, "the case must change the batch size"
    checked = 0
    for j in range(1, len(sizes) - 1):
        start = epochs.index(epochs[j])
        k = j - start  # index of step j in its epoch
        last_of_epoch = j + 1 < len(epochs) and epochs[j + 1] != epochs[j]
        if last_of_epoch or j - 1 - min(ahead, k) < 0:
            continue  # an epoch's tail has the size that is left
        assert sizes[j] == decided[j - 1 - min(ahead, k)], f"step {j + 1}: trained {sizes[j]}"
        checked += 1
    assert checked > len(sizes) // 2
