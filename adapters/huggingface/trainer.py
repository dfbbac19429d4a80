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
  follows changes nothing; too many in a row (``deba_nonfinite_abort``) raise
  ``deba.NonFiniteTraining`` from the step, as in ``deba.fit``.
* **Learning rate**: the Trainer's schedule (linear, cosine, ... with warm-up) is re-based on
  samples: it is evaluated at ``samples_seen / initial_batch`` "equivalent fixed-batch steps" of a
  nominal ``budget / initial_batch`` steps, and DEBA's LR factor multiplies it at each optimizer
  step (optimizer hooks; the schedule keeps owning ``param_group["lr"]``).
* **Arguments**: the ``TrainingArguments`` you pass are copied; DebaTrainer changes only its copy
  (``ignore_data_skip``, the step ceiling ``max_steps``).
* **Logs**: the run's log values (the names the Lightning adapter logs as ``deba/<name>``):
  ``deba_batch_size``, ``deba_score``, ``deba_samples``, ``deba_equivalent_samples``,
  ``deba_lr_factor``, ``deba_noise_scale`` (and its lower bound ``deba_noise_scale_low``, once
  measured), and ``deba_<metric>`` for the strategy's metrics, are added to every training log, so they land in ``state.log_history`` and in
  every reporting integration (TensorBoard, W&B...) through ``Trainer.log``. Every step is also
  written to ``output_dir/deba_history.jsonl``.
* **Checkpoints**: each checkpoint folder gets ``deba_state.json`` (the same schema ``deba.fit``
  writes: scheduler, step engine, sampler position, history length); ``train(resume_from_checkpoint=...)`` continues with the same batch-size trajectory and
  sample order. Trainer's own batch skipping is turned off (``ignore_data_skip``): the sampler
  knows its place.

DEBA's part of the run is the shared run object (:class:`deba.training.run.DebaRun`): profile,
scheduler, budget, start-up probe, step engine (micro-batches, probe, DDP reduction, decision,
rank agreement, LR factor, sampler resize, sample accounting), history, non-finite abort, state
document and log values are the code ``deba.fit`` runs; this module translates Trainer's hooks
into its calls. ``transformers`` and ``accelerate`` are the ``deba[hf]`` extra;
importing this module without them raises an ImportError naming the extra. Only :class:`DebaTrainer` can do this: a ``TrainerCallback``
cannot replace the DataLoader's sampler or run micro-batches inside the step.
"""

from __future__ import annotations

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
from deba.control.scheduler import BatchScheduler
from deba.control.scoring import ScoringStrategy
from deba.errors import DebaConfigError, NonFiniteTraining
from deba.profiles.schema import ArchitectureProfile
from deba.training.budget import SAMPLE_CAP
from deba.training.checkpoint import STATE_FILE, read_state, write_json_atomic
from deba.training.distributed import DistributedContext, context
from deba.training.history import read_history
from deba.training.options import RunOptions, merge_options
from deba.training.run import DebaRun, probe_batch_maker
from deba.training.sampler import AdaptiveBatchSampler
from deba.training.step import StepEngine, StepOutcome

__all__ = ["DebaTrainer", "SampleClockLR", "TrainerBatchSampler"]

#: The history file in ``output_dir`` (rank ``r`` > 0: ``deba_history-rank{r}.jsonl``).
HISTORY_FILE = "deba_history.jsonl"


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

    Each Trainer hook is translated into a call of the shared run object
    (:class:`deba.training.run.DebaRun`), as ``deba.fit`` and the Lightning callback do.

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
            (default) equivalent for policies that read the noise scale (``goodput``) when DEBA
            owns the stop (with your own ``max_steps`` Trainer stops the run and the budget counts
            samples). The LR schedule and the progress bar follow the same clock.
        deba_throughput: a fixed table (batch -> samples/s) instead of measured throughput (makes
            decisions a pure function of the observations).
        deba_probe_throughput: time a few batch sizes before the first step (default: when the
            policy reads throughput and no table is given).
        deba_nonfinite_abort: non-finite steps in a row that stop training with
            ``deba.NonFiniteTraining`` (default ``3 * profile.nonfinite_patience``).
        deba_options: DEBA's settings as one :class:`deba.RunOptions` instead of ``deba_profile``,
            ``deba_strategy``, ``deba_strategy_options``, ``deba_throughput``, ``deba_budget``,
            ``deba_max_micro_batch``, ``deba_probe_throughput`` and ``deba_nonfinite_abort``
            (giving one of those beside it is a ``DebaConfigError``).

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
        deba_nonfinite_abort: int | None = None,
        deba_options: RunOptions | None = None,
        **kwargs: Any,
    ) -> None:
        args, training_args = _training_args(args, kwargs)
        train_dataset = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        check_deba_options(budget=deba_budget, probe_throughput=deba_probe_throughput,
                           max_micro_batch=deba_max_micro_batch, max_samples=deba_max_samples,
                           nonfinite_abort=deba_nonfinite_abort)
        refuse_incompatible(training_args, train_dataset, deba_max_samples)
        self._deba_options = merge_options(deba_options, {
            "profile": deba_profile, "strategy": deba_strategy, "strategy_options": deba_strategy_options,
            "throughput": deba_throughput, "budget": deba_budget, "max_micro_batch": deba_max_micro_batch,
            "probe_throughput": deba_probe_throughput, "nonfinite_abort": deba_nonfinite_abort}, prefix="deba_")
        super().__init__(*args, **kwargs)
        self.deba_max_samples = deba_max_samples
        self._deba_user_max_steps = self.args.max_steps
        self._deba_sampler: AdaptiveBatchSampler | None = None
        self._deba_dist: DistributedContext | None = None
        self._deba_resume_dir: str | None = None
        self._deba_pending: StepOutcome | None = None
        # The run exists from here (deba_scheduler, deba_profile); train() plans it, the first
        # training_step attaches it. Every train() after the first gets a fresh one.
        self._deba_run = self._deba_new_run()
        self._deba_trained = False
        # The sampler knows where it is; Trainer must not skip batches itself on resume (our copy).
        self.args.ignore_data_skip = True
        self.add_callback(DebaControl(self))
        if not self.args.disable_tqdm:
            from transformers.trainer_callback import ProgressCallback

            self.remove_callback(ProgressCallback)
            self.add_callback(DebaProgress(self))

    # The run -------------------------------------------------------------------------------------

    def _deba_new_run(self) -> DebaRun:
        """A fresh run at the user's starting batch, planned when the budget is known already."""
        start = self.args.per_device_train_batch_size * max(1, self.args.world_size)
        previous = getattr(self, "_deba_run", None)
        # A later train() keeps the profile the first resolved: detecting again ("auto") would run a
        # forward pass and move the global RNG between runs.
        options = self._deba_options if previous is None else self._deba_options.replace(profile=previous.profile)
        run = DebaRun(options, self.model, initial_batch=start,
                      initial_field="per_device_train_batch_size x world_size")
        if self.train_dataset is not None and hasattr(self.train_dataset, "__len__"):
            self._deba_plan(run, len(self.train_dataset))
        return run

    def _deba_plan(self, run: DebaRun, n: int) -> None:
        """The budget: ``deba_max_samples``, else ``num_train_epochs`` epochs of ``n`` samples; with
        the user's own ``max_steps`` Trainer stops the run (no length DEBA knows)."""
        if self.deba_max_samples is not None:
            run.plan(self.deba_max_samples)
        elif self._deba_user_max_steps > 0:
            run.plan(None, owned=False)
        else:
            run.plan(int(math.ceil(self.args.num_train_epochs * n)))

    @property
    def deba_run(self) -> DebaRun:
        """The shared run object of the current (or last) ``train()``."""
        return self._deba_run

    @property
    def deba_profile(self) -> ArchitectureProfile:
        """The run's profile (starting at ``per_device_train_batch_size x world_size``)."""
        return self._deba_run.profile

    @property
    def deba_scheduler(self) -> BatchScheduler:
        """The run's batch scheduler."""
        return self._deba_run.scheduler

    @property
    def deba_options(self) -> RunOptions:
        """DEBA's settings (:class:`deba.RunOptions`)."""
        return self._deba_options

    @property
    def deba_equivalent(self) -> bool:
        """Whether the budget counts starting-batch-equivalent samples."""
        return self._deba_run.budget.equivalent

    @property
    def _deba_engine(self) -> StepEngine | None:
        return self._deba_run.engine

    @property
    def deba_max_micro_batch(self) -> int | None:
        """Samples per forward/backward (lowered for good by an out-of-memory retry)."""
        if self._deba_run.engine is not None:
            return self._deba_run.engine.max_micro_batch
        return self._deba_run.options.max_micro_batch or self._deba_run.profile.max_micro_batch

    @deba_max_micro_batch.setter
    def deba_max_micro_batch(self, value: int | None) -> None:
        if self._deba_run.engine is not None:
            self._deba_run.engine.cap_memory(value)
        else:
            self._deba_options = self._deba_options.replace(max_micro_batch=value)
            self._deba_run.options = self._deba_options

    @property
    def deba_samples(self) -> int:
        """Samples trained on so far (all processes together)."""
        return self._deba_run.samples

    @property
    def deba_progress(self) -> float:
        """What the budget counts: equivalent samples (``deba_budget="equivalent"``) or samples."""
        return self._deba_run.progress

    def deba_budget_done(self) -> bool:
        """Whether the sample budget is spent (equivalent budgets stop at 4x the samples at most)."""
        return self._deba_run.budget_spent()

    @property
    def deba_oom_events(self) -> list[dict[str, int]]:
        """Out-of-memory retries so far (each lowered the micro-batch cap for good)."""
        return [] if self._deba_run.engine is None else self._deba_run.engine.oom_events

    # Train and resume ----------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if self.train_dataset is None:
            raise DebaConfigError.single("train_dataset", None, "is required to train")
        if self._deba_trained or self._deba_run.engine is not None:
            # A second train(): a new run (the last one's engine is attached once, to the last
            # optimizer; its LR hooks went with detach()). It starts at the user's batch again.
            self._deba_run.detach()
            self._deba_run = self._deba_new_run()
        else:
            self._deba_plan(self._deba_run, len(self.train_dataset))  # the dataset may have changed
        self._deba_trained = True
        if self._deba_user_max_steps <= 0:
            # A ceiling Trainer needs for a length-less loader; DEBA stops at the sample budget first.
            # Every step takes at least one grid step of samples (an epoch's tail is folded to it).
            budget = self._deba_run.budget
            most = budget.total * (SAMPLE_CAP if budget.equivalent else 1)
            self.args.max_steps = -(-most // self.deba_profile.granularity) + 1
        self._deba_resume_dir = self._deba_resume_folder(resume_from_checkpoint)
        self._deba_pending = None
        try:
            return super().train(self._deba_resume_dir or resume_from_checkpoint, *args, **kwargs)
        finally:
            self._deba_run.detach()  # the LR hooks off the optimizer, the history closed

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
        if self._deba_run.engine is not None:  # a loader asked for after the run was attached
            self._deba_run.detach()
            self._deba_run = self._deba_new_run()
        run = self._deba_run
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        self._deba_dist = context(self.args.device) if world > 1 else None
        if self._deba_dist is not None:
            self._deba_dist.check_granularity(run.profile.granularity)
        self._deba_sampler = AdaptiveBatchSampler(
            self.train_dataset, run.scheduler.batch_size, shuffle=True, seed=seed,
            drop_last=self.args.dataloader_drop_last, num_replicas=world, rank=rank,
            min_last_batch=run.profile.granularity,
        )
        # The loader draws its first batch before the first training_step (where the engine is
        # built): the sampler's position and the scheduler come back here, the engine's part
        # waits in the run until attach().
        run.sampler = self._deba_sampler
        if run.history is not None:
            run.history.close()
        run.open_history(self.args.output_dir, filename=HISTORY_FILE, rank=rank)
        if self._deba_resume_dir is not None:
            run.restore(read_state(Path(self._deba_resume_dir) / STATE_FILE, field="resume_from_checkpoint"),
                        field="deba_profile")
        else:
            run.history.start()
        return self._deba_loader(seed)

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

    def _deba_attach(self, model: torch.nn.Module) -> StepEngine:
        """Build the engine once the model Trainer steps (possibly wrapped) and the optimizer exist:
        its forward/backward are Trainer's, bound to that model; the probe reads ``self.model``."""
        run = self._deba_run
        if self._deba_sampler is None or run.sampler is not self._deba_sampler:
            raise DebaConfigError.single("train_dataloader", None, "must be built by DebaTrainer before training")
        n_gpu = self.args.n_gpu

        def forward_loss(micro: dict[str, Any]) -> torch.Tensor:
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, micro)
            return loss.mean() if n_gpu > 1 else loss

        engine = run.attach(self.model, self._deba_torch_optimizer(), sampler=self._deba_sampler,
                            forward_loss=forward_loss, backward=self.accelerator.backward, dist=self._deba_dist,
                            no_sync=lambda: self.accelerator.no_sync(model), seed=self.args.seed)
        if run.wants_probe():
            self._deba_probe(engine)
        return engine

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        run = self._deba_run
        engine = run.engine if run.engine is not None else self._deba_attach(model)
        out = engine.run(self._prepare_inputs(inputs), epoch=self._deba_sampler.epoch)
        # Written at on_step_end, once the optimizer step ran and the LR it used is known.
        self._deba_pending = out
        try:
            run.check_nonfinite()
        except NonFiniteTraining:
            self._deba_flush_record()  # the step that stops the run is in the history too
            raise
        return torch.tensor(out.obs.loss, device=self.args.device)

    def _deba_probe(self, engine: StepEngine) -> None:
        """The start-up throughput probe (goodput needs ``T(B)`` beyond the start): the run's sizes,
        bound and batches; under DDP its passes run without gradient sync."""
        dataset, collator = self._deba_dataset_and_collator()
        world = self.accelerator.num_processes
        make_batch = probe_batch_maker(len(dataset), lambda idx: self._prepare_inputs(collator([dataset[i] for i in idx])),
                                       self.args.seed, world)
        self._deba_run.probe_throughput(make_batch, world=world, guard=engine.no_sync if world > 1 else None)

    def _deba_flush_record(self) -> None:
        """Write the step's record once the optimizer step ran (so it holds the LR really used)."""
        out, self._deba_pending = self._deba_pending, None
        if out is not None and self._deba_run.engine is not None:
            self._deba_run.record(out, self._deba_sampler.epoch)

    # LR schedule on samples ------------------------------------------------------------------------

    def _deba_clock(self) -> float:
        return self.deba_progress / self.deba_scheduler.initial_batch

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        budget = self._deba_run.budget.total
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
        run = self._deba_run
        d = run.scheduler.last_decision
        if self.is_in_train and d is not None:
            logs.update({f"deba_{name}": value for name, value in run.log_values(d).items()})
            for name, value in (d.metrics or run.scheduler.metrics()).items():
                logs[f"deba_{name}"] = value
        super().log(logs, *args, **kwargs)

    # Checkpoints ---------------------------------------------------------------------------------

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if not self.args.should_save or self._deba_run.engine is None:
            return
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        write_json_atomic(folder / STATE_FILE, self._deba_run.state_document(world=self.accelerator.num_processes))

    def deba_history(self) -> list[dict[str, Any]]:
        """Every step of the run (from ``output_dir/deba_history.jsonl``, resumes included)."""
        path = Path(self.args.output_dir) / HISTORY_FILE
        return read_history(path) if path.exists() else []
