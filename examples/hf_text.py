"""A tiny BERT text-classification task built offline (shared by the HF example and tests).

Real text (standard-library docstrings labelled by module), a WordPiece tokenizer trained locally,
and a ``BertForSequenceClassification`` built from a ``BertConfig``: nothing is downloaded.
"""

from __future__ import annotations

import torch

from text_data import stdlib_docstrings, train_wordpiece


class EncodedTexts(torch.utils.data.Dataset):
    """Pre-tokenised examples as the dicts Trainer feeds to a model."""

    def __init__(self, encodings: dict[str, torch.Tensor], labels: list[int]) -> None:
        self.encodings = encodings
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


def docstring_task(max_length: int = 48, test_fraction: float = 0.2, seed: int = 0):
    """``(train, test, tokenizer, num_labels)`` for the docstring-classification task."""
    texts, labels = stdlib_docstrings(seed=seed)
    cut = int(len(texts) * (1 - test_fraction))
    tok = train_wordpiece(texts[:cut], vocab_size=2000)

    def encode(t, y):
        enc = tok(t, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return EncodedTexts({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, y)

    return encode(texts[:cut], labels[:cut]), encode(texts[cut:], labels[cut:]), tok, max(labels) + 1


def tiny_bert(vocab_size: int, num_labels: int, seed: int = 0):
    """A 2-layer, 64-wide BERT classifier with random weights."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=num_labels)
    return BertForSequenceClassification(config)
