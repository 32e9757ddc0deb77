"""Propagation rules of normalizations: BatchNorm (batch statistics in training, running statistics in eval),
LayerNorm, GroupNorm, RMSNorm, InstanceNorm, and normalizations with an activation inside (timm's ``BatchNormAct2d``).

The normalized part has unit variance up to v / (v + eps) (Ioffe & Szegedy 2015; Ba, Kiros & Hinton 2016; Wu & He
2018; Zhang & Sennrich 2019); the affine parameters become (1, 0), except a residual branch end's gamma, which is the
branch's gain under the residual policy (``residual``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..graph.activations import activation_of_module
from ..graph.ir import TensorMeta, shape_of
from .plan import ActivationUse, Context, LayerPlan
from .stats import Stat, apply_activation, channel_view, collapse

__all__ = ["inner_activation", "normalization"]


def _affine(
    ctx: Context, key: str, module: nn.Module, channels: int, normalized_var: float
) -> tuple[np.ndarray, np.ndarray]:
    """New (gamma, beta) of a normalization: (1, 0), or a residual branch end's gamma from the policy's target."""
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    gamma = 1.0
    if key in ctx.branch_target:
        target = ctx.target_for(key)
        gamma = math.sqrt(target / normalized_var) if normalized_var > 0 else 0.0
        ctx.layers.append(
            LayerPlan(
                key,
                type(module).__name__,
                ctx.name_of(weight) if weight is not None else "",
                0.0,
                0.0,
                target,
                gamma,
                branch=ctx.branch_label.get(key, ""),
                notes=["residual branch end: gamma set"],
            )
        )
    if isinstance(weight, torch.Tensor):
        ctx.fill(weight, gamma)
        gammas = np.full(channels, gamma)
    else:
        gammas = np.ones(channels)
        if gamma != 1.0:
            ctx.warn(f"{key}: a residual branch ends in a normalization without affine weight; branch not scaled")
            gammas = np.ones(channels)
    if isinstance(bias, torch.Tensor):
        ctx.zero(bias)
    return gammas, np.zeros(channels)


def _eps(module: nn.Module, dtype: torch.dtype | None) -> float:
    eps = getattr(module, "eps", None)
    if eps is None:  # RMSNorm's default: torch.finfo(input.dtype).eps
        return float(torch.finfo(dtype or torch.float32).eps)
    return float(eps)


def inner_activation(module: nn.Module) -> nn.Module | None:
    """The activation a normalization module applies inside its own forward (timm's ``BatchNormAct2d``,
    ``GroupNormAct``, ``LayerNormAct``: a ``.act`` submodule, after an optional ``.drop``), ``None`` when there is none
    or it is the identity."""
    act = getattr(module, "act", None)
    if not isinstance(act, nn.Module) or isinstance(act, nn.Identity):
        return None
    return act


def normalization(ctx: Context, key: str, module: nn.Module, x: Stat, in_meta: object) -> Stat:
    """BatchNorm (batch statistics in training, running statistics in eval), LayerNorm, GroupNorm, RMSNorm,
    InstanceNorm: the normalized part has unit variance up to v / (v + eps); the affine parameters become (1, 0).

    A normalization with an activation inside (``inner_activation``: timm's ``BatchNormAct2d``) is the normalization
    followed by that activation (its ``.drop`` is dropout, the identity at initialization): the activation's exact
    moments at the normalized output's mean and variance, as for an ``nn.ReLU`` module after an ``nn.BatchNorm2d``.
    """
    out = _normalize(ctx, key, module, x, in_meta)
    act_module = inner_activation(module)
    if act_module is None:
        return out
    act = activation_of_module(act_module)
    where = f"{key}.act" if key else "act"
    if act is None:
        owned = [name for name, _ in act_module.named_parameters()]
        for name in owned:
            ctx.warn(f"{where}.{name}: owned by unsupported module {type(act_module).__name__}; left as it is")
        ctx.note_unknown(
            f"{where} ({type(act_module).__name__})",
            "treated as identity: output moments = those of its first tensor input",
        )
        return out
    ctx.activations.append(ActivationUse(where, act, out.variance, out.pooled_mean))
    return apply_activation(act, out, ctx.unit_moments)


def _normalize(ctx: Context, key: str, module: nn.Module, x: Stat, in_meta: object) -> Stat:
    """``normalization`` without the inner activation."""
    in_shape = shape_of(in_meta)
    ndim = len(in_shape) if in_shape is not None else x.ndim
    dtype = in_meta.dtype if isinstance(in_meta, TensorMeta) else None
    eps = _eps(module, dtype)
    if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
        x = channel_view(x)
        dims = len(tuple(module.normalized_shape))
        size = math.prod(module.normalized_shape)
        per_unit = dims == 1 and ndim is not None and x.axis == ndim - 1 and x.channels == size
        stat = x if per_unit else collapse(x)
        if isinstance(module, nn.LayerNorm):
            centre = stat.pooled_mean
            spread = stat.variance
        else:
            centre, spread = 0.0, stat.second_moment
        gamma, beta = _affine(ctx, key, module, stat.channels, spread / (spread + eps))
        scale = gamma / math.sqrt(spread + eps)
        mean = (stat.mean - centre) * scale + beta
        return Stat(mean, stat.var * scale * scale, stat.shared * float(np.mean(scale * scale)), stat.axis, ndim)
    channel_axis = None if ndim is None else (1 if ndim >= 2 else 0)
    channels = int(getattr(module, "num_features", getattr(module, "num_channels", 1)))
    per_channel = x.channels == channels and x.axis == channel_axis
    stat = x if per_channel else collapse(x)
    # (channel, position) maps; one position when the Stat has no spatial maps
    positions = math.prod(stat.spatial) if stat.spatial else 1
    means = np.broadcast_to(stat.mean.reshape(-1, positions), (channels, positions)).astype(np.float64)
    variances = np.broadcast_to(stat.var.reshape(-1, positions), (channels, positions)).astype(np.float64)
    spatial = stat.spatial

    def result(mean: np.ndarray, var: np.ndarray, shared: float) -> Stat:
        return Stat(mean.reshape(-1), var.reshape(-1), shared, channel_axis, ndim, spatial)

    if isinstance(module, nn.GroupNorm):
        groups = int(module.num_groups)
        grouped_mean = means.reshape(groups, -1)
        grouped_var = variances.reshape(groups, -1)
        centre = grouped_mean.mean(axis=1, keepdims=True)
        spread = grouped_mean.var(axis=1, keepdims=True) + grouped_var.mean(axis=1, keepdims=True) + stat.shared
        gamma, beta = _affine(ctx, key, module, channels, float(np.mean(spread / (spread + eps))))
        scale = np.repeat((gamma.reshape(groups, -1) / np.sqrt(spread + eps)).reshape(-1, 1), positions, axis=1)
        centred = (grouped_mean - centre).reshape(channels, positions)
        return result(centred * scale + beta[:, None], variances * scale**2, stat.shared * float(np.mean(scale**2)))
    uses_batch = module.training or not getattr(module, "track_running_stats", False)
    running_mean = getattr(module, "running_mean", None)
    running_var = getattr(module, "running_var", None)
    if (
        isinstance(module, (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d))
        or uses_batch
        or running_mean is None
    ):
        # Centring per channel removes the channel means and the unknown offsets (constant over the batch and the
        # positions); a position-dependent mean pattern remains, centred.
        centre = means.mean(axis=1, keepdims=True)
        spread = variances.mean(axis=1) + means.var(axis=1)
        gamma, beta = _affine(ctx, key, module, channels, float(np.mean(spread / (spread + eps))))
        scale = (gamma / np.sqrt(spread + eps))[:, None]
        return result((means - centre) * scale + beta[:, None], variances * scale**2, 0.0)
    gamma, beta = _affine(ctx, key, module, channels, 1.0)
    assert isinstance(running_var, torch.Tensor)
    running = running_mean.detach().double().cpu().numpy()[:, None]
    scale = (gamma / np.sqrt(running_var.detach().double().cpu().numpy() + eps))[:, None]
    return result(
        (means - running) * scale + beta[:, None], variances * scale**2, stat.shared * float(np.mean(scale**2))
    )
