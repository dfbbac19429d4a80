"""A real text-classification task that needs no download: Python standard-library docstrings.

Each paragraph of a docstring of a public function, class or method of a module is one example,
labelled by its module (``decimal``, ``logging``, ``threading``, ``statistics`` by default), so
the text is real English technical prose that ships with every Python. A WordPiece tokenizer is
trained locally on it with the ``tokenizers`` library (a dependency of transformers).
"""

from __future__ import annotations

import importlib
import inspect
import random
from typing import Sequence

from deba.errors import DebaConfigError

__all__ = ["DEFAULT_MODULES", "stdlib_docstrings", "train_wordpiece"]

DEFAULT_MODULES = ("decimal", "logging", "threading", "statistics")


def stdlib_docstrings(modules: Sequence[str] = DEFAULT_MODULES, min_chars: int = 40, seed: int = 0) -> tuple[list[str], list[int]]:
    """``(texts, labels)``: docstring paragraphs labelled by the index of their module, shuffled."""
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    for label, name in enumerate(modules):
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise DebaConfigError.single("modules", name, "is not an importable module") from exc
        root = name.split(".")[0]
        for _, obj in inspect.getmembers(module):
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                continue
            if not (getattr(obj, "__module__", None) or "").startswith(root):
                continue
            owners = [obj] + ([v for v in vars(obj).values() if callable(v)] if inspect.isclass(obj) else [])
            for item in owners:
                doc = inspect.getdoc(item)
                for para in (doc or "").split("\n\n"):
                    para = " ".join(para.split())
                    if len(para) >= min_chars and para not in seen:
                        seen.add(para)
                        texts.append(para)
                        labels.append(label)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]


def train_wordpiece(texts: Sequence[str], vocab_size: int = 2000):
    """A BERT-style WordPiece tokenizer trained on ``texts``, as a ``PreTrainedTokenizerFast``."""
    try:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise DebaConfigError.single("tokenizer", "wordpiece", "needs tokenizers and transformers",
                                     remedy="pip install 'deba[hf]'") from exc
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
