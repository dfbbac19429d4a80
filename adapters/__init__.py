"""Framework adapters: raw PyTorch, HuggingFace Trainer, torch.distributed.

Each adapter lives in its own module and imports its framework only when used, so
``import deba.adapters`` never imports transformers or accelerate.
"""
