"""Framework adapters: raw PyTorch (``torch``), HuggingFace ``Trainer`` (``huggingface``) and the
``torch.distributed`` launch glue (``distributed``).

Each is registered under the ``deba.adapters`` entry point as a :class:`deba.FrameworkAdapter`;
``registry.create("adapters", name, expected=deba.FrameworkAdapter)`` is never needed: call the
class's ``create`` (``registry.load(...).create(...)``). The modules of adapters whose framework is
an extra import that framework only when used.
"""
