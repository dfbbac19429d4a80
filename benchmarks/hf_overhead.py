"""DEBA's overhead inside HuggingFace Trainer: DebaTrainer vs a plain Trainer at the same fixed batch.

A BERT classifier (4 layers, hidden 256, sequence 128, random weights, built from a BertConfig) on
the offline docstring task; both trainers run the same number of epochs at batch 32. DebaTrainer
gets a fixed profile (min = max = initial = 32), so the only difference is DEBA's work: its
sampler, probe, collectors, strategy, decision and logging. Runs alternate (plain, deba, plain,
deba...) so machine noise hits both; the median train_runtime of each is compared.

    python benchmarks/hf_overhead.py [--repeats 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

import deba  # noqa: E402
from deba.adapters.huggingface import DebaTrainer  # noqa: E402
from hf_text import docstring_task  # noqa: E402


def model(vocab: int, labels: int) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=128, num_labels=labels)
    return BertForSequenceClassification(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    train, _, tok, k = docstring_task(max_length=128)
    fixed = deba.load_profile("vit_b16").replace(min_batch=args.batch, max_batch=args.batch, initial_batch=args.batch,
                                                 granularity=1)
    times: dict[str, list[float]] = {"plain": [], "deba": []}
    with tempfile.TemporaryDirectory() as out:
        targs = dict(num_train_epochs=args.epochs, per_device_train_batch_size=args.batch, learning_rate=1e-3,
                     save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, logging_steps=10, seed=0)
        for _ in range(args.repeats):
            for name in ("plain", "deba"):
                ta = TrainingArguments(out, **targs)
                if name == "plain":
                    trainer = Trainer(model=model(len(tok), k), args=ta, train_dataset=train)
                else:
                    trainer = DebaTrainer(model=model(len(tok), k), args=ta, train_dataset=train, deba_profile=fixed)
                result = trainer.train()
                times[name].append(result.metrics["train_runtime"])
    plain, with_deba = statistics.median(times["plain"]), statistics.median(times["deba"])
    print(f"BERT 4x256, seq 128, batch {args.batch}, {len(train)} samples x {args.epochs} epochs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} alternating repeats")
    print(f"plain Trainer  train_runtime median {plain:8.2f} s   runs {['%.2f' % t for t in times['plain']]}")
    print(f"DebaTrainer    train_runtime median {with_deba:8.2f} s   runs {['%.2f' % t for t in times['deba']]}")
    print(f"overhead {100 * (with_deba - plain) / plain:+.2f} %   (target <= 2%)")


if __name__ == "__main__":
    main()
