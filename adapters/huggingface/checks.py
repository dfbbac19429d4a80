"""What DebaTrainer refuses, before Trainer's own checks give less helpful errors."""

from __future__ import annotations

from typing import Any

import torch

from deba.errors import DebaConfigError

__all__ = ["refuse_incompatible"]


def refuse_incompatible(a: Any, ds: Any, max_micro_batch: Any, max_samples: Any) -> None:
    """Raise ``DebaConfigError`` (with the remedy) for a Trainer setup DEBA cannot work with."""
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
    for name, value in (("deba_max_micro_batch", max_micro_batch), ("deba_max_samples", max_samples)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DebaConfigError.single(name, value, "must be an int >= 1 or None")
    if max_samples is None and a.max_steps <= 0 and not a.num_train_epochs > 0:
        raise DebaConfigError.single("num_train_epochs", a.num_train_epochs, "must be > 0 (or set deba_max_samples)")


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
