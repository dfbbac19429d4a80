"""What DebaTrainer refuses, before Trainer's own checks give less helpful errors."""

from __future__ import annotations

from typing import Any

import torch

from deba.errors import DebaConfigError
from deba.training.options import check_budget_kind, check_optional_bool, check_positive_int

__all__ = ["check_deba_options", "refuse_incompatible"]


def refuse_incompatible(a: Any, ds: Any, max_samples: Any = None) -> None:
    """Raise ``DebaConfigError`` (with the remedy) for a Trainer setup DEBA cannot work with
    (``max_samples``: ``deba_max_samples``, checked by :func:`check_deba_options`)."""
    if a is None:
        from transformers import TrainingArguments

        a = TrainingArguments("tmp_trainer")
    _refuse_arguments(a)
    if isinstance(ds, torch.utils.data.IterableDataset) or (ds is not None and not hasattr(ds, "__len__")):
        raise DebaConfigError.single(
            "train_dataset", type(ds).__name__, "must be a map-style dataset with a length: DEBA's sampler needs "
            "indices to give every sample once per epoch while the batch size changes",
            remedy="Use a map-style dataset (datasets.Dataset, a torch Dataset with __len__).",
        )
    if max_samples is None and a.max_steps <= 0 and not a.num_train_epochs > 0:
        raise DebaConfigError.single("num_train_epochs", a.num_train_epochs, "must be > 0 (or set deba_max_samples)")


def check_deba_options(*, budget: Any = "auto", probe_throughput: Any = None, max_micro_batch: Any = None,
                       max_samples: Any = None, nonfinite_abort: Any = None) -> None:
    """DebaTrainer's ``deba_*`` keywords, by the shared validators (``deba.training.options``) under
    their ``deba_`` names (the throughput table is checked by the scheduler)."""
    check_budget_kind(budget, "deba_budget")
    check_optional_bool(probe_throughput, "deba_probe_throughput")
    check_positive_int(max_micro_batch, "deba_max_micro_batch")
    check_positive_int(max_samples, "deba_max_samples")
    check_positive_int(nonfinite_abort, "deba_nonfinite_abort")


def _refuse_arguments(a: Any) -> None:
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
    if getattr(a, "deepspeed", None) or zero3:
        # DeepSpeed partitions gradients (ZeRO 2/3) and steps the optimizer inside its backward,
        # so neither whole gradients nor micro-batches under DEBA's control exist there.
        raise DebaConfigError.single(
            "deepspeed", a.deepspeed or "ZeRO stage 3", "cannot be used with DebaTrainer: DEBA reads whole "
            "gradients (ZeRO partitions them) and runs the micro-batches of a step itself",
            remedy="Train with plain DDP (torchrun) instead of DeepSpeed.",
        )
    if getattr(a, "fp16", False):
        # accelerate's loss scaler would hand DEBA scaled gradients and count its own overflow skips
        # as non-finite training steps; deba.fit(amp="fp16") handles this, DebaTrainer does not yet.
        raise DebaConfigError.single(
            "fp16", True, "is not supported by DebaTrainer yet (fp16 loss scaling)",
            remedy="Use bf16=True (no loss scaling needed), or fp32.",
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
