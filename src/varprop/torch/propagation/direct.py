"""Parameters used directly in ``forward`` (not through a module that owns them): initialized by the role the first
operation that combines them with the signal gives them.

- **Layer scale** (``gamma * branch(x)``; ConvNeXt's ``layer_scale``, CaiT's ``LayerScale``, ReZero's ``alpha``):
  a multiplier of the signal. At the end of a residual branch it is the branch's gain: every entry
  sqrt(target / Var[branch]) with the residual policy's target (``_residual``), as the last normalization's gamma
  would be; anywhere else 1 (the identity, a normalization's convention).
- **Token** (``torch.cat([cls_token.expand(B, -1, -1), x], dim=1)``; ViT's class and distillation tokens, register
  tokens) and **additive embedding** (``x + pos_embed``; ViT's and HF ``ViTEmbeddings``' position embeddings):
  the same values for every sample, drawn N(0, (0.02 s)^2) with s^2 the variance of the stream they join (the ViT
  convention, ``EMBEDDING_STD``: std 0.02 next to a unit-variance patch embedding). Not at the stream's own
  variance: a component fixed across samples that large makes the class token's row nearly the same vector c for
  every image, and a layer reading it (the head: W c, measured 1.35x its prediction; attention outputs: 1.5x) has an
  output spread that the pooled propagation cannot know. A vector of one entry per channel of the last axis added
  to the stream is a **bias**: zero.

The parameter's new value is drawn (seeded by its name, like every weight) when the combining operation is reached;
its moments then come from the drawn values, so the prediction is that of the written tensor. Between the attribute
and the combining operation only layout operations (``expand``, ``view``, ``to``, ...) may stand; any other use
keeps the parameter's stored value as the propagation's input (what the other rules see) and leaves it to them.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from varprop.torch import init_model
    >>> class Tokens(nn.Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.proj, self.cls = nn.Linear(8, 8), nn.Parameter(torch.zeros(1, 1, 8))
    ...     def forward(self, x):
    ...         y = self.proj(x)
    ...         return torch.cat([self.cls.expand(y.shape[0], -1, -1), y], dim=1)
    >>> model = Tokens()
    >>> _ = init_model(model, (4, 5, 8), generator=torch.Generator().manual_seed(0))
    >>> bool(model.cls.abs().sum() > 0)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..graph.ir import TensorMeta
from .names import AXIS_OPS, COLLAPSE_OPS
from .ops import add_stats, cat_stats
from .plan import Context
from .residual import STREAM_OPS
from .stats import Stat, channel_view, collapse, scalar_stat

__all__ = ["EMBEDDING_STD", "DirectParameter", "combine", "unwrap"]

# std of a token or position embedding relative to the stream's std: ViT (Dosovitskiy et al. 2021) as timm and HF
# initialize it, trunc_normal(std=0.02) (HF ``initializer_range``) next to a unit-variance patch embedding.
EMBEDDING_STD = 0.02

# Layout operations a parameter may pass through before it meets the signal (its values unchanged, or repeated).
# (a slice, getitem, keeps the moments of the drawn values up to sampling: a position embedding cut to the sequence)
_LAYOUT_OPS = (STREAM_OPS | AXIS_OPS | COLLAPSE_OPS) - {"flip", "roll", "index_select"}


@dataclass(frozen=True)
class DirectParameter:
    """A parameter on its way from its attribute to the operation that combines it with the signal.

    ``meta`` is the value's meta at the current node (after ``expand`` and the like), ``source`` the attribute's."""

    param: torch.Tensor
    meta: Any
    source: Any


def unwrap(value: Any) -> Any:
    """``value`` with every ``DirectParameter`` replaced by its meta (what the propagation saw before)."""
    if isinstance(value, DirectParameter):
        return value.meta
    if isinstance(value, tuple):
        return tuple(unwrap(item) for item in value)
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    return value


def _found(values: Sequence[Any]) -> bool:
    return any(
        isinstance(v, DirectParameter)
        or (isinstance(v, (list, tuple)) and any(isinstance(i, DirectParameter) for i in v))
        for v in values
    )


def combine(
    ctx: Context,
    key: str,
    name: str,
    args: Sequence[Any],
    out_meta: Any,
    item_metas: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """The value of operation ``name`` (node ``key``) on ``args`` holding a ``DirectParameter``; ``NotImplemented``
    when this module has no rule for it (the caller then unwraps the parameter and goes on as before).
    ``item_metas``: for ``cat``, the metas of the concatenated tensors."""
    if not _found(args):
        return NotImplemented
    first = args[0] if args else None
    if name in _LAYOUT_OPS and isinstance(first, DirectParameter):
        return DirectParameter(first.param, out_meta, first.source)
    if name == "mul" and len(args) == 2:
        param, other = (args[0], args[1]) if isinstance(args[0], DirectParameter) else (args[1], args[0])
        if isinstance(param, DirectParameter) and isinstance(other, Stat):
            return _layer_scale(ctx, key, param, other)
    if name in ("add", "sub") and len(args) == 2:
        param, other = (args[0], args[1]) if isinstance(args[0], DirectParameter) else (args[1], args[0])
        if isinstance(param, DirectParameter) and isinstance(other, Stat):
            return _additive(ctx, param, other, -1.0 if name == "sub" and param is args[1] else 1.0)
    if name == "cat" and isinstance(first, (list, tuple)):
        ndim = out_meta.ndim if isinstance(out_meta, TensorMeta) else None
        dim = args[1] if len(args) > 1 else (kwargs or {}).get("dim", 0)
        return _tokens(ctx, first, item_metas, ndim, dim)
    return NotImplemented


def _note(ctx: Context, text: str) -> None:
    """A note on the latest weight layer's row (the one whose output the parameter meets), else a report warning."""
    if ctx.layers:
        ctx.layers[-1].notes.append(text)
    else:
        ctx.warn(text)


def _drawn(ctx: Context, param: torch.Tensor, std: float) -> torch.Tensor:
    """The parameter's new value: N(0, std^2) seeded by its name (the value already planned on a second use); with
    realized weights rescaled so that its mean square is exactly std^2 (as ``nn.Embedding`` rows are: a class token
    has one entry per channel, whose mean square alone would be off by ~sqrt(2 / width))."""
    if ctx.is_planned(param):
        return ctx.read(param)
    ctx.plan_draw(param, std)
    if ctx.realized and std > 0.0 and param.numel():
        mean_square = float(ctx.read(param).double().pow(2).mean())
        if mean_square > 0.0:
            ctx.scale(param, std / math.sqrt(mean_square))
    return ctx.read(param)


def _layer_scale(ctx: Context, key: str, param: DirectParameter, other: Stat) -> Stat:
    name = ctx.name_of(param.param)
    if ctx.is_planned(param.param):
        values = ctx.read(param.param).double()
        gamma = float(values.mean()) if values.numel() else 1.0
        return other.scaled(gamma)
    gamma, role = 1.0, "a scale outside a residual branch end: 1 (the identity)"
    if ctx.residual == "none":
        role = "residual='none': 1, every branch keeps the variance of its last layer"
    elif key in ctx.branch_target:
        target = ctx.target_for(key)
        variance = other.variance
        gamma = math.sqrt(target / variance) if target > 0.0 and variance > 0.0 else 0.0
        role = f"layer scale of a residual branch ({ctx.branch_label.get(key, '')}): the branch gain"
    ctx.fill(param.param, gamma)
    _note(ctx, f"{name} (used directly in forward) set to {gamma:.6g}: {role}")
    return other.scaled(gamma)


def _per_channel(values: torch.Tensor, axis: int | None, ndim: int | None) -> Stat:
    """Moments of a fixed tensor (the same for every sample): per entry of its last axis when it has one, pooled over
    the other axes; a scalar Stat otherwise."""
    data = values.detach().double()
    if data.dim() >= 1 and axis is not None and ndim is not None and axis == ndim - 1:
        rows = data.reshape(-1, data.shape[-1])
        mean = rows.mean(dim=0)
        var = (rows * rows).mean(dim=0) - mean * mean
        return Stat(mean.cpu().numpy(), np.maximum(var.cpu().numpy(), 0.0), 0.0, axis, ndim)
    mean_value = float(data.mean()) if data.numel() else 0.0
    return scalar_stat(mean_value, float((data * data).mean()) if data.numel() else 0.0, ndim)


def _additive(ctx: Context, param: DirectParameter, other: Stat, sign: float) -> Stat:
    tensor = param.param
    name = ctx.name_of(tensor)
    width = tensor.shape[-1] if tensor.dim() else 1
    is_bias = tensor.numel() == width
    if is_bias:
        if not ctx.is_planned(tensor):
            ctx.zero(tensor)
            _note(ctx, f"{name} (a bias used directly in forward) set to 0")
        values = ctx.read(tensor)
    else:
        variance = other.variance
        stream = math.sqrt(variance) if variance > 0.0 and math.isfinite(variance) else math.sqrt(ctx.target_var)
        std = EMBEDDING_STD * stream
        planned = ctx.is_planned(tensor)
        values = _drawn(ctx, tensor, std)
        if not planned:
            _note(
                ctx,
                f"{name} (an embedding added to the stream) drawn N(0, {std * std:.6g}): std {EMBEDDING_STD:g} x the "
                "stream's (the ViT convention)",
            )
    stat = _per_channel(values, other.axis, other.ndim)
    return add_stats(other, stat.scaled(sign) if sign != 1.0 else stat)


def _tokens(ctx: Context, items: Sequence[Any], metas: Sequence[Any], ndim: int | None, dim: Any) -> Any:
    """torch.cat of signal tensors and parameters (tokens): each token drawn at the others' pooled variance."""
    if len(metas) != len(items) or not all(isinstance(meta, TensorMeta) for meta in metas):
        return NotImplemented
    if any(not isinstance(item, (Stat, DirectParameter)) for item in items):
        return NotImplemented  # (a constant tensor among them: not ours)
    if not isinstance(dim, int) or isinstance(dim, bool):
        return NotImplemented
    sizes = [int(meta.shape[dim]) for meta in metas]
    signals = [channel_view(item) for item in items if isinstance(item, Stat)]
    signal_sizes = [size for item, size in zip(items, sizes, strict=True) if isinstance(item, Stat)]
    if signals:
        weights = np.asarray(signal_sizes, dtype=np.float64)
        weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(signals), 1.0 / len(signals))
        variance = float(sum(w * s.variance for w, s in zip(weights, signals, strict=True)))
    else:
        variance = ctx.target_var
    stream = math.sqrt(variance) if variance > 0.0 and math.isfinite(variance) else math.sqrt(ctx.target_var)
    std = EMBEDDING_STD * stream
    stats: list[Stat] = []
    for item in items:
        if isinstance(item, DirectParameter):
            planned = ctx.is_planned(item.param)
            values = _drawn(ctx, item.param, std)
            if not planned:
                _note(
                    ctx,
                    f"{ctx.name_of(item.param)} (a token concatenated to the stream) drawn N(0, {std * std:.6g}): "
                    f"std {EMBEDDING_STD:g} x the rows' it joins (the ViT convention)",
                )
            stats.append(collapse(_per_channel(values, None, ndim)))
        else:
            stats.append(collapse(channel_view(item)))
    return cat_stats(stats, sizes, -1, ndim)
