"""Imports ``transformers`` or fails with an ImportError naming the ``deba[hf]`` extra."""

try:
    import transformers  # noqa: F401
    import accelerate  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError("deba.adapters.huggingface needs transformers and accelerate: pip install 'deba[hf]'") from exc
