"""Measuring what kind of network a module is.

Two passes: a walk over the module tree (parameter counts, weight layers, convolution kinds,
normalisation, attention and squeeze-excitation modules, activations), and one forward pass on a
tiny dummy input (batch 2, eval mode, no grad) under a ``TorchFunctionMode`` that counts the
tensor operations module types cannot show: residual additions (two same-shaped activations
added), dense concatenations (feature maps concatenated along channels), channel gating (a
feature map multiplied by a per-channel vector, the squeeze-excitation pattern), attention
kernels and functional activations. If no dummy input works, the forward-pass traits are left
``None`` and detection falls back on module types.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn
from torch.overrides import TorchFunctionMode

from deba.profiles.validation import StrictModel

__all__ = ["ArchitectureTraits", "measure_traits"]

NonNeg = Annotated[int, Field(ge=0)]

_ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.LeakyReLU: "leaky_relu",
    nn.ELU: "elu",
    nn.Mish: "mish",
}
_ACTIVATION_FUNCS = {
    "relu": "relu",
    "relu_": "relu",
    "relu6": "relu6",
    "hardswish": "hardswish",
    "hardswish_": "hardswish",
    "silu": "silu",
    "silu_": "silu",
    "gelu": "gelu",
    "mish": "mish",
    "leaky_relu": "leaky_relu",
    "elu": "elu",
}
# Gating activations (sigmoid, hard-sigmoid) are not the network's main non-linearity.
_GATING = {"sigmoid", "hardsigmoid"}


class ArchitectureTraits(StrictModel):
    """What :func:`measure_traits` found in a module (validated, frozen).

    Example:
        >>> import torch, deba
        >>> t = deba.profiles.measure_traits(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
        >>> t.n_params, t.depth, t.n_linear, t.dominant_activation
        (46, 2, 2, 'relu')
    """

    n_params: NonNeg
    n_trainable: NonNeg
    depth: NonNeg = Field(description="weight layers (convolutions and linear layers)")
    n_conv: NonNeg
    n_depthwise_conv: NonNeg
    n_pointwise_conv: NonNeg
    n_linear: NonNeg
    n_batchnorm: NonNeg
    n_layernorm: NonNeg
    n_groupnorm: NonNeg
    n_embedding: NonNeg
    n_attention: NonNeg
    n_squeeze_excitation: NonNeg
    activations: dict[str, NonNeg]
    dominant_activation: str | None
    input_kind: str = Field(description="'image', 'sequence', 'vector' or 'unknown'")
    traced: bool = Field(description="whether the forward pass on a dummy input ran")
    input_shape: list[int] | None = None
    n_residual_add: NonNeg | None = None
    n_dense_concat: NonNeg | None = None
    n_channel_gating: NonNeg | None = None
    n_attention_ops: NonNeg | None = None

    @property
    def residual(self) -> bool:
        """Whether the network has residual connections (at least 3 residual additions)."""
        return (self.n_residual_add or 0) >= 3

    @property
    def dense(self) -> bool:
        """Whether the network has dense connectivity (at least 6 channel concatenations)."""
        return (self.n_dense_concat or 0) >= 6

    @property
    def attention(self) -> int:
        """Attention blocks, from modules or from the attention kernels the forward pass ran."""
        return max(self.n_attention, self.n_attention_ops or 0)


def _is_attention_module(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return True
    name = type(module).__name__.lower()
    return name.endswith("attention") or name.endswith("selfattention") or name in {"attn", "attentionblock"}


def _is_se_module(module: nn.Module) -> bool:
    name = type(module).__name__.lower()
    return "squeezeexcit" in name or name in {"semodule", "selayer", "seblock", "squeezeexcite"}


class _OpCounter(TorchFunctionMode):
    """Counts residual adds, channel concatenations, gating multiplies and attention kernels."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        try:
            self._count(name, args, kwargs)
        except Exception:  # counting must never break the forward pass
            pass
        return func(*args, **kwargs)

    def _count(self, name: str, args: tuple, kwargs: dict) -> None:
        tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if name in {"add", "__add__", "__iadd__", "add_", "__radd__"} and len(tensors) == 2:
            a, b = tensors
            if a.shape == b.shape and a.dim() >= 2 and a.shape[0] == 2 and not isinstance(a, nn.Parameter) and not isinstance(b, nn.Parameter):
                self.counts["residual_add"] += 1
        elif name == "cat":
            seq = args[0] if args else kwargs.get("tensors", ())
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if isinstance(seq, (list, tuple)) and len(seq) >= 2 and all(isinstance(t, torch.Tensor) for t in seq):
                if seq[0].dim() == 4 and dim in (1, -3):
                    self.counts["dense_concat"] += 1
        elif name in {"mul", "__mul__", "mul_", "__rmul__"} and len(tensors) == 2:
            a, b = tensors
            if a.dim() == 4 and b.dim() == 4:
                small, big = (a, b) if a.numel() < b.numel() else (b, a)
                if small.shape[2:] == (1, 1) and big.shape[2:] != (1, 1) and small.shape[1] == big.shape[1]:
                    self.counts["channel_gating"] += 1
        elif name in {"scaled_dot_product_attention", "multi_head_attention_forward"}:
            self.counts["attention"] += 1
        elif name in _ACTIVATION_FUNCS:
            self.counts["act:" + _ACTIVATION_FUNCS[name]] += 1


def _first_weight_layer(model: nn.Module) -> nn.Module | None:
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)):
            return m
    return None


def _candidate_inputs(model: nn.Module) -> tuple[str, list[torch.Tensor]]:
    first = _first_weight_layer(model)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    if isinstance(first, nn.Conv2d):
        sizes: list[int] = []
        declared = getattr(model, "image_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", None)
        if isinstance(declared, (tuple, list)):
            declared = declared[0]
        if isinstance(declared, int):
            sizes.append(declared)
        sizes += [s for s in (32, 64, 224) if s not in sizes]
        return "image", [torch.randn(2, first.in_channels, s, s, device=device) for s in sizes]
    if isinstance(first, nn.Conv1d):
        return "sequence", [torch.randn(2, first.in_channels, n, device=device) for n in (64, 256)]
    if isinstance(first, nn.Embedding):
        return "sequence", [torch.randint(0, first.num_embeddings, (2, 16), device=device)]
    if isinstance(first, nn.Linear):
        return "vector", [torch.randn(2, first.in_features, device=device)]
    return "unknown", []


def _trace(model: nn.Module) -> tuple[str, Counter[str] | None, list[int] | None]:
    kind, inputs = _candidate_inputs(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for x in inputs:
            counter = _OpCounter()
            try:
                with torch.no_grad(), counter:
                    model(x)
            except Exception:  # wrong input size or type: try the next candidate
                continue
            return kind, counter.counts, list(x.shape)
        return kind, None, None
    finally:
        for m, was_training in modes.items():
            m.train(was_training)


def measure_traits(model: nn.Module, *, trace: bool = True) -> ArchitectureTraits:
    """Measure the traits of ``model`` (see module docstring); ``trace=False`` skips the forward pass."""
    from deba.errors import DebaConfigError

    if not isinstance(model, nn.Module):
        raise DebaConfigError.single("model", type(model).__name__, "must be a torch.nn.Module")
    counts: Counter[str] = Counter()
    acts: Counter[str] = Counter()
    attention_roots: set[int] = set()
    se = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            counts["conv"] += 1
            if module.groups > 1 and module.groups == module.in_channels:
                counts["depthwise"] += 1
            elif all(k == 1 for k in module.kernel_size):
                counts["pointwise"] += 1
        elif isinstance(module, nn.Linear):
            counts["linear"] += 1
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            counts["batchnorm"] += 1
        elif isinstance(module, nn.LayerNorm):
            counts["layernorm"] += 1
        elif isinstance(module, nn.GroupNorm):
            counts["groupnorm"] += 1
        elif isinstance(module, nn.Embedding):
            counts["embedding"] += 1
        for cls, act in _ACTIVATION_MODULES.items():
            if type(module) is cls:
                acts[act] += 1
        if _is_se_module(module):
            se += 1
    # Count attention blocks once: an attention module nested in another is the same block.
    for name, module in model.named_modules():
        if _is_attention_module(module) and not any(name.startswith(r + ".") for r in map(str, attention_roots)):
            attention_roots.add(name)  # type: ignore[arg-type]
    kind, ops, shape = _trace(model) if trace else (_candidate_inputs(model)[0], None, None)
    if ops:
        for key, n in ops.items():
            if key.startswith("act:"):
                acts[key[4:]] = max(acts[key[4:]], n)
    main = {k: v for k, v in acts.items() if k not in _GATING}
    dominant = max(sorted(main), key=lambda k: main[k]) if main else None
    params = list(model.parameters())
    return ArchitectureTraits(
        n_params=sum(p.numel() for p in params),
        n_trainable=sum(p.numel() for p in params if p.requires_grad),
        depth=counts["conv"] + counts["linear"],
        n_conv=counts["conv"],
        n_depthwise_conv=counts["depthwise"],
        n_pointwise_conv=counts["pointwise"],
        n_linear=counts["linear"],
        n_batchnorm=counts["batchnorm"],
        n_layernorm=counts["layernorm"],
        n_groupnorm=counts["groupnorm"],
        n_embedding=counts["embedding"],
        n_attention=len(attention_roots),
        n_squeeze_excitation=max(se, (ops or {}).get("channel_gating", 0) if ops is not None else 0),
        activations=dict(sorted(acts.items())),
        dominant_activation=dominant,
        input_kind=kind,
        traced=ops is not None,
        input_shape=shape,
        n_residual_add=None if ops is None else ops.get("residual_add", 0),
        n_dense_concat=None if ops is None else ops.get("dense_concat", 0),
        n_channel_gating=None if ops is None else ops.get("channel_gating", 0),
        n_attention_ops=None if ops is None else ops.get("attention", 0),
    )
