"""HuggingFace ``Trainer`` with an adaptive, architecture-aware batch size: :class:`DebaTrainer`.

How it fits into ``Trainer.train()``:

* **Data**: the training DataLoader gets DEBA's batch sampler, wrapped so it has neither a length
  nor an integer ``batch_size`` (accelerate's ``BatchSamplerShard`` would read one once and drop
  batches of any other size) nor ``set_epoch`` (Trainer's epoch counter restarts at 0 on resume;
  the sampler keeps its own). Trainer therefore runs "by steps"; DebaTrainer sets the step ceiling
  itself and stops at the budget (``num_train_epochs`` x dataset size, or ``deba_max_samples``),
  counted in starting-batch-equivalent samples for the goodput policy (``deba_budget``), as in
  ``deba.fit``; the profile's timing is then shares of that budget. An epoch ends when the sampler's epoch ends, so ``eval_strategy="epoch"``
  and ``save_strategy="epoch"`` mean real epochs; ``state.epoch`` is samples seen / dataset size.
* **Step**: ``training_step`` hands the batch to the step engine: micro-batches of at most
  ``deba_max_micro_batch`` samples with gradients kept local under DDP, one weighted reduction,
  the probe, the decision (rank 0's on every rank) and the sampler resize. ``gradient_accumulation_steps``
  stays 1 and is never changed. A non-finite step clears the gradients, so the optimizer step that
  follows changes nothing.
* **Learning rate**: the Trainer's schedule (linear, cosine, ... with warm-up) is re-based on
  samples: it is evaluated at ``samples_seen / initial_batch`` "equivalent fixed-batch steps" of a
  nominal ``budget / initial_batch`` steps, and DEBA's LR factor multiplies it at each optimizer
  step (optimizer hooks; the schedule keeps owning ``param_group["lr"]``).
* **Arguments**: the ``TrainingArguments`` you pass are copied; DebaTrainer changes only its copy
  (``ignore_data_skip``, the step ceiling ``max_steps``).
* **Logs**: ``deba_batch_size``, ``deba_score``, ``deba_samples``, ``deba_equivalent_samples``,
  ``deba_lr_factor``, ``deba_noise_scale`` (and its lower bound ``deba_noise_scale_low``, once
  measured) and ``deba_<metric>`` are added to every training log, so they land in ``state.log_history`` and in
  every reporting integration (TensorBoard, W&B...) through ``Trainer.log``. Every step is also
  written to ``output_dir/deba_history.jsonl``.
* **Checkpoints**: each checkpoint folder gets ``deba_state.json`` (the same schema ``deba.fit``
  writes: scheduler, step engine, sampler position, history length); ``train(resume_from_checkpoint=...)`` continues with the same batch-size trajectory and
  sample order. Trainer's own batch skipping is turned off (``ignore_data_skip``): the sampler
  knows its place.

Every step runs the shared step engine (``deba.training.step``): micro-batches, probe, DDP
reduction, decision, rank agreement, LR factor, sampler resize and sample accounting are the
same code ``deba.fit`` runs. ``transformers`` and ``accelerate`` are the ``deba[hf]`` extra;
importing this module without them raises an ImportError naming the extra. Only :class:`DebaTrainer` can do this: a ``TrainerCallback``
cannot replace the DataLoader's sampler or run micro-batches inside the step.
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from typing import Any

from deba.adapters.huggingface import _require  # noqa: F401 - the extra, or a clear ImportError

import torch
from transformers import Trainer
from transformers.trainer_utils import get_last_checkpoint

from deba.adapters.huggingface.callbacks import DebaControl, DebaProgress
from deba.adapters.huggingface.checks import check_deba_options, refuse_incompatible
from deba.adapters.huggingface.data import TrainerBatchSampler
from deba.adapters.huggingface.schedule import SampleClockLR
from deba.control.decision import Decision
from deba.control.scheduler import BatchScheduler
from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError
from deba.profiles.loading import resolve_profile
from deba.profiles.lr_rule import optimizer_family
from deba.profiles.schema import ArchitectureProfile
from deba.signals.probe import GradientProbe
from deba.training.checkpoint import STATE_FILE, build_state, read_state, restore_state, write_json_atomic
from deba.training.distributed import context
from deba.training.history import HistoryWriter, read_history
from deba.training.lr import LRCoupler
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.step import StepEngine, StepOutcome
from deba.training.throughput_probe import probe_throughput, startup_sizes

#: An equivalent budget never trains more than this many times the strict budget's samples (as deba.fit).
SAMPLE_CAP = 4

__all__ = ["DebaTrainer", "SampleClockLR", "TrainerBatchSampler"]


def _training_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    """The user's TrainingArguments (or ``None``), replaced in ``args``/``kwargs`` by a copy we may change."""
    if "args" in kwargs:
        kwargs["args"] = copy.copy(kwargs["args"]) if kwargs["args"] is not None else None
        return args, kwargs["args"]
    if len(args) > 1:
        mine = copy.copy(args[1]) if args[1] is not None else None
        return (args[0], mine, *args[2:]), mine
    return args, None


class DebaTrainer(Trainer):
    """``transformers.Trainer`` whose batch size DEBA adapts while it trains.

    Args:
        *args, **kwargs: everything ``Trainer`` takes (``args`` is copied, never changed).
        deba_profile: a profile, a name, a file, or ``"auto"`` (detected from the model). The
            starting batch is yours: ``per_device_train_batch_size x world_size`` (the LR in your
            arguments belongs to it); the profile's bounds are widened to include it if needed.
        deba_strategy: a scoring strategy instance or registered name.
        deba_max_micro_batch: samples per forward/backward (default: the profile's cap, else the
            whole batch).
        deba_max_samples: stop after this many samples instead of ``num_train_epochs`` epochs.
        deba_strategy_options: keyword options for a strategy given by name.
        deba_budget: what ``num_train_epochs`` / ``deba_max_samples`` count, as in ``deba.fit``:
            ``"equivalent"`` starting-batch-equivalent samples (``sum E(B_i) B_i``: a larger batch
            makes each sample worth less, so the run trains until it has made the progress of the
            fixed-batch run; never more than 4x the samples), ``"samples"`` strictly, ``"auto"``
            (default) equivalent for policies that read the noise scale (``goodput``). The LR
            schedule and the progress bar follow the same clock.
        deba_throughput: a fixed table (batch -> samples/s) instead of measured throughput (makes
            decisions a pure function of the observations).
        deba_probe_throughput: time a few batch sizes before the first step (default: when the
            policy reads throughput and no table is given).

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
        deba_budget: str = "auto",
        deba_throughput: Any = None,
        deba_probe_throughput: bool | None = None,
        **kwargs: Any,
    ) -> None:
        args, training_args = _training_args(args, kwargs)
        train_dataset = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        refuse_incompatible(training_args, train_dataset, deba_max_micro_batch, deba_max_samples)
        check_deba_options(deba_budget, deba_probe_throughput)
        super().__init__(*args, **kwargs)
        start = self.args.per_device_train_batch_size * max(1, self.args.world_size)
        self.deba_profile = resolve_profile(deba_profile, self.model).starting_at(
            start, field="per_device_train_batch_size x world_size")
        self.deba_scheduler = BatchScheduler(self.deba_profile, strategy=deba_strategy,
                                             strategy_options=deba_strategy_options, throughput=deba_throughput)
        # Equivalent samples count only where they can be measured: policies that read the noise.
        self.deba_equivalent = deba_budget == "equivalent" or (deba_budget == "auto" and self.deba_scheduler.policy.needs_noise)
        self.deba_scheduler.measure_noise = self.deba_equivalent
        self._deba_probe_wanted = (self.deba_scheduler.policy.needs_noise if deba_probe_throughput is None
                                   else deba_probe_throughput) and self.deba_scheduler.throughput.fixed is None
        self.deba_max_micro_batch = deba_max_micro_batch or self.deba_profile.max_micro_batch
        self.deba_max_samples = deba_max_samples
        self._deba_user_max_steps = self.args.max_steps
        self._deba_sampler: AdaptiveBatchSampler | None = None
        self._deba_engine: StepEngine | None = None
        self._deba_bound: Any = None  # the (wrapped) model the engine's forward/backward are bound to
        self._deba_budget: int | None = None
        self._deba_decision: Decision | None = None
        self._deba_resume_dir: str | None = None
        self._deba_history: HistoryWriter | None = None
        self._deba_pending: StepOutcome | None = None
        # The sampler knows where it is; Trainer must not skip batches itself on resume (our copy).
        self.args.ignore_data_skip = True
        self.add_callback(DebaControl(self))
        if not self.args.disable_tqdm:
            from transformers.trainer_callback import ProgressCallback

            self.remove_callback(ProgressCallback)
            self.add_callback(DebaProgress(self))

    @property
    def deba_samples(self) -> int:
        """Samples trained on so far (all processes together)."""
        return 0 if self._deba_engine is None else self._deba_engine.samples

    @property
    def deba_progress(self) -> float:
        """What the budget counts: equivalent samples (``deba_budget="equivalent"``) or samples."""
        if self._deba_engine is None:
            return 0.0
        return self._deba_engine.equivalent_samples if self.deba_equivalent else float(self._deba_engine.samples)

    def deba_budget_done(self) -> bool:
        """Whether the sample budget is spent (equivalent budgets stop at 4x the samples at most)."""
        budget = self._deba_budget
        if budget is None:
            return False
        if self.deba_equivalent and self.deba_samples >= SAMPLE_CAP * budget:
            return True
        return self.deba_progress >= budget

    @property
    def deba_oom_events(self) -> list[dict[str, int]]:
        """Out-of-memory retries so far (each lowered the micro-batch cap for good)."""
        return [] if self._deba_engine is None else self._deba_engine.oom_events

    # Train and resume ----------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if self.train_dataset is None:
            raise DebaConfigError.single("train_dataset", None, "is required to train")
        self._deba_set_budget(len(self.train_dataset))
        self._deba_resume_dir = self._deba_resume_folder(resume_from_checkpoint)
        try:
            return super().train(self._deba_resume_dir or resume_from_checkpoint, *args, **kwargs)
        finally:
            if self._deba_history is not None:
                self._deba_history.close()
                self._deba_history = None

    def _deba_set_budget(self, n: int) -> None:
        if self.deba_max_samples is not None:
            self._deba_budget = self.deba_max_samples
        elif self._deba_user_max_steps > 0:
            self._deba_budget = None  # the user asked for optimizer steps: Trainer stops at max_steps
        else:
            self._deba_budget = int(math.ceil(self.args.num_train_epochs * n))
        # A known budget lets the profile's timing be shares of the run (docs/design.md).
        self.deba_scheduler.plan(self._deba_budget, equivalent=self.deba_equivalent)
        if self._deba_user_max_steps <= 0:
            # A ceiling Trainer needs for a length-less loader; DEBA stops at the sample budget first.
            # Every step takes at least one grid step of samples (an epoch's tail is folded to it).
            most = self._deba_budget * (SAMPLE_CAP if self.deba_equivalent else 1)
            self.args.max_steps = -(-most // self.deba_profile.granularity) + 1

    def _deba_resume_folder(self, resume_from_checkpoint: str | bool | None) -> str | None:
        if resume_from_checkpoint is True:
            found = get_last_checkpoint(self.args.output_dir)
            if found is None:
                raise DebaConfigError.single("resume_from_checkpoint", True, f"found no checkpoint in {self.args.output_dir}")
            resume_from_checkpoint = found
        folder = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
        if folder is not None and not (Path(folder) / STATE_FILE).exists():
            raise DebaConfigError.single(
                "resume_from_checkpoint", folder, f"holds no {STATE_FILE}: it was not written by DebaTrainer",
                remedy="Resume from a checkpoint saved by DebaTrainer, or start a new run.",
            )
        return folder

    def get_train_dataloader(self):
        if self.train_dataset is None:
            raise DebaConfigError.single("train_dataset", None, "is required to train")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        if world > 1:
            context(self.args.device).check_granularity(self.deba_profile.granularity)
        self._deba_sampler = AdaptiveBatchSampler(
            self.train_dataset, self.deba_scheduler.batch_size, shuffle=True, seed=seed,
            drop_last=self.args.dataloader_drop_last, num_replicas=world, rank=rank,
            min_last_batch=self.deba_profile.granularity,
        )
        self._deba_build_engine(seed, world)
        # Every process records its own trajectory (agreement between ranks can be checked).
        self._deba_history = HistoryWriter(self.args.output_dir, tensorboard=False,
                                           filename="deba_history.jsonl" if rank == 0 else f"deba_history-rank{rank}.jsonl")
        if self._deba_resume_dir is not None:
            self._deba_load_state(self._deba_resume_dir)
        else:
            self._deba_history.start()
        return self._deba_loader(seed)

    def _deba_build_engine(self, seed: int, world: int) -> None:
        if self._deba_engine is not None and self._deba_engine.coupler is not None:
            self._deba_engine.coupler.remove()  # a second train(): the old LR hooks must go
        probe = GradientProbe(self.model, sketch_size=self.deba_profile.sketch_size, seed=self.args.seed)
        self._deba_engine = StepEngine(
            self.model, self.deba_scheduler, probe, backward=self.accelerator.backward,
            max_micro_batch=self.deba_max_micro_batch, dist=context(self.args.device) if world > 1 else None,
            sampler=self._deba_sampler,
        )
        self._deba_bound = None

    def _deba_loader(self, seed: int):
        dataset, collator = self._deba_dataset_and_collator()
        params: dict[str, Any] = {
            "batch_sampler": TrainerBatchSampler(self._deba_sampler),
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

    def _deba_dataset_and_collator(self) -> tuple[Any, Any]:
        dataset = self.train_dataset
        try:
            import datasets

            if isinstance(dataset, datasets.Dataset):
                return self._remove_unused_columns(dataset, description="training"), self.data_collator
        except ImportError:
            pass
        return dataset, self._get_collator_with_removed_columns(self.data_collator, description="training")

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

    def _deba_bind(self, model: torch.nn.Module) -> StepEngine:
        """Point the engine at the model Trainer steps (possibly wrapped) and at the optimizer."""
        engine = self._deba_engine
        if engine is None:
            raise DebaConfigError.single("train_dataloader", None, "must be built by DebaTrainer before training")
        if self._deba_bound is not model:
            n_gpu = self.args.n_gpu

            def forward_loss(micro: dict[str, Any]) -> torch.Tensor:
                with self.compute_loss_context_manager():
                    loss = self.compute_loss(model, micro)
                return loss.mean() if n_gpu > 1 else loss

            engine.forward_loss = forward_loss
            engine.no_sync = lambda: self.accelerator.no_sync(model)
            self._deba_bound = model
        if engine.coupler is None:
            opt = self._deba_torch_optimizer()
            self.deba_scheduler.optimizer_family = optimizer_family(opt)  # the optimizer exists from here on
            engine.coupler = LRCoupler(opt, engine.lr_factor)
        return engine

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        engine = self._deba_bind(model)
        if self._deba_probe_wanted and engine.steps == 0:
            self._deba_probe(engine)
        out = engine.run(self._prepare_inputs(inputs), epoch=self._deba_sampler.epoch)
        self.deba_max_micro_batch = engine.max_micro_batch
        self._deba_decision = out.decision
        # Written at on_step_end, once the optimizer step ran and the LR it used is known.
        self._deba_pending = out
        return torch.tensor(out.obs.loss, device=self.args.device)

    def _deba_probe(self, engine: StepEngine) -> None:
        """Time a few candidate sizes before the first step (goodput needs ``T(B)`` beyond the start)."""
        self._deba_probe_wanted = False
        dataset, collator = self._deba_dataset_and_collator()
        world = self.accelerator.num_processes
        gen = torch.Generator().manual_seed(self.args.seed + 7919)

        def make_batch(n: int) -> Any:
            idx = torch.randint(0, len(dataset), (max(1, n // world),), generator=gen).tolist()
            return self._prepare_inputs(collator([dataset[i] for i in idx]))

        p = self.deba_profile
        # Under DDP every probe pass runs without gradient sync (no collective in the probe), and
        # with no time cut-off: ranks on their own clocks would stop at different sizes.
        with engine.no_sync() if world > 1 else contextlib.nullcontext():
            probe_throughput(engine.model, engine.forward_loss, make_batch,
                             startup_sizes(self.deba_scheduler.batch_size, p.max_batch, p.granularity, world),
                             self.deba_scheduler.throughput, cap=engine.max_micro_batch,
                             max_seconds=float("inf") if world > 1 else 5.0)

    def _deba_flush_record(self) -> None:
        """Write the step's record once the optimizer step ran (so it holds the LR really used)."""
        out, self._deba_pending = self._deba_pending, None
        if out is None or self._deba_history is None:
            return
        coupler = self._deba_engine.coupler
        lr = coupler.last_used[0] if coupler is not None else None
        self._deba_history.write(out.record(self._deba_sampler.epoch, lr,
                                            equivalent_samples=self._deba_engine.equivalent_samples))

    # LR schedule on samples ------------------------------------------------------------------------

    def _deba_clock(self) -> float:
        return self.deba_progress / self.deba_scheduler.initial_batch

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        budget = self._deba_budget
        nominal = num_training_steps if budget is None else max(1, math.ceil(budget / self.deba_scheduler.initial_batch))
        created = self.lr_scheduler is None
        sched = super().create_scheduler(nominal, optimizer)
        # The sample clock only where the budget is in samples: a user's max_steps keeps step counting.
        if (created and budget is not None and isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
                and not isinstance(sched, SampleClockLR)):
            self.lr_scheduler = SampleClockLR(sched, self._deba_clock)
        return self.lr_scheduler

    # Logs --------------------------------------------------------------------------------------

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self.is_in_train and self._deba_decision is not None:
            d = self._deba_decision
            logs["deba_batch_size"] = self.deba_scheduler.batch_size
            logs["deba_samples"] = self.deba_samples
            logs["deba_equivalent_samples"] = self._deba_engine.equivalent_samples if self._deba_engine else 0.0
            if d.noise_scale is not None:
                logs["deba_noise_scale"] = d.noise_scale
            if d.noise_scale_low is not None:
                logs["deba_noise_scale_low"] = d.noise_scale_low
            logs["deba_lr_factor"] = d.lr_factor
            if d.score is not None:
                logs["deba_score"] = d.score
            for name, value in (d.metrics or self.deba_scheduler.metrics()).items():
                logs[f"deba_{name}"] = value
        super().log(logs, *args, **kwargs)

    # Checkpoints ---------------------------------------------------------------------------------

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if not self.args.should_save or self._deba_engine is None:
            return
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        state = build_state(profile=self.deba_profile, scheduler=self.deba_scheduler, engine=self._deba_engine,
                            sampler=self._deba_sampler, world_size=self.accelerator.num_processes,
                            history_records=0 if self._deba_history is None else self._deba_history.count)
        write_json_atomic(folder / STATE_FILE, state)

    def _deba_load_state(self, folder: str) -> None:
        state = read_state(Path(folder) / STATE_FILE, field="resume_from_checkpoint")
        restore_state(state, profile=self.deba_profile, scheduler=self.deba_scheduler, engine=self._deba_engine,
                      sampler=self._deba_sampler, field="deba_profile")
        self.deba_max_micro_batch = self._deba_engine.max_micro_batch
        self._deba_decision = self.deba_scheduler.last_decision
        if self._deba_history is not None:
            self._deba_history.start(resumed_records=int(state["history_records"]))

    def deba_history(self) -> list[dict[str, Any]]:
        """Every step of the run (from ``output_dir/deba_history.jsonl``, resumes included)."""
        path = Path(self.args.output_dir) / "deba_history.jsonl"
        return read_history(path) if path.exists() else []
