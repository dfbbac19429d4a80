"""HuggingFace ``Trainer`` with an adaptive, architecture-aware batch size: :class:`DebaTrainer`.

How it fits into ``Trainer.train()``:

* **Data**: the training DataLoader gets DEBA's batch sampler, wrapped so it has neither a length
  nor an integer ``batch_size`` (accelerate's ``BatchSamplerShard`` would read one once and drop
  batches of any other size) nor ``set_epoch`` (Trainer's epoch counter restarts at 0 on resume;
  the sampler keeps its own). Trainer therefore runs "by steps"; DebaTrainer sets the step ceiling
  itself and stops at the sample budget (``num_train_epochs`` x dataset size, or
  ``deba_max_samples``). An epoch ends when the sampler's epoch ends, so ``eval_strategy="epoch"``
  and ``save_strategy="epoch"`` mean real epochs; ``state.epoch`` is samples seen / dataset size.
* **Step**: ``training_step`` runs the global batch as micro-batches of at most
  ``deba_max_micro_batch`` samples (``no_sync`` on all but the last under DDP), probes the
  gradient, lets the scheduler decide and resizes the sampler. ``gradient_accumulation_steps``
  stays 1 and is never changed. A non-finite step clears the gradients, so the optimizer step that
  follows changes nothing.
* **Learning rate**: the Trainer's schedule (linear, cosine, ... with warm-up) is re-based on
  samples: it is evaluated at ``samples_seen / initial_batch`` "equivalent fixed-batch steps" of a
  nominal ``budget / initial_batch`` steps, and DEBA's LR factor multiplies it at each optimizer
  step (optimizer hooks; the schedule keeps owning ``param_group["lr"]``).
* **Logs**: ``deba_batch_size``, ``deba_score``, ``deba_samples``, ``deba_lr_factor`` and
  ``deba_<metric>`` are added to every training log, so they land in ``state.log_history`` and in
  every reporting integration (TensorBoard, W&B...) through ``Trainer.log``. Every step is also
  written to ``output_dir/deba_history.jsonl``.
* **Checkpoints**: each checkpoint folder gets ``deba_state.json`` (scheduler, sampler position,
  counters); ``train(resume_from_checkpoint=...)`` continues with the same batch-size trajectory and
  sample order. Trainer's own batch skipping is turned off (``ignore_data_skip``): the sampler
  knows its place.

``transformers`` and ``accelerate`` are the ``deba[hf]`` extra; importing this module without them
raises an ImportError naming the extra. Only :class:`DebaTrainer` can do this: a ``TrainerCallback``
cannot replace the DataLoader's sampler or run micro-batches inside the step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

try:
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "deba.adapters.huggingface needs transformers and accelerate: pip install 'deba[hf]'"
    ) from exc

import torch

from deba.batching import batch_len, run_micro_batches
from deba.checkpoint import write_json_atomic
from deba.decision import Decision
from deba.errors import DebaConfigError
from deba.history import HistoryWriter, read_history, step_record
from deba.lr import LRCoupler
from deba.observation import Observation
from deba.probe import GradientProbe
from deba.profile import ArchitectureProfile
from deba.sampler import AdaptiveBatchSampler
from deba.scheduler import BatchScheduler
from deba.scoring import ScoringStrategy

from .torch import resolve_profile

__all__ = ["DebaTrainer", "SampleClockLR", "TrainerBatchSampler", "SUPPORTED_TRANSFORMERS"]

#: The transformers versions this adapter is tested against (see docs/huggingface.md).
SUPPORTED_TRANSFORMERS = ">=5.0,<6"
STATE_FILE = "deba_state.json"
STATE_FORMAT = "deba-hf-checkpoint"


class TrainerBatchSampler:
    """DEBA's sampler as the Trainer's DataLoader sees it: iterable only.

    No ``__len__`` (Trainer runs by steps), no integer ``batch_size`` (accelerate would freeze it),
    no ``set_epoch`` (Trainer's epoch numbers restart on resume; the sampler keeps its own).
    """

    def __init__(self, sampler: AdaptiveBatchSampler) -> None:
        self.deba_sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.deba_sampler)


class SampleClockLR(torch.optim.lr_scheduler.LambdaLR):
    """A Trainer LR schedule evaluated on a sample clock instead of the optimizer-step count.

    ``clock()`` returns "equivalent fixed-batch steps" (samples seen / initial batch), so the
    schedule ends when the sample budget ends whatever the batch sizes were.
    """

    def __init__(self, inner: torch.optim.lr_scheduler.LambdaLR, clock) -> None:
        self._clock = clock
        super().__init__(inner.optimizer, inner.lr_lambdas, last_epoch=-1)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        k = self._clock()
        return [base * lmbda(k) for base, lmbda in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self) -> dict[str, Any]:
        # The clock is a live object (DEBA's sample counter, saved in deba_state.json), not state.
        state = super().state_dict()
        state.pop("_clock", None)
        return state


class _DebaControl(TrainerCallback):
    """Keeps Trainer's epoch and stop flags in line with DEBA's sample accounting."""

    def __init__(self, trainer: "DebaTrainer") -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        t._deba_flush_record()
        if t.accelerator.num_processes > 1:  # broadcast_module sends nothing without buffers
            from .distributed import broadcast_module

            broadcast_module(t.model, buffers_only=True)  # rank 0's BatchNorm statistics, as DDP does
        if t._deba_sampler is not None:
            state.epoch = t.deba_samples / t._deba_sampler.num_samples
        if t._deba_budget is not None and t.deba_samples >= t._deba_budget:
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        t = self.trainer
        s = t._deba_sampler
        if s is not None and s.position >= s.num_samples:
            decision = t.deba_scheduler.end_epoch()
            s.batch_size = decision.batch_size
            t._deba_decision = decision
        return control


class _DebaProgress(TrainerCallback):
    """A progress bar in samples (Trainer's own counts steps against DEBA's step ceiling)."""

    def __init__(self, trainer: "DebaTrainer") -> None:
        self.trainer = trainer
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.trainer._deba_budget, unit="sample", dynamic_ncols=True, leave=False,
                            initial=self.trainer.deba_samples)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            t = self.trainer
            d = t._deba_decision
            self.bar.set_postfix(bs=t.deba_scheduler.batch_size, score="-" if d is None or d.score is None else f"{d.score:.2f}",
                                 refresh=False)
            self.bar.update(t.deba_samples - self.bar.n)  # rate-limited redraw, as in deba.fit

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class DebaTrainer(Trainer):
    """``transformers.Trainer`` whose batch size DEBA adapts while it trains.

    Args:
        *args, **kwargs: everything ``Trainer`` takes.
        deba_profile: a profile, a name, a file, or ``"auto"`` (detected from the model).
        deba_strategy: a scoring strategy instance or registered name.
        deba_max_micro_batch: samples per forward/backward (default: the profile's cap, else the
            whole batch).
        deba_max_samples: stop after this many samples instead of ``num_train_epochs`` epochs.
        deba_strategy_options: keyword options for a strategy given by name.

    Example (not run here: it trains a model)::

        trainer = DebaTrainer(model=model, args=TrainingArguments("out", num_train_epochs=3),
                              train_dataset=ds, deba_profile="auto", deba_strategy="equal-weight")
        trainer.train()
        trainer.train(resume_from_checkpoint=True)
    """

    def __init__(
        self,
        *args: Any,
        deba_profile: ArchitectureProfile | str = "auto",
        deba_strategy: ScoringStrategy | str = "equal-weight",
        deba_max_micro_batch: int | None = None,
        deba_max_samples: int | None = None,
        deba_strategy_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Refuse what cannot work before Trainer's own checks give less helpful errors.
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        train_dataset = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        self._deba_refuse_incompatible(training_args, train_dataset, deba_max_micro_batch, deba_max_samples)
        super().__init__(*args, **kwargs)
        self.deba_profile = resolve_profile(deba_profile, self.model)
        self.deba_scheduler = BatchScheduler(self.deba_profile, strategy=deba_strategy, strategy_options=deba_strategy_options)
        self.deba_max_micro_batch = deba_max_micro_batch or self.deba_profile.max_micro_batch
        self.deba_max_samples = deba_max_samples
        self.deba_samples = 0
        self.deba_oom_events: list[dict[str, int]] = []
        self._deba_user_max_steps = self.args.max_steps
        self._deba_sampler: AdaptiveBatchSampler | None = None
        self._deba_probe: GradientProbe | None = None
        self._deba_coupler: LRCoupler | None = None
        self._deba_ctx: Any = None  # deba.adapters.distributed context, built at the first multi-process step
        self._deba_budget: int | None = None
        self._deba_decision: Decision | None = None
        self._deba_resume_dir: str | None = None
        self._deba_history: HistoryWriter | None = None
        self._deba_pending_record: dict[str, Any] | None = None
        # The sampler knows where it is; Trainer must not skip batches itself on resume.
        self.args.ignore_data_skip = True
        self.add_callback(_DebaControl(self))
        if not self.args.disable_tqdm:
            from transformers.trainer_callback import ProgressCallback

            self.remove_callback(ProgressCallback)
            self.add_callback(_DebaProgress(self))

    # Refusals ----------------------------------------------------------------------------------

    @staticmethod
    def _deba_refuse_incompatible(a: Any, ds: Any, max_micro_batch: Any, max_samples: Any) -> None:
        if a is None:
            from transformers import TrainingArguments

            a = TrainingArguments("tmp_trainer")
        if a.auto_find_batch_size:
            raise DebaConfigError.single(
                "auto_find_batch_size", True, "cannot be used with DebaTrainer: DEBA sets the batch size itself",
                remedy="Set auto_find_batch_size=False; bound memory with deba_max_micro_batch (out-of-memory steps "
                       "are re-run in smaller micro-batches automatically).",
            )
        acc = getattr(a, "accelerator_config", None)
        if acc is not None and getattr(acc, "split_batches", False):
            raise DebaConfigError.single(
                "accelerator_config.split_batches", True, "cannot be used with DebaTrainer: DEBA shards the global batch itself",
                remedy="Set accelerator_config={'split_batches': False}.",
            )
        try:
            from transformers.integrations import is_deepspeed_zero3_enabled

            zero3 = is_deepspeed_zero3_enabled()
        except ImportError:  # pragma: no cover
            zero3 = False
        if zero3:
            raise DebaConfigError.single(
                "deepspeed", "ZeRO stage 3", "cannot be used with DebaTrainer: parameters are partitioned, so DEBA's "
                "gradient probe cannot read whole gradients",
                remedy="Use ZeRO stage 1 or 2, or DDP/FSDP without DeepSpeed ZeRO-3.",
            )
        if a.gradient_accumulation_steps != 1:
            raise DebaConfigError.single(
                "gradient_accumulation_steps", a.gradient_accumulation_steps, "must be 1 with DebaTrainer: the global "
                "batch is split into micro-batches inside the training step",
                remedy="Set gradient_accumulation_steps=1 and bound memory with deba_max_micro_batch.",
            )
        if getattr(a, "train_sampling_strategy", "random") not in ("random", None):
            raise DebaConfigError.single(
                "train_sampling_strategy", a.train_sampling_strategy, "must be 'random' with DebaTrainer (DEBA's sampler "
                "replaces Trainer's)",
            )
        if isinstance(ds, torch.utils.data.IterableDataset) or (ds is not None and not hasattr(ds, "__len__")):
            raise DebaConfigError.single(
                "train_dataset", type(ds).__name__, "must be a map-style dataset with a length: DEBA's sampler needs "
                "indices to give every sample once per epoch while the batch size changes",
                remedy="Use a map-style dataset (datasets.Dataset, a torch Dataset with __len__).",
            )
        for name, value in (("deba_max_micro_batch", max_micro_batch), ("deba_max_samples", max_samples)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DebaConfigError.single(name, value, "must be an int >= 1 or None")
        if max_samples is None and a.max_steps <= 0 and not a.num_train_epochs > 0:
            raise DebaConfigError.single("num_train_epochs", a.num_train_epochs, "must be > 0 (or set deba_max_samples)")

    # Train and resume ----------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if self.train_dataset is None:
            raise DebaConfigError.single("train_dataset", None, "is required to train")
        n = len(self.train_dataset)
        if self.deba_max_samples is not None:
            self._deba_budget = self.deba_max_samples
        elif self._deba_user_max_steps > 0:
            self._deba_budget = None  # the user asked for optimizer steps: Trainer stops at max_steps
        else:
            self._deba_budget = int(math.ceil(self.args.num_train_epochs * n))
        if self._deba_user_max_steps <= 0:
            # A ceiling Trainer needs for a length-less loader; DEBA stops at the sample budget first.
            self.args.max_steps = -(-self._deba_budget // self.deba_profile.min_batch) + 1
        if resume_from_checkpoint is True:
            found = get_last_checkpoint(self.args.output_dir)
            if found is None:
                raise DebaConfigError.single("resume_from_checkpoint", True, f"found no checkpoint in {self.args.output_dir}")
            resume_from_checkpoint = found
        self._deba_resume_dir = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
        if self._deba_resume_dir is not None and not (Path(self._deba_resume_dir) / STATE_FILE).exists():
            raise DebaConfigError.single(
                "resume_from_checkpoint", self._deba_resume_dir, f"holds no {STATE_FILE}: it was not written by DebaTrainer",
                remedy="Resume from a checkpoint saved by DebaTrainer, or start a new run.",
            )
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            if self._deba_history is not None:
                self._deba_history.close()
                self._deba_history = None

    def get_train_dataloader(self):
        if self.train_dataset is None:
            raise DebaConfigError.single("train_dataset", None, "is required to train")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        if world > 1 and self.deba_profile.granularity % world:
            raise DebaConfigError.single(
                "deba_profile.granularity", self.deba_profile.granularity,
                f"must be a multiple of the number of processes ({world}) for equal per-rank shards",
            )
        sampler = AdaptiveBatchSampler(
            self.train_dataset, self.deba_scheduler.batch_size, shuffle=True, seed=seed,
            drop_last=self.args.dataloader_drop_last, num_replicas=world, rank=rank,
            min_last_batch=self.deba_profile.granularity,
        )
        self._deba_sampler = sampler
        # Every process records its own trajectory (agreement between ranks can be checked).
        self._deba_history = HistoryWriter(self.args.output_dir, tensorboard=False,
                                           filename="deba_history.jsonl" if rank == 0 else f"deba_history-rank{rank}.jsonl")
        if self._deba_resume_dir is not None:
            self._deba_load_state(self._deba_resume_dir)
        else:
            self.deba_samples = 0
            if self._deba_history.path is not None:
                self._deba_history.truncate_to(0)
        dataset = self.train_dataset
        try:
            import datasets

            if isinstance(dataset, datasets.Dataset):
                dataset = self._remove_unused_columns(dataset, description="training")
                collator = self.data_collator
            else:
                collator = self._get_collator_with_removed_columns(self.data_collator, description="training")
        except ImportError:
            collator = self._get_collator_with_removed_columns(self.data_collator, description="training")
        params: dict[str, Any] = {
            "batch_sampler": TrainerBatchSampler(sampler),
            "collate_fn": collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
            "persistent_workers": self.args.dataloader_persistent_workers,
            # Worker seeds come from this generator, never from the global RNG (exact resume).
            "generator": torch.Generator().manual_seed(seed),
        }
        if self.args.dataloader_num_workers > 0:
            params["prefetch_factor"] = self.args.dataloader_prefetch_factor
        loader = self.accelerator.prepare(torch.utils.data.DataLoader(dataset, **params))
        # DEBA's sampler already gives each process its shard of the global batch; accelerate's
        # BatchSamplerShard would deal whole batches round-robin on top: make it a pass-through.
        wrapper = getattr(loader, "batch_sampler", None)
        if wrapper is not None and getattr(wrapper, "batch_sampler", None) is params["batch_sampler"]:
            wrapper.num_processes = 1
            wrapper.process_index = 0
        return loader

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples and self._deba_sampler is not None:
            # DEBA's epoch is over: end Trainer's epoch here instead of spinning to its step ceiling.
            self.control.should_epoch_stop = True
        return batch_samples, num_items

    # The step ----------------------------------------------------------------------------------

    def _deba_torch_optimizer(self) -> torch.optim.Optimizer:
        # accelerate's AcceleratedOptimizer subclasses Optimizer but wraps the real one in .optimizer
        opt = self.optimizer
        while isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer) and opt.optimizer is not opt:
            opt = opt.optimizer
        return opt

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        if self._deba_probe is None:
            self._deba_probe = GradientProbe(self.model, sketch_size=self.deba_profile.sketch_size, seed=self.args.seed)
        if self._deba_coupler is None:
            self._deba_coupler = LRCoupler(self._deba_torch_optimizer(), self.deba_scheduler.lr_factor)
        inputs = self._prepare_inputs(inputs)
        n = batch_len(inputs)
        intended = self.deba_scheduler.batch_size
        if self.accelerator.num_processes > 1:
            return self._deba_distributed_step(model, inputs, n, intended)

        def forward_loss(micro: dict[str, Any]) -> torch.Tensor:
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, micro)
            return loss.mean() if self.args.n_gpu > 1 else loss

        result = run_micro_batches(
            model, inputs, cap=self.deba_max_micro_batch, forward_loss=forward_loss,
            backward=self.accelerator.backward, sketch=self._deba_probe.sketch,
            zero_grad=lambda: model.zero_grad(set_to_none=True),
        )
        if result.oom_events:
            self.deba_max_micro_batch = result.cap
            self.deba_oom_events.extend(result.oom_events)
        snap = self._deba_probe.capture()
        micro = result.micro_sketches if len(result.micro_sketches) >= 2 else None
        obs = Observation(
            loss=result.loss, batch_size=n, grad_norm=snap.norm, grad_finite=snap.finite, grad_sketch=snap.sketch,
            micro_sketches=micro, micro_sizes=result.sketch_sizes if micro else None,
            step=self.state.global_step + 1, samples=self.deba_samples + n,
        )
        # The optimizer step after this one uses the factor of the size this batch was drawn at.
        self._deba_coupler.factor = self.deba_profile.lr_factor(intended)
        decision = self.deba_scheduler.observe(obs)
        if not obs.is_finite:
            # Clear the gradients: Trainer's optimizer step then has nothing to apply.
            model.zero_grad(set_to_none=True)
        self._deba_decision = decision
        sampler = self._deba_sampler
        if sampler is not None:
            sampler.batch_size = decision.batch_size
            sampler.mark_consumed(n)
        self.deba_samples += n
        self._deba_record(obs, decision, result)
        loss = torch.tensor(result.loss, device=self.args.device)
        return loss

    def _deba_distributed_step(self, model: torch.nn.Module, inputs: dict[str, Any], n_local: int,
                               intended: int) -> torch.Tensor:
        """All micro-batches with local gradients, then one reduction and one decision from rank 0."""
        from .distributed import allreduce_gradients, context

        if self._deba_ctx is None:  # the process group is fixed for the run: query it once
            self._deba_ctx = context(self.args.device)
        ctx = self._deba_ctx

        def forward_loss(micro: dict[str, Any]) -> torch.Tensor:
            with self.compute_loss_context_manager():
                return self.compute_loss(model, micro)

        with self.accelerator.no_sync(model):
            result = run_micro_batches(model, inputs, cap=self.deba_max_micro_batch, forward_loss=forward_loss,
                                       backward=self.accelerator.backward, sketch=self._deba_probe.sketch,
                                       zero_grad=lambda: model.zero_grad(set_to_none=True))
        if result.micro_sketches:
            sketches, sizes = result.micro_sketches, result.sketch_sizes
        else:
            sketches, sizes = [self._deba_probe.sketch().double().cpu().numpy()], [n_local]
        loss_sum, n_total = ctx.sum([result.loss * n_local, float(n_local)])
        allreduce_gradients(self._deba_probe.params, ctx.world, weight=n_local, total=n_total)
        all_s, all_n = ctx.gather_sketches(sketches, sizes, self._deba_probe.sketch_size)
        snap = self._deba_probe.capture()
        n = int(round(n_total))
        obs = Observation(
            loss=loss_sum / n_total, batch_size=n, grad_norm=snap.norm, grad_finite=snap.finite, grad_sketch=snap.sketch,
            micro_sketches=all_s if len(all_s) >= 2 else None, micro_sizes=all_n if len(all_s) >= 2 else None,
            step=self.state.global_step + 1, samples=self.deba_samples + n,
        )
        self._deba_coupler.factor = self.deba_profile.lr_factor(intended)
        decision = self.deba_scheduler.observe(obs)
        agreed = ctx.broadcast_decision(decision)
        if agreed.batch_size != decision.batch_size:
            self.deba_scheduler.batch_size = agreed.batch_size
        if not obs.is_finite:
            model.zero_grad(set_to_none=True)
        self._deba_decision = agreed
        self._deba_sampler.batch_size = agreed.batch_size
        self._deba_sampler.mark_consumed(n)
        self.deba_samples += n
        self._deba_record(obs, agreed, result)
        return torch.tensor(loss_sum / n_total, device=self.args.device)

    def _deba_flush_record(self) -> None:
        """Write the step's record once the optimizer step ran (so it holds the LR really used)."""
        rec, self._deba_pending_record = self._deba_pending_record, None
        if rec is None or self._deba_history is None:
            return
        if rec["finite"] and self._deba_coupler is not None:
            rec["lr"] = self._deba_coupler.last_used[0]
        self._deba_history.write(rec)

    def _deba_record(self, obs: Observation, decision: Decision, result: Any) -> None:
        # Written at on_step_end, once the optimizer step ran and the LR it used is known.
        self._deba_pending_record = step_record(
            self.state.global_step + 1, None if self._deba_sampler is None else self._deba_sampler.epoch,
            self.deba_samples, obs, decision, result, lr=None,
            lr_factor=self._deba_coupler.factor if self._deba_coupler else None,
        )

    # LR schedule on samples ------------------------------------------------------------------------

    def _deba_clock(self) -> float:
        return self.deba_samples / self.deba_profile.initial_batch

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        budget = self._deba_budget
        nominal = num_training_steps if budget is None else max(1, math.ceil(budget / self.deba_profile.initial_batch))
        created = self.lr_scheduler is None
        sched = super().create_scheduler(nominal, optimizer)
        if created and isinstance(sched, torch.optim.lr_scheduler.LambdaLR) and not isinstance(sched, SampleClockLR):
            self.lr_scheduler = SampleClockLR(sched, self._deba_clock)
        return self.lr_scheduler

    # Logs --------------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self.is_in_train and self._deba_decision is not None:
            d = self._deba_decision
            logs["deba_batch_size"] = self.deba_scheduler.batch_size
            logs["deba_samples"] = self.deba_samples
            logs["deba_lr_factor"] = self.deba_scheduler.lr_factor
            if d.score is not None:
                logs["deba_score"] = d.score
            for name, value in (d.metrics or self.deba_scheduler.metrics()).items():
                logs[f"deba_{name}"] = value
        super().log(logs, *args, **kwargs)

    # Checkpoints ---------------------------------------------------------------------------------

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if not self.args.should_save:
            return
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        state = {
            "format": STATE_FORMAT,
            "version": 1,
            "profile": self.deba_profile.to_dict(),
            "scheduler": self.deba_scheduler.state_dict(),
            "sampler": None if self._deba_sampler is None else self._deba_sampler.state_dict(),
            "samples": self.deba_samples,
            "history_records": 0 if self._deba_history is None else len(self._deba_history.records),
            "max_micro_batch": self.deba_max_micro_batch,
        }
        write_json_atomic(folder / STATE_FILE, state)

    def _deba_load_state(self, folder: str) -> None:
        path = Path(folder) / STATE_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DebaConfigError.single("resume_from_checkpoint", str(path), f"cannot be read ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise DebaConfigError.single("resume_from_checkpoint", str(path), "is not a DebaTrainer state file")
        if state.get("profile") != self.deba_profile.to_dict():
            raise DebaConfigError.single(
                "deba_profile", self.deba_profile.name, f"must be the profile the checkpoint was saved with "
                f"({(state.get('profile') or {}).get('name')!r}) to resume",
            )
        self.deba_scheduler.load_state_dict(state["scheduler"])
        if state.get("sampler") is not None and self._deba_sampler is not None:
            self._deba_sampler.load_state_dict(state["sampler"])
        self.deba_samples = int(state["samples"])
        self.deba_max_micro_batch = state.get("max_micro_batch", self.deba_max_micro_batch)
        self._deba_decision = self.deba_scheduler.last_decision
        if self._deba_history is not None and self._deba_history.path is not None:
            self._deba_history.truncate_to(int(state.get("history_records", 0)))

    def deba_history(self) -> list[dict[str, Any]]:
        """Every step of the run (from ``output_dir/deba_history.jsonl``, resumes included)."""
        path = Path(self.args.output_dir) / "deba_history.jsonl"
        return read_history(path) if path.exists() else []
