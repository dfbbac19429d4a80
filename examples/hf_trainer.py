"""DEBA inside a HuggingFace Trainer run, fully offline.

A tiny BERT (built from a BertConfig, random weights) learns to tell which standard-library module
a docstring paragraph comes from; the tokenizer is trained locally. DebaTrainer adapts the batch
size while it trains, logs DEBA's figures through Trainer.log, checkpoints its state, and resumes.

    pip install -e '.[hf]'
    python examples/hf_trainer.py [--out runs/hf-example] [--epochs 8]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from transformers import TrainingArguments  # noqa: E402

from deba.adapters.huggingface import DebaTrainer  # noqa: E402
from hf_text import docstring_task, tiny_bert  # noqa: E402


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/hf-example")
    ap.add_argument("--epochs", type=float, default=8)
    args = ap.parse_args()

    train, test, tokenizer, num_labels = docstring_task()
    model = tiny_bert(len(tokenizer), num_labels)
    training_args = TrainingArguments(
        args.out, num_train_epochs=args.epochs, learning_rate=2e-3, eval_strategy="epoch", save_strategy="epoch",
        logging_steps=5, report_to=[], use_cpu=True, seed=0,
    )
    trainer = DebaTrainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=test, compute_metrics=accuracy,
        deba_profile="auto",            # detected: a transformer -> the vit_b16 (most conservative) profile
        deba_strategy="equal-weight",
        deba_max_micro_batch=64,        # larger global batches run as micro-batches
    )
    trainer.train()                     # resume later with trainer.train(resume_from_checkpoint=True)
    history = trainer.deba_history()
    print("batch sizes used:", sorted({r["batch_size"] for r in history}))
    print("final evaluation:", trainer.evaluate())


if __name__ == "__main__":
    main()
